"""The offline script engine: a whole novel to an episodic screenplay with no model.

Deterministic (same input, same JSON) and fast (西游记, 2 MB, in a few seconds on two cores).
Steps: clean and split chapters (:mod:`.text`), split narration and speech (:mod:`.segment`),
find the cast (:mod:`.characters`), attribute speakers (:mod:`.attribute`), cut scenes
(:mod:`.scenes`), then for each episode pick the lines that carry the story within the time
budget (:mod:`.timing`), stage them as shots, and choose a hook, a cliffhanger and the pay point.

Every line is a span of the decoded novel: ``novel.text[line.source.start:line.source.end] ==
line.text``. Nothing is paraphrased; condensing is done by choosing what to keep.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agents.script.attribute import CROWD, UNKNOWN, attribute
from agents.script.base import EngineResult, ScriptEngine, ScriptInput
from agents.script.characters import GENERIC, Cast, NGramStats, Person, discover_cast
from agents.script.reader import NovelText
from agents.script.scenes import SceneDraft, split_scenes
from agents.script.segment import (
    POST_SPEECH,
    SPEECH_VERB,
    Segment,
    segment_paragraph,
    speakable_pieces,
)
from agents.script.text import Book, split_book
from agents.script.timing import line_seconds, shot_seconds
from core.errors import InputError
from core.screenplay import (
    CameraMove,
    Character,
    Episode,
    Line,
    LineKind,
    Location,
    Scene,
    Series,
    Shot,
    ShotSize,
    SourceInfo,
    SourceSpan,
)
from core.usage import UsageRecord, seconds_since

if TYPE_CHECKING:
    from agents.base import RunContext

log = logging.getLogger(__name__)

NARRATOR = "旁白"
ENGINE_VERSION = "offline-rules-1"
CHARS_PER_EPISODE = 6000  # whole-novel default: one episode per ~6000 source characters, at least one per chapter
MAX_SHOT_SPEECH_S = 8.0  # a longer speech is covered by several shots (cutaways)
TOLERANCE = 0.15  # an episode's planned length stays within ±15 % of the target
_FILL_LOW, _FILL_HIGH = 0.92, 1.08  # what the packer aims for, inside the tolerance

_TENSION_WORDS = re.compile(
    r"忽然|突然|猛然|只见|不料|不想|谁知|岂知|大惊|大怒|大叫|大喝|杀|死|救命|不好|怎么|竟|原来|不知|毕竟|哭|血|斩|"
    r"刀|剑|枪|逃|追|拿住|捉|饶命|报仇|休走|住手|妖|怪|吃了|危|急|惊|怒|恨|哀|痛|败|胜|赢|输|拼|跪|滚|该死|可恶"
)
_TAG_END = re.compile(SPEECH_VERB + r"[了着]?[：:。，,]?$")
_ACTION = re.compile(r"打|杀|跑|追|走|奔|跳|飞|战|冲|赶|逃|推|拉|扯|揪|抓|拿|举|砍|刺|射|骑|跌|倒|踢|撞")
_META = re.compile(r"且听下回分解|下回分解|下文分解|后人有诗|有诗为证|诗曰|词曰|正是：|看官|列位|话分两头|按下不表|不在话下")
_EMOTION = (
    (re.compile(r"大怒|怒|骂|喝"), "愤怒"),
    (re.compile(r"大笑|笑"), "笑"),
    (re.compile(r"哭|泣|泪"), "悲伤"),
    (re.compile(r"惊|慌|唬"), "惊慌"),
    (re.compile(r"叹"), "感叹"),
    (re.compile(r"喜|欢"), "喜悦"),
    (re.compile(r"冷笑|轻蔑"), "轻蔑"),
)
_SFX = (
    (re.compile(r"雷"), "雷声"),
    (re.compile(r"雨"), "雨声"),
    (re.compile(r"风"), "风声"),
    (re.compile(r"马"), "马蹄声"),
    (re.compile(r"门"), "开门声"),
    (re.compile(r"锣"), "锣声"),
    (re.compile(r"鼓"), "鼓声"),
    (re.compile(r"钟"), "钟声"),
    (re.compile(r"鸡鸣|鸡叫"), "鸡鸣"),
    (re.compile(r"刀|剑|枪|棒|棍|戟"), "兵器碰撞声"),
    (re.compile(r"火"), "火焰声"),
    (re.compile(r"水|河|江|海|浪"), "水声"),
    (re.compile(r"哭"), "哭声"),
    (re.compile(r"笑"), "笑声"),
    (re.compile(r"酒|碗"), "碗盏声"),
)
_TIME_ZH = {"day": "日", "night": "夜", "dawn": "晨", "dusk": "昏", "unspecified": "日"}
_GENRES = (
    ("神魔", re.compile(r"妖|仙|佛|菩萨|神通|法力|天宫|龙王|修行|魔")),
    ("历史", re.compile(r"丞相|将军|天子|诸侯|兵马|太守|朝廷|陛下|主公")),
    ("都市", re.compile(r"总裁|公司|手机|电话|汽车|老板|别墅|集团")),
    ("言情", re.compile(r"爱|喜欢|心动|吻|婚|恋")),
    ("乡土", re.compile(r"庄|村|土谷祠|酒店|赌|辫子|秀才|太爷")),
)
_FEMALE = re.compile(r"妈|嫂|姐|妹|娘|女|婆|妇|夫人|小姐|姑娘|太太|奶奶|公主|尼姑|姑|妃|后$|母")
_OLD = re.compile(r"老|翁|爷|叟|婆|太太|奶奶|长老|公$|伯|祖")
_CHILD = re.compile(r"童|孩|儿$|小厮")
_LOOKS = re.compile(r"生得|身长|面如|头戴|身穿|模样|相貌|长得|穿着|打扮|披着|戴着|腰系|腰挎|胡须|胡子|辫子|癞疮疤|络腮|"
                    r"满脸|眉清目秀|赤着膊|虎皮|嘴脸|毛脸|长嘴|大耳|面皮")


@dataclass(slots=True, eq=False)
class Unit:
    """One speakable line with where it came from and how much it is worth keeping."""

    start: int
    end: int
    kind: str  # narration | dialogue | os | vo
    speaker: str
    seg: int
    scene: int
    chapter: int
    para: int
    seconds: float
    score: float
    tension: float
    emotion: str = ""
    poem: bool = False
    names: tuple[str, ...] = ()


@dataclass(slots=True, eq=False)
class Block:
    """What the packer keeps or drops as a whole: a narration line or a short run of dialogue."""

    units: list[Unit]
    scene: int
    score: float
    seconds: float
    forced: bool = False

    @property
    def order(self) -> int:
        return self.units[0].start


@dataclass(slots=True)
class Analysis:
    """Everything the offline engine learns about a novel, reusable by the LLM engines."""

    novel: NovelText
    book: Book
    segments: list[Segment]
    cast: Cast
    scenes: list[SceneDraft]
    units: list[Unit]
    attribution: Counter[str] = field(default_factory=Counter)


def _tension(s: str) -> float:
    t = min(1.5, 0.5 * (s.count("！") + s.count("!"))) + min(0.8, 0.4 * (s.count("？") + s.count("?")))
    t += min(1.6, 0.4 * len(_TENSION_WORDS.findall(s)))
    return round(t, 2)


def _emotion(tag: str, text: str) -> str:
    for rx, label in _EMOTION:
        if rx.search(tag[-8:]):
            return label
    if "！" in text or "!" in text:
        return "激动"
    if "？" in text or "?" in text:
        return "疑问"
    return ""


def analyse(novel: NovelText, ctx: RunContext | None = None) -> Analysis:
    """Clean, split, find the cast, attribute, cut scenes and score lines."""
    text = novel.text
    book = split_book(text)
    if not book.chapters or not any(c.paragraphs for c in book.chapters):
        raise InputError(
            f"{novel.path or 'the source text'} has no story text left after removing site ads and headers",
            hint="check that the file is the novel itself",
        )
    if ctx:
        ctx.step(0.05, f"{len(book.chapters)} chapters")
    segments: list[Segment] = []
    prev_tail = ""
    paragraph_starts: dict[int, int] = {}
    for i, p in enumerate(book.paragraphs()):
        paragraph_starts[i] = p.start
        segments.extend(segment_paragraph(text, p, i, prev_tail))
        prev_tail = text[max(p.start, p.end - 40):p.end]
    if ctx:
        ctx.step(0.15, f"{sum(s.kind == 'speech' for s in segments)} speeches")
    stats = NGramStats(text)
    cast = discover_cast(text, [(s.pre, s.post) for s in segments if s.kind == "speech"], stats=stats)
    del stats
    if ctx:
        ctx.step(0.3, f"{len(cast.people)} characters")
    how = attribute(segments, text, cast)
    scenes = split_scenes(text, segments, paragraph_starts)
    seg_scene: dict[int, int] = {}
    seg_index = {id(member): i for i, member in enumerate(segments)}
    for k, sc in enumerate(scenes):
        for member in sc.segs:
            seg_scene[seg_index[id(member)]] = k
    units: list[Unit] = []
    lead_names = {p.name for p in cast.people if p.role == "lead"}
    named = {p.name for p in cast.people if not p.generic}
    for i, seg in enumerate(segments):
        pieces = speakable_pieces(text, seg.start, seg.end, narration=seg.kind != "speech")
        if not pieces:
            continue
        if seg.kind == "speech":
            kind = seg.line_kind
            speaker = seg.speaker or UNKNOWN
            for a, b in pieces:
                s = text[a:b]
                ten = _tension(s)
                score = 3.0 + ten
                score += 0.8 if speaker in named else 0.0
                score += 0.5 if speaker in lead_names else 0.0
                score -= 0.8 if seg.how in ("last", "none") else 0.0
                score -= 0.5 if len(s) < 4 else 0.0
                units.append(Unit(a, b, kind, speaker, i, seg_scene[i], seg.chapter, seg.para,
                                  line_seconds(s, "dialogue"), score, ten, _emotion(seg.pre, s)))
        else:
            poem = seg.kind == "poem"
            for a, b in pieces:
                s = text[a:b]
                if _META.search(s):
                    continue
                names = tuple(dict.fromkeys(n for _x, _y, n in cast.find(s)))
                ten = _tension(s)
                score = 1.0 + 0.5 * ten
                score += 1.0 if any(n in named for n in names) else 0.0
                score += 0.5 if any(n in lead_names for n in names) else 0.0
                score += 0.4 if _ACTION.search(s) else 0.0
                if poem:
                    score -= 3.0
                if len(s) < 6 and not re.search(r"[。！？!?]$", s):
                    score -= 1.0  # a fragment cut by a hard line wrap
                if len(s) <= 12 and _TAG_END.search(s):
                    continue  # a bare speech tag (三藏道): the shot already shows who speaks
                if _TAG_END.search(s) or (len(s) <= 24 and POST_SPEECH.match(s)):
                    score -= 2.5  # a speech tag (王胡轻蔑的抬起眼来说)
                units.append(Unit(a, b, "narration", NARRATOR, i, seg_scene[i], seg.chapter, seg.para,
                                  line_seconds(s, "narration"), score, ten, "", poem, names))
    if ctx:
        ctx.step(0.4, f"{len(scenes)} scenes, {len(units)} lines")
    return Analysis(novel, book, segments, cast, scenes, units, how)


# --- episodes ---------------------------------------------------------------------------------


def _value(b: Block) -> float:
    """Worth per second, with a fixed cost per block so whole exchanges beat scattered short lines."""
    return b.score / (b.seconds + 4.0)


def _largest_remainder(weights: list[float], total: int, minimum: int) -> list[int]:
    base = [minimum] * len(weights)
    left = total - minimum * len(weights)
    if left <= 0:
        return base
    s = sum(weights) or 1.0
    raw = [w / s * left for w in weights]
    alloc = [math.floor(r) for r in raw]
    rem = left - sum(alloc)
    order = sorted(range(len(weights)), key=lambda i: (-(raw[i] - alloc[i]), i))
    for i in order[:rem]:
        alloc[i] += 1
    return [b + a for b, a in zip(base, alloc, strict=True)]


def _split_scene(sc: SceneDraft, parts: int) -> list[SceneDraft]:
    """Cut a scene at paragraph boundaries into ``parts`` pieces of similar length."""
    paras: list[list[Segment]] = []
    for s in sc.segs:
        if not paras or paras[-1][-1].para != s.para:
            paras.append([])
        paras[-1].append(s)
    parts = max(1, min(parts, len(paras)))
    total = sum(s.end - s.start for s in sc.segs) or 1
    out: list[SceneDraft] = []
    acc = 0
    cur = SceneDraft(chapter=sc.chapter, place=sc.place, time_of_day=sc.time_of_day, int_ext=sc.int_ext,
                     place_span=sc.place_span)
    for k, para in enumerate(paras):
        cur.segs.extend(para)
        acc += sum(s.end - s.start for s in para)
        remaining_parts = parts - len(out) - 1
        if remaining_parts > 0 and acc >= total * (len(out) + 1) / parts and len(paras) - k - 1 >= remaining_parts:
            out.append(cur)
            cur = SceneDraft(chapter=sc.chapter, place=sc.place, time_of_day=sc.time_of_day, int_ext=sc.int_ext)
    if cur.segs:
        out.append(cur)
    return out


def plan_episodes(an: Analysis, episodes: int | None) -> list[list[int]]:
    """Scene indices of each episode, contiguous and in story order."""
    chapters: list[list[int]] = []
    for k, sc in enumerate(an.scenes):
        if not chapters or an.scenes[chapters[-1][0]].chapter != sc.chapter:
            chapters.append([])
        chapters[-1].append(k)
    weights = [sum(an.scenes[k].chars() for k in ch) for ch in chapters]
    total_chars = sum(weights)
    if episodes is None:
        episodes = max(len(chapters), math.ceil(total_chars / CHARS_PER_EPISODE))
    if episodes >= len(chapters):
        alloc = _largest_remainder([float(w) for w in weights], episodes, 1)
        plan: list[list[int]] = []
        for ch, k in zip(chapters, alloc, strict=True):
            plan.extend(_partition(an, ch, k))
        return plan
    # fewer episodes than chapters: consecutive chapters share an episode
    plan = []
    acc = 0
    target = total_chars / episodes
    cur: list[int] = []
    for i, (ch, w) in enumerate(zip(chapters, weights, strict=True)):
        cur.extend(ch)
        acc += w
        left_eps = episodes - len(plan) - 1
        left_chaps = len(chapters) - i - 1
        if left_eps > 0 and (acc >= target * (len(plan) + 1) or left_chaps == left_eps):
            plan.append(cur)
            cur = []
    if cur:
        plan.append(cur)
    return plan


def _partition(an: Analysis, scene_ids: list[int], k: int) -> list[list[int]]:
    """Split one chapter's scenes into ``k`` groups; split scenes when there are too few."""
    if k <= 1:
        return [list(scene_ids)]
    ids = list(scene_ids)
    while len(ids) < k:
        biggest = max(ids, key=lambda i: an.scenes[i].chars())
        pieces = _split_scene(an.scenes[biggest], 2)
        if len(pieces) < 2:
            break
        _replace_scene(an, biggest, pieces)
        pos = ids.index(biggest)
        new_ids = [biggest] + list(range(len(an.scenes) - len(pieces) + 1, len(an.scenes)))
        ids[pos:pos + 1] = new_ids
    weights = [an.scenes[i].chars() for i in ids]
    total = sum(weights) or 1
    groups: list[list[int]] = []
    cur: list[int] = []
    acc = 0
    for j, (i, w) in enumerate(zip(ids, weights, strict=True)):
        cur.append(i)
        acc += w
        left_groups = k - len(groups) - 1
        if left_groups > 0 and (acc >= total * (len(groups) + 1) / k or len(ids) - j - 1 == left_groups):
            groups.append(cur)
            cur = []
    if cur:
        groups.append(cur)
    return groups


