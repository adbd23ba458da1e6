"""Staging: chosen lines become scenes and shots; the cast cards and the place list.

The :class:`Stager` owns shot ids, sizes, camera moves and the visual prompts (place, time,
who is on screen, a few words of their looks); :func:`cast_cards` writes each character's
description, appearance and voice hint from the first sentences that mention them.
"""

from __future__ import annotations

import re

from agents.script.attribute import CROWD, UNKNOWN
from agents.script.characters import GENERIC, Cast, Person
from agents.script.scenes import SceneDraft
from agents.script.timing import shot_seconds
from agents.script.units import _ACTION, NARRATOR, Analysis, Unit
from core.screenplay import (
    CameraMove,
    Character,
    Episode,
    Line,
    LineKind,
    Location,
    Scene,
    Shot,
    ShotSize,
    SourceSpan,
)

MAX_SHOT_SPEECH_S = 8.0  # a longer speech is covered by several shots (cutaways)
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
_FEMALE = re.compile(r"妈|嫂|姐|妹|娘|女|婆|妇|夫人|小姐|姑娘|太太|奶奶|公主|尼姑|姑|妃|后$|母")
_OLD = re.compile(r"老|翁|爷|叟|婆|太太|奶奶|长老|公$|伯|祖")
_CHILD = re.compile(r"童|孩|儿$|小厮")
_LOOKS = re.compile(r"生得|身长|面如|头戴|身穿|模样|相貌|长得|穿着|打扮|披着|戴着|腰系|腰挎|胡须|胡子|辫子|癞疮疤|络腮|"
                    r"满脸|眉清目秀|赤着膊|虎皮|嘴脸|毛脸|长嘴|大耳|面皮")


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



def cast_cards(an: Analysis, used: set[str]) -> list[Character]:
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


def locations_of(an: Analysis, episodes: list[Episode]) -> list[Location]:
    seen: dict[str, Location] = {}
    for ep in episodes:
        for sc in ep.scenes:
            if sc.place and sc.place not in seen:
                seen[sc.place] = Location(name=sc.place, int_ext=sc.int_ext, description=sc.summary)
    return list(seen.values())

