"""Scenes: where a chapter changes place or time, and what the place and time are.

A new scene starts at a chapter, at a paragraph that opens with a transition (``却说``,
``次日``, ``是夜``, ``来到……``), or at a separator line. Scenes too short to stage are
merged into the one before. The place is the most cited ``在/到/入 + 地名`` of the scene (a
name ending in 山/洞/宫/殿/城/庄/祠...), the time of day comes from cue words, and INT/EXT from
the kind of place.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from agents.script.segment import Segment

_TRANSITION = re.compile(
    r"^(?:却说|且说|话说|再说|却表|且表|不说|单说|回头说|次日|翌日|明日|第二天|第三天|当夜|是夜|当晚|是晚|是日|当日|"
    r"一日|忽一日|这一日|那一日|这日|那日|数日后|几日后|过了几日|不一日|不数日|不几日|不多时|少时间|到晚|天明|"
    r"天色已晚|天晚|黄昏|傍晚|清晨|早晨|五更|三更|半夜|深夜|此时|当下|来到|到了|行至|回到|进了|比及|将近|时值|"
    r"正值|光阴|自此|从此|后来|却才|且不言|不题|话表)"
)
_PLACE_SUFFIX = (
    "山|洞|宫|殿|庙|寺|院|府|城|庄|村|镇|楼|阁|亭|河|江|海|关|营|寨|祠|街|店|园|堂|台|岭|林|谷|桥|州|县|郡|"
    "房|屋|厅|室|衙|监|牢|狱|岸|湖|池|庵|观|铺|场|坡|峰|崖|渡|巷|馆|阵|帐|门|国|村|宅|府|轩|斋|房间|办公室|酒店|酒楼|"
    "茶馆|医院|学校|公司|会所|别墅|大厅|客栈|厢房|书房|卧房|后院|花园|镖局|警局|渡口|码头|车站|机场"
)
# longest first, so 渡口 is not cut to 渡, nor 办公室 to 室
_PLACE_SUFFIX = "|".join(sorted(set(_PLACE_SUFFIX.split("|")), key=lambda w: (-len(w), w)))
_PLACE_RE = re.compile(
    r"(?:在|到|至|入|进|往|回|出|于|来到|到了|行至|回到|进了|住在|奔|投|上了|下了|离了|过了)(?:那|这|一座|一个|个|了)?"
    r"(?P<place>[\u4e00-\u9fff]{0,5}(?:" + _PLACE_SUFFIX + r"))"
)
# 有一家不起眼的修表铺 / 林氏集团的会议室里坐满了人: a place the narration sets the scene in
_PLACE_HERE = re.compile(
    r"(?:有一家|一家|一间|一座|一处)(?:[^，。！？“”]{0,8}?的)?(?P<place>[\u4e00-\u9fff]{0,4}(?:" + _PLACE_SUFFIX + r"))|"
    r"(?:^|[，。；：\s的])(?P<place2>[\u4e00-\u9fff]{1,4}(?:" + _PLACE_SUFFIX + r"))(?:里|中|内|外|门口|门前)"
)
_PLACE_TAIL = re.compile(r"(?:" + _PLACE_SUFFIX + r")$")
_INT_SUFFIX = ("宫", "殿", "院", "府", "祠", "店", "堂", "房", "屋", "厅", "室", "衙", "监", "牢", "狱", "庵", "观", "铺",
               "馆", "帐", "宅", "轩", "斋", "楼", "阁", "寺", "庙", "洞", "酒店", "酒楼", "茶馆", "医院", "公司", "会所",
               "别墅", "大厅", "客栈", "厢房", "书房", "卧房", "房间", "办公室")
_NIGHT = re.compile(r"夜|晚上|晚间|天晚|黄昏后|月下|月光|灯下|更深|三更|二更|四更|半夜|深夜|是夕|当晚|今晚|入夜")
_DAWN = re.compile(r"天明|黎明|破晓|五更|清晨|早晨|侵晨|拂晓|鸡鸣|日出")
_DUSK = re.compile(r"黄昏|傍晚|日落|夕阳|日暮|日西|天色已晚|天色将晚|薄暮")
_NOT_PLACES = {"世界", "天下", "心里", "心中", "手里", "眼里", "家里", "门口", "地上", "身上", "头上"}
_BAD_PLACE_START = set("他她我你这那一个了的是在不也都就还些里上下中内外前后左右屯驻扎守攻取围到得好称至入进往回出于")


@dataclass(slots=True)
class SceneDraft:
    chapter: int
    segs: list[Segment] = field(default_factory=list)
    place: str = ""
    time_of_day: str = "day"
    int_ext: str = "INT"
    place_span: tuple[int, int] | None = None  # the first mention of the place

    @property
    def start(self) -> int:
        return self.segs[0].start if self.segs else 0

    @property
    def end(self) -> int:
        return self.segs[-1].end if self.segs else 0

    def chars(self) -> int:
        return sum(s.end - s.start for s in self.segs)


def _paragraph_text(text: str, segs: list[Segment]) -> str:
    return text[segs[0].start:segs[-1].end] if segs else ""


def heading_place(name: str) -> str:
    """The place a chapter heading names (第一章 风雪客栈 -> 风雪客栈, 第二章 渡口 -> 渡口), or ""."""
    name = name.strip()
    if not 2 <= len(name) <= 8 or not re.fullmatch(r"[\u4e00-\u9fff]+", name) or not _PLACE_TAIL.search(name):
        return ""
    if name in _NOT_PLACES or name[0] in _BAD_PLACE_START or any(c in name for c in "了着过来去打说看走跑"):
        return ""
    if len(name) == 2 and name[1] in "观门台场":
        return ""
    return name


def split_scenes(text: str, segments: list[Segment], paragraph_starts: dict[int, int], *,
                 min_chars: int = 150, max_chars: int = 2500,
                 headings: dict[int, str] | None = None) -> list[SceneDraft]:
    """Group ``segments`` (in book order) into scenes. ``headings`` (chapter -> its heading's name)
    gives a chapter's first scene its place when the narration names none."""
    scenes: list[SceneDraft] = []
    cur: SceneDraft | None = None
    last_para = -1
    for seg in segments:
        new_para = seg.para != last_para
        start_scene = cur is None or seg.chapter != cur.chapter
        if not start_scene and new_para:
            head = text[paragraph_starts[seg.para]:paragraph_starts[seg.para] + 12]
            if _TRANSITION.match(head) and cur is not None and cur.chars() >= min_chars:
                start_scene = True
            elif cur is not None and cur.chars() >= max_chars:
                start_scene = True  # a very long stretch: cut at a paragraph to keep scenes stageable
        if start_scene:
            cur = SceneDraft(chapter=seg.chapter)
            scenes.append(cur)
        assert cur is not None
        cur.segs.append(seg)
        last_para = seg.para
    # merge scenes too short to stage into the previous one of the same chapter
    merged: list[SceneDraft] = []
    for sc in scenes:
        if merged and merged[-1].chapter == sc.chapter and sc.chars() < min_chars:
            merged[-1].segs.extend(sc.segs)
        else:
            merged.append(sc)
    place_counts: Counter[str] = Counter()
    for sc in merged:
        _locate(text, sc)
        if sc.place:
            place_counts[sc.place] += 1
    prev: SceneDraft | None = None
    for sc in merged:
        if not sc.place and (prev is None or prev.chapter != sc.chapter) and headings:
            place = heading_place(headings.get(sc.chapter, ""))
            if place:
                sc.place = place
                sc.int_ext = "INT" if place.endswith(_INT_SUFFIX) else "EXT"
        if not sc.place and prev is not None and prev.chapter == sc.chapter and prev.place:
            sc.place, sc.int_ext = prev.place, prev.int_ext
        prev = sc
    return merged


def _locate(text: str, sc: SceneDraft) -> None:
    """Place (from narration only: people in dialogue talk of elsewhere), time of day, INT/EXT."""
    counts: Counter[str] = Counter()
    first: dict[str, int] = {}
    narration = [s for s in sc.segs if s.kind == "narration"]
    # the opening paragraphs set the scene; later ones only when those name no place
    for k, seg in enumerate(narration[:80]):
        if k >= 12 and counts:
            break
        body = text[seg.start:seg.end]
        for m in [*_PLACE_RE.finditer(body), *_PLACE_HERE.finditer(body)]:
            group = "place" if m.group("place") else "place2"
            place = m.group(group)
            for sep in ("的", "之", "和", "与", "，"):
                if sep in place:
                    place = place.rsplit(sep, 1)[1]  # 未庄的土谷祠 -> 土谷祠
            moved = re.split(r"[到在进入至往回]", place[:-1])  # ，将到酒店门口: the place after the verb
            if len(moved) > 1 and len(moved[-1] + place[-1]) >= 2:
                place = moved[-1] + place[-1]
            while place and place[0] in _BAD_PLACE_START:
                place = place[1:]
            if len(place) < 2 or place in _NOT_PLACES or not re.search(_PLACE_TAIL, place) \
                    or any(c in place for c in "了着过来去打说看走跑") or (len(place) == 2 and place[1] in "观门台场"):
                continue
            counts[place] += 1
            first.setdefault(place, seg.start + m.end(group) - len(place))
    head = _paragraph_text(text, sc.segs[:12])
    if counts:
        # a place named elsewhere in the book too is a real place, not a one-off phrase
        known = {p: (2 if text.count(p, 0, len(text)) >= 3 else 0) for p in counts}
        best = max(counts, key=lambda p: (counts[p] + known[p], -first[p]))
        sc.place = best
        sc.place_span = (first[best], first[best] + len(best))
        sc.int_ext = "INT" if best.endswith(_INT_SUFFIX) else "EXT"
    opening = head[:400]
    if _DUSK.search(opening):
        sc.time_of_day = "dusk"
    elif _NIGHT.search(opening):
        sc.time_of_day = "night"
    elif _DAWN.search(opening):
        sc.time_of_day = "dawn"
    else:
        sc.time_of_day = "day"
