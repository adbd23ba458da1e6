"""From a finished :class:`~agents.script.llm.draft.Draft` to a typed :class:`~core.screenplay.Series`.

Lines that the model copied from the novel get source spans; lines it rewrote are snapped to the
closest source sentence when they are close enough (:data:`SNAP_RATIO`), otherwise kept without a
span and counted in a warning. :func:`trace_lines` is the same search, used by the engine to
refuse a reply whose lines mostly cannot be found in the source.
"""

from __future__ import annotations

import bisect
import difflib
import re
from typing import TYPE_CHECKING, Any

from agents.script.base import ScriptInput
from agents.script.llm.draft import Draft, ScenePlan, ScenesPlan, ShotsPlan
from agents.script.offline import NARRATOR, TOLERANCE, Analysis
from agents.script.reader import NovelText
from agents.script.segment import BAD_CHARS, speakable_pieces
from agents.script.timing import line_seconds, shot_seconds
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

if TYPE_CHECKING:
    from agents.base import RunContext

SNAP_RATIO = 0.8  # a rewritten line this close to a source sentence is replaced by that sentence


def assemble(novel: NovelText, an: Analysis, draft: Draft, inp: ScriptInput, ctx: RunContext, *,
             language: str, engine: str) -> tuple[Series, dict[str, Any]]:
    """The screenplay of ``draft``; ``engine`` is written into it (``name:model``)."""
    assert draft.logline is not None and draft.cast is not None
    text = novel.text
    chapters = ChapterTable(an)
    known: dict[str, str] = {}
    for c in draft.cast.characters:
        for alias in [c.name, *c.aliases]:
            known.setdefault(alias, c.name)
    stats = {"lines": 0, "exact": 0, "snapped": 0, "unsourced": 0}
    episodes: list[Episode] = []
    used: set[str] = set()
    for ep_plan in draft.outline:
        n = ep_plan.number
        a, b = draft.ranges[n - 1]
        pieces = speakable_pieces(text, a, b)
        scenes: list[Scene] = []
        for k, sc in enumerate(draft.scenes.get(str(n), ScenesPlan(scenes=[ScenePlan()])).scenes, start=1):
            plan = draft.shots.get(f"{n}:{k}")
            if plan is None:
                continue
            sid = f"e{n:02d}s{k:02d}"
            shots: list[Shot] = []
            for j, sp in enumerate(plan.shots, start=1):
                lines: list[Line] = []
                for lp in sp.lines:
                    speaker = _clean_speaker(lp.speaker, known)
                    kind = LineKind(lp.kind)
                    if kind == LineKind.NARRATION or speaker in ("旁白", "narrator", "Narrator"):
                        kind, speaker = LineKind.NARRATION, NARRATOR
                    for piece in _split_line(lp.text):
                        stats["lines"] += 1
                        span, final, how = _locate(text, a, b, piece, pieces, chapters)
                        stats[how] += 1
                        lines.append(Line(speaker=speaker, text=final, kind=kind, source=span))
                        used.add(speaker)
                chars = [known.get(c, c) for c in sp.characters if c]
                shots.append(Shot(
                    id=f"{sid}k{j:02d}", size=ShotSize(sp.size), camera=CameraMove(sp.camera),
                    visual_prompt=sp.visual_prompt, seconds=shot_seconds([line_seconds(ln.text, str(ln.kind)) for ln in lines]),
                    lines=lines, sfx=sp.sfx, characters=chars,
                    source=_cover([ln.source for ln in lines if ln.source]),
                ))
            span = _quote_span(text, a, b, sc.source_quote, chapters) or _cover([s.source for s in shots if s.source])
            scenes.append(Scene(id=sid, int_ext=sc.int_ext, place=sc.place, time_of_day=sc.time_of_day,
                                characters=[known.get(c, c) for c in sc.characters], summary=sc.summary,
                                shots=shots, source=span))
        episode = Episode(number=n, title=ep_plan.title, target_seconds=draft.episode_seconds, hook=ep_plan.hook,
                          cliffhanger=ep_plan.cliffhanger, paywall=ep_plan.paywall, scenes=scenes)
        _fit_length(episode, ctx)
        episodes.append(episode)
    paid = [e for e in episodes if e.paywall]
    for extra in paid[1:]:
        extra.paywall = False
    if stats["unsourced"]:
        ctx.warn(f"{stats['unsourced']} of {stats['lines']} lines were rewritten by the model and have no "
                 f"source span / {stats['unsourced']} 句台词为模型改写，无法溯源到原文")
    characters = [Character(name=c.name, aliases=[x for x in c.aliases if x != c.name], description=c.description,
                            appearance=c.appearance, voice=c.voice, role=c.role) for c in draft.cast.characters]
    names = {c.name for c in characters}
    for extra_name in sorted(used - names - {NARRATOR}):
        characters.append(Character(name=extra_name, role="extra"))
    locations: dict[str, Location] = {}
    for e in episodes:
        for s in e.scenes:
            if s.place and s.place not in locations:
                locations[s.place] = Location(name=s.place, int_ext=s.int_ext, description=s.summary)
    series = Series(
        title=inp.title or draft.logline.title, logline=draft.logline.logline, genre=draft.logline.genre,
        language=language, characters=characters, locations=list(locations.values()), episodes=episodes,
        source=SourceInfo(path=novel.path, sha256=novel.sha256, encoding=novel.encoding,
                          chapters=[c.title for c in an.book.chapters]),
        engine=engine,
    )
    return series, {"episodes": len(episodes), "lines": stats}


