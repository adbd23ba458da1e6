"""Speakable units of a novel and what the offline engine learns about it.

A :class:`Unit` is one line the screenplay may use: a narration sentence (cut to subtitle size)
or one whole quoted passage, with the scores the packer ranks them by (tension, who speaks,
whether it is a bare speech tag). :class:`Analysis` is everything :func:`~agents.script.offline.analyse`
finds, reused by the LLM engines and the hybrid attribution.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from agents.script.attribute import UNKNOWN
from agents.script.characters import Cast
from agents.script.reader import NovelText
from agents.script.scenes import SceneDraft
from agents.script.segment import HAS_CONTENT, POST_SPEECH, SPEECH_VERB, Segment, speakable_pieces
from agents.script.text import Book
from agents.script.timing import line_seconds

NARRATOR = "旁白"

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


def tension(s: str) -> float:
    t = min(1.5, 0.5 * (s.count("！") + s.count("!"))) + min(0.8, 0.4 * (s.count("？") + s.count("?")))
    t += min(1.6, 0.4 * len(_TENSION_WORDS.findall(s)))
    return round(t, 2)


def emotion(tag: str, text: str) -> str:
    for rx, label in _EMOTION:
        if rx.search(tag[-8:]):
            return label
    if "！" in text or "!" in text:
        return "激动"
    if "？" in text or "?" in text:
        return "疑问"
    return ""



def _strip(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a] in " \t\r\n\u3000\xa0":
        a += 1
    while b > a and text[b - 1] in " \t\r\n\u3000\xa0":
        b -= 1
    return a, b


def make_units(text: str, segments: list[Segment], cast: Cast, seg_scene: dict[int, int]) -> list[Unit]:
    """Score every speakable line: each quoted passage whole, narration in subtitle-size pieces."""
    units: list[Unit] = []
    lead_names = {p.name for p in cast.people if p.role == "lead"}
    named = {p.name for p in cast.people if not p.generic}
    for i, seg in enumerate(segments):
        if seg.kind == "speech":
            a, b = _strip(text, seg.start, seg.end)
            pieces = [(a, b)] if b > a and HAS_CONTENT.search(text, a, b) else []  # the quoted passage, whole
        else:
            pieces = speakable_pieces(text, seg.start, seg.end, narration=True)
        if not pieces:
            continue
        if seg.kind == "speech":
            kind = seg.line_kind
            speaker = seg.speaker or UNKNOWN
            for a, b in pieces:
                s = text[a:b]
                ten = tension(s)
                score = 3.0 + ten
                score += 0.8 if speaker in named else 0.0
                score += 0.5 if speaker in lead_names else 0.0
                score -= 0.8 if seg.how in ("last", "none") else 0.0
                score -= 0.5 if len(s) < 4 else 0.0
                units.append(Unit(a, b, kind, speaker, i, seg_scene[i], seg.chapter, seg.para,
                                  line_seconds(s, "dialogue"), score, ten, emotion(seg.pre, s)))
        else:
            poem = seg.kind == "poem"
            for a, b in pieces:
                s = text[a:b]
                if _META.search(s):
                    continue
                names = tuple(dict.fromkeys(n for _x, _y, n in cast.find(s)))
                ten = tension(s)
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
    return units