def _replace_scene(an: Analysis, index: int, pieces: list[SceneDraft]) -> None:
    """Put ``pieces[0]`` at ``index`` and append the rest; re-point the units."""
    an.scenes[index] = pieces[0]
    start_new = len(an.scenes)
    an.scenes.extend(pieces[1:])
    bounds = [(p.start, p.end, idx) for p, idx in zip(pieces, [index, *range(start_new, len(an.scenes))], strict=True)]
    for u in an.units:
        if u.scene == index:
            for a, b, idx in bounds:
                if a <= u.start < b or (a <= u.start and u.end <= b):
                    u.scene = idx
                    break


# --- staging -----------------------------------------------------------------------------------


class Stager:
    """Turns chosen units into scenes and shots; owns ids, sizes, moves and prompts."""

    def __init__(self, an: Analysis) -> None:
        self.an = an
        self.text = an.novel.text
        self.named = {p.name for p in an.cast.people if not p.generic}
        people = {p.name: p for p in an.cast.people}
        self.looks = {name: _short_look(self.text, an.cast, people[name]) for name in list(people)[:30]}

    def scene(self, ep: int, number: int, sc: SceneDraft, units: list[Unit]) -> Scene:
        text = self.text
        shots: list[Shot] = []
        place = sc.place or "未知地点"
        time_zh = _TIME_ZH.get(sc.time_of_day, "日")
        scene_chars: list[str] = []
        for u in units:
            for n in ([u.speaker] if u.kind != "narration" else list(u.names)):
                if n and n not in scene_chars and n not in (NARRATOR, UNKNOWN, CROWD):
                    scene_chars.append(n)
        sid = f"e{ep:02d}s{number:02d}"

        def new_shot(size: ShotSize, camera: CameraMove, lines: list[Unit], characters: list[str], prompt: str) -> None:
            k = len(shots) + 1
            line_objs = [
                Line(
                    speaker=u.speaker,
                    text=text[u.start:u.end],
                    kind=LineKind(u.kind),
                    source=SourceSpan(chapter=u.chapter, start=u.start, end=u.end),
                    emotion=u.emotion,
                )
                for u in lines
            ]
            src_text = "".join(text[u.start:u.end] for u in lines)
            sfx = [label for rx, label in _SFX if rx.search(src_text)][:2]
            shots.append(
                Shot(
                    id=f"{sid}k{k:02d}",
                    size=size,
                    camera=camera,
                    visual_prompt=prompt,
                    seconds=shot_seconds([u.seconds for u in lines]),
                    lines=line_objs,
                    sfx=sfx,
                    characters=characters,
                    source=SourceSpan(chapter=lines[0].chapter, start=min(u.start for u in lines),
                                      end=max(u.end for u in lines)) if lines else None,
                )
            )

        # establishing shot: the place, with the narration that names it when we have it
        est_lines: list[Unit] = []
        rest = list(units)
        if sc.place_span:
            for j, u in enumerate(rest):
                if u.kind == "narration" and u.start <= sc.place_span[0] < u.end:
                    est_lines = [rest.pop(j)]  # the narration naming the place opens the scene
                    break
        cast_hint = "、".join(scene_chars[:3])
        est_prompt = f"{'外景' if sc.int_ext == 'EXT' else '内景'}，{place}，{time_zh}，全景" + (f"，{cast_hint}在场" if cast_hint else "")
        new_shot(ShotSize.EXTREME_WIDE if sc.int_ext == "EXT" else ShotSize.WIDE,
                 CameraMove.PAN_RIGHT if sc.int_ext == "EXT" else CameraMove.PUSH_IN,
                 est_lines, [n for n in scene_chars[:3]], est_prompt)

        # coverage: narration in pairs, dialogue by speaker turns of up to three lines
        i = 0
        turn = 0
        while i < len(rest):
            u = rest[i]
            if u.kind == "narration":
                group = [u]
                while (i + len(group) < len(rest) and len(group) < 2 and rest[i + len(group)].kind == "narration"
                       and rest[i + len(group)].para == u.para
                       and u.seconds + rest[i + len(group)].seconds <= MAX_SHOT_SPEECH_S):
                    group.append(rest[i + len(group)])
                names = list(dict.fromkeys(n for g in group for n in g.names if n in self.named or n in scene_chars))[:3]
                body = "".join(self.text[g.start:g.end] for g in group)
                action = _ACTION.search(body) is not None
                prompt = f"{place}，{time_zh}，" + ("、".join(names) + "，" if names else "") + _gist(body)
                new_shot(ShotSize.MEDIUM if names else ShotSize.WIDE,
                         CameraMove.HANDHELD if action else CameraMove.STATIC, group, names, prompt)
                i += len(group)
                continue
            group = [u]
            while (i + len(group) < len(rest) and len(group) < 3 and rest[i + len(group)].kind != "narration"
                   and rest[i + len(group)].speaker == u.speaker and rest[i + len(group)].seg == u.seg
                   and sum(g.seconds for g in group) + rest[i + len(group)].seconds <= MAX_SHOT_SPEECH_S):
                group.append(rest[i + len(group)])
            ten = max(g.tension for g in group)
            if u.kind == "vo":
                size, camera = ShotSize.CLOSE, CameraMove.PUSH_IN
            elif ten >= 1.5:
                size, camera = ShotSize.CLOSE, CameraMove.PUSH_IN
            elif turn == 0:
                size, camera = ShotSize.MEDIUM, CameraMove.STATIC
            else:
                size, camera = (ShotSize.MEDIUM_CLOSE if turn % 2 else ShotSize.MEDIUM), CameraMove.STATIC
            turn += 1
            who = u.speaker
            look = self.looks.get(who, "")
            mood = u.emotion or "说话"
            verb = {"vo": "内心独白", "os": "画外音"}.get(u.kind, mood)
            prompt = f"{place}，{time_zh}，{who}" + (f"（{look}）" if look else "") + f"，{verb}"
            on_screen = [who] if who not in (UNKNOWN, CROWD) and u.kind != "os" else []
            new_shot(size, camera, group, on_screen, prompt)
            i += len(group)

        chapter = sc.chapter
        summary_src = next((u for u in units if u.kind == "narration"), None)
        summary = _gist(text[summary_src.start:summary_src.end], 40) if summary_src else ""
        return Scene(
            id=sid,
            int_ext=sc.int_ext,
            place=place,
            time_of_day=sc.time_of_day,
            characters=[c for c in scene_chars if c not in (UNKNOWN, CROWD)],
            summary=summary,
            shots=shots,
            source=SourceSpan(chapter=chapter, start=sc.start, end=sc.end),
        )