# --- helpers ----------------------------------------------------------------------------------

_PREFIX = re.compile(r"^\s*[\w\u4e00-\u9fff]{1,8}\s*[（(][^）)]{0,6}[）)]\s*[：:]|^\s*[\w\u4e00-\u9fff]{1,6}\s*[：:]")


def clean_range(text: str, a: int, b: int) -> str:
    """The story text of ``text[a:b]`` without junk lines (ads, update stamps)."""
    from agents.script.text import is_junk, match_heading

    lines = []
    for raw in text[a:b].split("\n"):
        s = raw.strip(" \t\u3000\xa0")
        if s and not is_junk(s) and match_heading(s) is None:
            lines.append(s)
    return "\n".join(lines)


def _clean_speaker(speaker: str, known: dict[str, str]) -> str:
    s = re.sub(r"[（(].*?[）)]", "", speaker or "").strip(" ：:“”\"'")
    return known.get(s, s) or NARRATOR


def _split_line(text: str) -> list[str]:
    """Clean a model's line: no speaker prefix, quotes or brackets; sentence-size pieces."""
    out: list[str] = []
    for part in text.split("\n"):
        t = _PREFIX.sub("", part, count=1) if len(part) > 4 else part
        t = "".join("  " if c in BAD_CHARS else c for c in t)
        for a, b in speakable_pieces(t, 0, len(t)):
            piece = t[a:b].strip()
            if piece:
                out.append(piece)
    return out


def _locate(text: str, a: int, b: int, piece: str, pieces: list[tuple[int, int]],
            chapters: ChapterTable) -> tuple[SourceSpan | None, str, str]:
    """Find ``piece`` in the episode range: exact, else the closest source sentence, else nothing."""
    pos = text.find(piece, a, b)
    if pos < 0:
        pos = text.find(piece)
    if pos >= 0:
        return SourceSpan(chapter=chapters.get(pos), start=pos, end=pos + len(piece)), piece, "exact"
    best: tuple[float, int, int] = (0.0, 0, 0)
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(piece)
    for x, y in pieces:
        cand = text[x:y]
        if abs(len(cand) - len(piece)) > max(6, len(piece) // 2):
            continue
        matcher.set_seq1(cand)
        if matcher.real_quick_ratio() < SNAP_RATIO or matcher.quick_ratio() < SNAP_RATIO:
            continue
        r = matcher.ratio()
        if r > best[0]:
            best = (r, x, y)
    if best[0] >= SNAP_RATIO:
        _r, x, y = best
        return SourceSpan(chapter=chapters.get(x), start=x, end=y), text[x:y], "snapped"
    return None, piece, "unsourced"


class ChapterTable:
    """Offset -> chapter index (spans carry the chapter they fall in)."""

    def __init__(self, an: Analysis) -> None:
        self.starts = sorted(c.start for c in an.book.chapters)
        self.index = [c.index for c in sorted(an.book.chapters, key=lambda c: c.start)]

    def get(self, pos: int) -> int:
        k = bisect.bisect_right(self.starts, pos) - 1
        return self.index[k] if k >= 0 else 0


def _quote_span(text: str, a: int, b: int, quote: str, chapters: ChapterTable) -> SourceSpan | None:
    q = (quote or "").strip()[:20]
    if len(q) < 4:
        return None
    pos = text.find(q, a, b)
    if pos < 0:
        return None
    return SourceSpan(chapter=chapters.get(pos), start=pos, end=min(b, pos + len(q)))


def _cover(spans: list[SourceSpan | None]) -> SourceSpan | None:
    real = [s for s in spans if s is not None]
    if not real:
        return None
    return SourceSpan(chapter=real[0].chapter, start=min(s.start for s in real), end=max(s.end for s in real))


def _fit_length(ep: Episode, ctx: RunContext) -> None:
    """Trim an episode that runs long (middle shots first); report one that runs short."""
    target = ep.target_seconds
    total = sum(s.seconds for s in ep.shots())
    while total > target * (1 + TOLERANCE):
        candidates = [(sc, sh) for sc in ep.scenes for sh in sc.shots[1:]]  # keep each establishing shot
        if len(candidates) <= 1:
            break
        sc, sh = candidates[len(candidates) // 2]
        sc.shots = [s for s in sc.shots if s is not sh]
        total = sum(s.seconds for s in ep.shots())
    if total < target * (1 - TOLERANCE):
        ctx.warn(f"episode {ep.number} is {total:.0f} s, short of its {target:g} s target / 第{ep.number}集仅 {total:.0f} 秒")


def trace_lines(text: str, a: int, b: int, plan: ShotsPlan, pieces: list[tuple[int, int]],
                chapters: ChapterTable) -> tuple[int, list[str]]:
    """How many line pieces of ``plan`` are found in the source (exactly or snapped), and those that are not."""
    traced, missing = 0, []
    for shot in plan.shots:
        for line in shot.lines:
            for piece in _split_line(line.text):
                _span, _final, how = _locate(text, a, b, piece, pieces, chapters)
                if how == "unsourced":
                    missing.append(piece)
                else:
                    traced += 1
    return traced, missing
