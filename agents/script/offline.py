"""The offline script engine: a whole novel to an episodic screenplay with no model.

Deterministic (same input, same JSON) and fast (西游记, 2 MB, in seconds on two cores).
Steps: clean and split chapters (:mod:`.text`), split narration and speech (:mod:`.segment`),
find the cast (:mod:`.characters`, modern names in :mod:`.people`), attribute speakers with a
confidence (:mod:`.attribute`), cut scenes (:mod:`.scenes`), score the lines (:mod:`.units`), then
for each episode pick the lines that carry the story within the time budget (:mod:`.packing`),
stage them as shots (:mod:`.staging`), and choose a hook, a cliffhanger and the pay point.

Every line is a span of the decoded novel: ``novel.text[line.source.start:line.source.end] ==
line.text``. Nothing is paraphrased; condensing is done by choosing what to keep. Each quoted
passage is one dialogue line with its exact text; quoted lines come first when packing, and any
that an episode's length forces out are listed in the report (``cut_lines``) with the reason.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any

from agents.script.attribute import attribute
from agents.script.base import EngineResult, ScriptEngine, ScriptInput
from agents.script.characters import NGramStats, discover_cast
from agents.script.packing import (
    CHARS_PER_EPISODE,
    TOLERANCE,
    episode_titles,
    pack_episode,
    plan_episodes,
)
from agents.script.reader import NovelText
from agents.script.scenes import split_scenes
from agents.script.segment import Segment, segment_paragraph
from agents.script.staging import Stager, cast_cards, locations_of
from agents.script.text import split_book
from agents.script.units import NARRATOR, Analysis, Unit, make_units
from core.errors import InputError
from core.screenplay import Episode, Series, SourceInfo
from core.usage import UsageRecord, seconds_since

if TYPE_CHECKING:
    from agents.base import RunContext

__all__ = ["CHARS_PER_EPISODE", "ENGINE_VERSION", "NARRATOR", "TOLERANCE", "Analysis", "OfflineEngine", "Unit",
           "analyse", "build_series", "plan_episodes"]

log = logging.getLogger(__name__)

ENGINE_VERSION = "offline-rules-1"
_GENRES = (
    ("神魔", re.compile(r"妖|仙|佛|菩萨|神通|法力|天宫|龙王|修行|魔")),
    ("历史", re.compile(r"丞相|将军|天子|诸侯|兵马|太守|朝廷|陛下|主公")),
    ("都市", re.compile(r"总裁|公司|手机|电话|汽车|老板|别墅|集团")),
    ("言情", re.compile(r"爱|喜欢|心动|吻|婚|恋")),
    ("乡土", re.compile(r"庄|村|土谷祠|酒店|赌|辫子|秀才|太爷")),
)


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
    cast = discover_cast(text, [(s.pre, s.post) for s in segments if s.kind == "speech"], stats=stats,
                         narration=[(s.start, s.end) for s in segments if s.kind == "narration"])
    del stats
    if ctx:
        ctx.step(0.3, f"{len(cast.people)} characters")
    how = attribute(segments, text, cast)
    scenes = split_scenes(text, segments, paragraph_starts,
                          headings={p.chapter: ch.name for ch in book.chapters for p in ch.paragraphs[:1]})
    seg_scene: dict[int, int] = {}
    seg_index = {id(member): i for i, member in enumerate(segments)}
    for k, sc in enumerate(scenes):
        for member in sc.segs:
            seg_scene[seg_index[id(member)]] = k
    units = make_units(text, segments, cast, seg_scene)
    if ctx:
        ctx.step(0.4, f"{len(scenes)} scenes, {len(units)} lines")
    return Analysis(novel, book, segments, cast, scenes, units, how)



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
    titles = episode_titles(an, plan)
    episodes: list[Episode] = []
    cliff_scores: list[float] = []
    short: list[tuple[int, float]] = []
    for e_idx, scene_ids in enumerate(plan, start=1):
        if ctx:
            ctx.step(0.4 + 0.55 * (e_idx - 1) / max(1, len(plan)), f"episode {e_idx}/{len(plan)}")
        ep, cliff = pack_episode(an, stager, e_idx, scene_ids, units_by_scene, target)
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
    cut = _cut_lines(an, plan, episodes)
    if cut and ctx:
        ctx.warn(f"{len(cut)} 句台词因单集时长被删，见报告 / {len(cut)} quoted lines did not fit their episode's "
                 f"{target:g} s and were cut; the report lists them (ask for more episodes to keep them)")
    used = {ln.speaker for ep in episodes for sh in ep.shots() for ln in sh.lines}
    characters = cast_cards(an, used)
    locations = locations_of(an, episodes)
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
        "cut_lines": cut,
    }
    return series, report



def _cut_lines(an: Analysis, plan: list[list[int]], episodes: list[Episode]) -> list[dict[str, Any]]:
    """Every quoted line of the source that no episode kept, with where it was and why."""
    kept = {(ln.source.start, ln.source.end) for ep in episodes for sh in ep.shots() for ln in sh.lines
            if ln.source is not None}
    episode_of = {k: n for n, ids in enumerate(plan, start=1) for k in ids}
    out: list[dict[str, Any]] = []
    for u in an.units:
        if u.kind != "narration" and (u.start, u.end) not in kept:
            out.append({"episode": episode_of.get(u.scene, 0), "chapter": u.chapter, "start": u.start, "end": u.end,
                        "speaker": u.speaker, "text": an.novel.text[u.start:u.end],
                        "reason": "episode length" if u.scene in episode_of else "scene not in any episode"})
    return out


def _genre(text: str) -> str:
    sample = text[:200_000]
    scores = [(len(rx.findall(sample)), name) for name, rx in _GENRES]
    scores.sort(reverse=True)
    return scores[0][1] if scores and scores[0][0] > 0 else "剧情"