def _gist(s: str, limit: int = 24) -> str:
    s = re.sub(r"\s+", "", s)
    first = re.split(r"[。！？!?；;]", s)[0]
    return first[:limit]


def _short_look(text: str, cast: Cast, person: Person) -> str:
    """A few words of appearance for prompts: the first clause near the name with a looks cue."""
    for alias in [person.name, *person.aliases][:3]:
        if len(alias) < 2:
            continue
        pos = 0
        for _ in range(40):
            pos = text.find(alias, pos)
            if pos < 0:
                break
            window = text[pos:pos + 60]
            m = _LOOKS.search(window)
            if m:
                a = max(window.rfind(c, 0, m.start()) for c in "，。！？；、：\n“”") + 1
                ends = [x for x in (window.find(c, m.end()) for c in "，。！？；、：\n“”") if x >= 0]
                clause = window[a:min(ends) if ends else len(window)]
                if 4 <= len(clause) <= 14 and clause not in (m.group(0),) and not cast.find(clause):
                    return clause
            pos += len(alias)
    return ""


def _appearance(text: str, person: Person) -> str:
    for alias in [person.name, *person.aliases][:3]:
        if len(alias) < 2:
            continue
        pos = 0
        for _ in range(60):
            pos = text.find(alias, pos)
            if pos < 0:
                break
            a = max(text.rfind(c, 0, pos) for c in "。！？\n") + 1
            b_candidates = [x for x in (text.find(c, pos) for c in "。！？\n") if x >= 0]
            b = min(b_candidates) + 1 if b_candidates else len(text)
            sentence = text[a:b].strip()
            if _LOOKS.search(sentence) and len(sentence) <= 120 and "“" not in sentence:
                return sentence
            pos += len(alias)
    return ""


def _first_sentence(text: str, person: Person) -> str:
    pos = text.find(person.name)
    if pos < 0:
        return ""
    a = max(text.rfind(c, 0, pos) for c in "。！？\n") + 1
    ends = [x for x in (text.find(c, pos) for c in "。！？\n") if x >= 0]
    b = min(ends) + 1 if ends else len(text)
    s = text[a:b].strip()
    return s if len(s) <= 120 else s[:120] + "……"


def _voice_hint(person: Person) -> str:
    names = " ".join([person.name, *person.aliases])
    gender = "female" if _FEMALE.search(names) else "male"
    age = "old" if _OLD.search(names) else ("child" if _CHILD.search(names) else "adult")
    return f"zh-{gender}-{age}"


class OfflineEngine(ScriptEngine):
    """Rules only: deterministic, no model, no network."""

    name = "offline"

    def generate(self, novel: NovelText, inp: ScriptInput, ctx: RunContext) -> EngineResult:
        t0 = time.perf_counter()
        an = analyse(novel, ctx)
        series, report = build_series(an, inp, ctx)
        wall = seconds_since(t0, time.perf_counter())
        record = UsageRecord(
            stage="script", engine="offline", unit="cpu_second", quantity=wall, model=ENGINE_VERSION,
            device="cpu", seconds=wall, licence="Apache-2.0 (ReelForge offline rules, no model)",
            detail={"characters": len(novel.text), "episodes": len(series.episodes),
                    "shots": sum(len(e.shots()) for e in series.episodes)},
        )
        report["seconds"] = str(wall)
        return EngineResult(series=series, usage=[record], report=report)


def build_series(an: Analysis, inp: ScriptInput, ctx: RunContext | None = None,
                 plan: list[list[int]] | None = None) -> tuple[Series, dict[str, Any]]:
    """Pack, stage and title the episodes. ``plan`` (scene ids per episode) defaults to :func:`plan_episodes`."""
    novel = an.novel
    target = float(inp.episode_seconds)
    if plan is None:
        plan = plan_episodes(an, inp.episodes)
    if inp.episodes is not None and len(plan) < inp.episodes and ctx:
        ctx.warn(f"源文本只够 {len(plan)} 集 / asked for {inp.episodes} episodes, the source has material for "
                 f"{len(plan)} (one paragraph at least per episode)")
    stager = Stager(an)
    units_by_scene: dict[int, list[Unit]] = {}
    for u in an.units:
        units_by_scene.setdefault(u.scene, []).append(u)
    titles = _episode_titles(an, plan)
    episodes: list[Episode] = []
    cliff_scores: list[float] = []
    short: list[tuple[int, float]] = []
    for e_idx, scene_ids in enumerate(plan, start=1):
        if ctx:
            ctx.step(0.4 + 0.55 * (e_idx - 1) / max(1, len(plan)), f"episode {e_idx}/{len(plan)}")
        ep, cliff = _episode(an, stager, e_idx, scene_ids, units_by_scene, target)
        ep.title = titles[e_idx - 1]
        total = sum(s.seconds for s in ep.shots())
        if total < target * (1 - TOLERANCE):
            short.append((e_idx, total))
        episodes.append(ep)
        cliff_scores.append(cliff)
    # the pay point: the strongest cliffhanger among episodes ~10-25 % into the series
    if len(episodes) >= 3:
        lo = max(1, round(len(episodes) * 0.1))
        hi = max(lo, min(len(episodes) - 1, round(len(episodes) * 0.25)))
        best = max(range(lo, hi + 1), key=lambda n: (cliff_scores[n - 1], -n))
        episodes[best - 1].paywall = True
    if short and ctx:
        ctx.warn(
            f"源文本不足，{len(short)} 集短于目标时长 {target:g} 秒 / the source is too short for "
            f"{len(short)} episode(s) at {target:g} s (e.g. episode {short[0][0]}: {short[0][1]:.0f} s); "
            "ask for fewer episodes or a shorter --episode-seconds"
        )
    used = {ln.speaker for ep in episodes for sh in ep.shots() for ln in sh.lines}
    characters = _characters(an, used)
    locations = _locations(an, episodes)
    title = inp.title or an.book.title or novel.title_hint or "未命名"
    leads = [c.name for c in characters if c.role == "lead"][:2]
    genre = _genre(novel.text)
    logline = (f"根据《{title}》改编的{len(episodes)}集竖屏短剧" + (f"，主角{'、'.join(leads)}" if leads else "")
               + f"，每集约{target:g}秒。")
    series = Series(
        title=title,
        logline=logline,
        genre=genre,
        characters=characters,
        locations=locations,
        episodes=episodes,
        source=SourceInfo(path=novel.path, sha256=novel.sha256, encoding=novel.encoding,
                          chapters=[c.title for c in an.book.chapters]),
        engine=ENGINE_VERSION,
    )
    report = {
        "chapters": len(an.book.chapters),
        "junk_lines": an.book.junk_lines,
        "characters": len(characters),
        "speeches": sum(1 for s in an.segments if s.kind == "speech"),
        "attribution": dict(an.attribution),
        "episodes": len(episodes),
        "short_episodes": [n for n, _s in short],
    }
    return series, report


def _episode(an: Analysis, stager: Stager, number: int, scene_ids: list[int],
             units_by_scene: dict[int, list[Unit]], target: float) -> tuple[Episode, float]:
    max_scenes = max(1, round(target / 30))
    candidates = [k for k in scene_ids if units_by_scene.get(k)]
    if not candidates:
        candidates = scene_ids[:1]

    def scene_value(k: int) -> float:
        us = sorted((u.score for u in units_by_scene.get(k, [])), reverse=True)[:8]
        dialogue = sum(1 for u in units_by_scene.get(k, []) if u.kind != "narration")
        return sum(us) + min(dialogue, 10) * 0.3

    chosen = set(candidates)
    if len(candidates) > max_scenes:
        keep = {candidates[-1]}  # the last scene carries the cliffhanger
        for k in sorted(candidates[:-1], key=lambda k: (-scene_value(k), k)):
            if len(keep) >= max_scenes:
                break
            keep.add(k)
        chosen = keep
    order = [k for k in candidates if k in chosen]
    spare = [k for k in candidates if k not in chosen]

    # the cliffhanger: the tensest line in the back half of the last scene; nothing after it
    last = order[-1]
    last_units = units_by_scene.get(last, [])
    cliff_unit: Unit | None = None
    if last_units:
        back = last_units[len(last_units) // 2:]
        cliff_unit = max(back, key=lambda u: (u.tension + (0.5 if u.kind != "narration" else 0.0) - (3 if u.poem else 0),
                                              u.start))
    cut = cliff_unit.end if cliff_unit else None

    def blocks_of(k: int) -> list[Block]:
        us = [u for u in units_by_scene.get(k, []) if cut is None or k != last or u.end <= cut]
        out: list[Block] = []
        i = 0
        sc = an.scenes[k]
        while i < len(us):
            u = us[i]
            if u.kind == "narration":
                forced = bool(sc.place_span and u.start <= sc.place_span[0] < u.end) or (u is cliff_unit)
                out.append(Block([u], k, u.score + (5.0 if forced else 0.0), u.seconds + 0.3, forced))
                i += 1
                continue
            run = [u]
            while (i + len(run) < len(us) and len(run) < 6 and us[i + len(run)].kind != "narration"
                   and us[i + len(run)].para - run[-1].para <= 1
                   and sum(x.seconds for x in run) + us[i + len(run)].seconds <= 20):
                run.append(us[i + len(run)])
            forced = cliff_unit is not None and any(x is cliff_unit for x in run)
            speakers = len({x.speaker for x in run})
            score = sum(x.score for x in run) + 1.5 * (speakers - 1)  # an exchange beats a lone line
            out.append(Block(run, k, score + (5.0 if forced else 0.0), sum(x.seconds for x in run) + 0.5 * len(run), forced))
            i += len(run)
        return out

    pool: dict[int, list[Block]] = {k: blocks_of(k) for k in order + spare}
    # the place narration is forced only when it opens the scene's chosen material; keep it cheap
    selected: list[Block] = [b for k in order for b in pool[k] if b.forced]
    budget = target * 0.97

    def est(blocks: list[Block]) -> float:
        scenes_in = {b.scene for b in blocks}
        return sum(b.seconds for b in blocks) + 2.2 * len(scenes_in)

    remaining = sorted((b for k in order for b in pool[k] if not b.forced),
                       key=lambda b: (-_value(b), b.order))
    for b in remaining:
        if est(selected + [b]) <= budget:
            selected.append(b)
    # still short: borrow from scenes left out, best first
    if est(selected) < target * _FILL_LOW and spare:
        extra = sorted((b for k in spare for b in pool[k] if b.order < (cut or 1 << 60)),
                       key=lambda b: (-_value(b), b.order))
        for b in extra:
            if est(selected + [b]) <= budget:
                selected.append(b)

    def build(blocks: list[Block]) -> Episode:
        by_scene: dict[int, list[Unit]] = {}
        for b in sorted(blocks, key=lambda b: b.order):
            by_scene.setdefault(b.scene, []).extend(b.units)
        scenes_out = []
        for n, k in enumerate(sorted(by_scene, key=lambda k: an.scenes[k].start), start=1):
            us = sorted(by_scene[k], key=lambda u: u.start)
            scenes_out.append(stager.scene(number, n, an.scenes[k], us))
        return Episode(number=number, title="", target_seconds=target, scenes=scenes_out)

    ep = build(selected)
    # exact fit: the staged length (shot padding, establishing shots) decides
    for _ in range(60):
        total = sum(s.seconds for s in ep.shots())
        if total > target * _FILL_HIGH:
            droppable = [b for b in selected if not b.forced]
            if not droppable:
                break
            worst = min(droppable, key=lambda b: (_value(b), -b.order))
            selected.remove(worst)
        elif total < target * _FILL_LOW:
            in_scenes = {b.scene for b in selected}
            taken = {id(b) for b in selected}
            left = [b for k in order + spare for b in pool[k] if id(b) not in taken
                    and (b.scene in in_scenes or total + b.seconds + 3 < target * _FILL_HIGH)]
            fitting = [b for b in left if b.seconds <= target * _FILL_HIGH - total]
            if not fitting:
                break
            best = max(fitting, key=lambda b: (_value(b), -b.order))
            selected.append(best)
        else:
            break
        ep = build(selected)

    lines = [(ln, sh) for sh in ep.shots() for ln in sh.lines]
    if lines:
        head = lines[: max(1, len(lines) // 3)]
        hook_line = max(head, key=lambda x: (_tension(x[0].text) + (0.5 if x[0].kind != "narration" else 0), -lines.index(x)))[0]
        ep.hook = f"{hook_line.speaker}：{hook_line.text}" if hook_line.kind != "narration" else hook_line.text
        last_line = lines[-1][0]
        ep.cliffhanger = f"{last_line.speaker}：{last_line.text}" if last_line.kind != "narration" else last_line.text
    cliff = _tension(lines[-1][0].text) if lines else 0.0
    return ep, cliff


def _episode_titles(an: Analysis, plan: list[list[int]]) -> list[str]:
    """The chapter's name; a chapter spread over several episodes numbers its parts."""
    by_index = {c.index: c for c in an.book.chapters}
    firsts = [an.scenes[ids[0]].chapter if ids else 0 for ids in plan]
    spans = [{an.scenes[k].chapter for k in ids} for ids in plan]
    per_chapter = Counter(next(iter(sp)) for sp in spans if len(sp) == 1)
    seen: Counter[int] = Counter()
    titles: list[str] = []
    for n, (ch, sp) in enumerate(zip(firsts, spans, strict=True), start=1):
        chapter = by_index.get(ch)
        if chapter is None:
            titles.append(f"第{n}集")
            continue
        name = re.sub(r"[\u3000\s]+", " ", chapter.name or chapter.label).strip()
        if len(sp) == 1 and per_chapter[ch] > 1:
            seen[ch] += 1
            name = f"{name}（{seen[ch]}）"
        titles.append(name)
    return titles


def _characters(an: Analysis, used: set[str]) -> list[Character]:
    text = an.novel.text
    out: list[Character] = []
    seen: set[str] = set()
    for p in an.cast.people:
        if p.role == "extra" and p.name not in used:
            continue
        if len(out) >= 40 and p.name not in used:
            continue
        out.append(Character(
            name=p.name,
            aliases=[a for a in p.aliases if len(a) >= 2 or p.name.endswith(a)],
            description=_first_sentence(text, p),
            appearance=_appearance(text, p),
            voice=_voice_hint(p),
            role=p.role,
            mentions=p.mentions,
        ))
        seen.add(p.name)
    for name in sorted(used - seen - {NARRATOR}):
        generic = name in GENERIC or name in (UNKNOWN, CROWD)
        p = Person(name=name, generic=generic)
        out.append(Character(name=name, aliases=[], description="", appearance="", voice=_voice_hint(p),
                             role="extra", mentions=0))
    return out


def _locations(an: Analysis, episodes: list[Episode]) -> list[Location]:
    seen: dict[str, Location] = {}
    for ep in episodes:
        for sc in ep.scenes:
            if sc.place and sc.place not in seen:
                seen[sc.place] = Location(name=sc.place, int_ext=sc.int_ext, description=sc.summary)
    return list(seen.values())


def _genre(text: str) -> str:
    sample = text[:200_000]
    scores = [(len(rx.findall(sample)), name) for name, rx in _GENRES]
    scores.sort(reverse=True)
    return scores[0][1] if scores and scores[0][0] > 0 else "剧情"
