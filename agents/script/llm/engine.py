"""Hierarchical LLM screenwriting: summaries -> logline -> characters -> outline -> scenes -> lines.

Each level is stored in a :class:`Draft` (JSON, editable). :meth:`LLMEngine.generate` fills only
the levels that are missing, so a person can edit any level, delete it (or use
:func:`clear_level`) and re-run to regenerate just that level. Long novels are read in chunks
with a running summary, so no prompt overflows the model's context; episode sources come from the
offline engine's analysis (chapters, scenes, and its condensed picks when a range is too long).

Scenes and lines of different episodes are asked for concurrently, up to the client's
concurrency limit. Every call is a usage record (tokens in/out, cost from the price book).
Lines that the model copies from the novel get source spans; lines it rewrote are snapped to
the closest source sentence when they are close enough, otherwise kept without a span and
counted in a warning.
"""

from __future__ import annotations

import bisect
import difflib
import json
import logging
import re
import threading
import tomllib
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agents.script.base import EngineResult, ScriptEngine, ScriptInput
from agents.script.llm.client import ChatClient, Completion, Message
from agents.script.llm.structured import ask_json
from agents.script.offline import (
    NARRATOR,
    TOLERANCE,
    Analysis,
    analyse,
    build_series,
    plan_episodes,
)
from agents.script.pricing import PriceLookup
from agents.script.reader import NovelText
from agents.script.segment import BAD_CHARS, MAX_LINE_CHARS, speakable_pieces
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
from core.usage import UsageRecord

if TYPE_CHECKING:
    from agents.base import RunContext

log = logging.getLogger(__name__)

LEVELS = ("summaries", "logline", "characters", "outline", "scenes", "lines")
OUTLINE_BATCH = 10
SNAP_RATIO = 0.8  # a rewritten line this close to a source sentence is replaced by that sentence


# --- level data -----------------------------------------------------------------------------


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ChunkSummary(_Loose):
    summary: str = Field(min_length=1)
    characters: list[str] = Field(default_factory=list)
    events: list[str] = Field(default_factory=list)


class LoglinePlan(_Loose):
    title: str = Field(min_length=1)
    logline: str = Field(min_length=1)
    genre: str = ""


class CharacterPlan(_Loose):
    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    description: str = ""
    appearance: str = ""
    voice: str = ""
    role: str = "supporting"

    @field_validator("role")
    @classmethod
    def _role(cls, v: str) -> str:
        v = (v or "").strip().lower()
        return v if v in ("lead", "supporting", "extra") else "supporting"


class CastPlan(_Loose):
    characters: list[CharacterPlan] = Field(min_length=1)


class EpisodePlan(_Loose):
    number: int = Field(ge=1)
    title: str = ""
    synopsis: str = ""
    hook: str = ""
    cliffhanger: str = ""
    paywall: bool = False


class OutlineBatch(_Loose):
    episodes: list[EpisodePlan] = Field(min_length=1)


class ScenePlan(_Loose):
    int_ext: str = "INT"
    place: str = ""
    time_of_day: str = "day"
    characters: list[str] = Field(default_factory=list)
    summary: str = ""
    source_quote: str = ""

    @field_validator("int_ext")
    @classmethod
    def _ie(cls, v: str) -> str:
        v = (v or "").upper().replace(".", "").strip()
        if "INT" in v and "EXT" in v:
            return "INT/EXT"
        if v.startswith("EXT") or v in ("外", "外景"):
            return "EXT"
        return "INT"

    @field_validator("time_of_day")
    @classmethod
    def _tod(cls, v: str) -> str:
        v = (v or "").strip().lower()
        table = {"日": "day", "夜": "night", "晨": "dawn", "昏": "dusk", "黄昏": "dusk", "清晨": "dawn"}
        v = table.get(v, v)
        return v if v in ("day", "night", "dawn", "dusk", "unspecified") else "day"


class ScenesPlan(_Loose):
    scenes: list[ScenePlan] = Field(min_length=1)


class LinePlan(_Loose):
    speaker: str = ""
    text: str = Field(min_length=1)
    kind: str = "dialogue"

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        v = (v or "").strip().lower().replace(".", "").replace("-", "")
        table = {"voiceover": "vo", "offscreen": "os", "narrator": "narration", "旁白": "narration",
                 "对白": "dialogue", "画外音": "os", "内心独白": "vo"}
        v = table.get(v, v)
        return v if v in ("dialogue", "os", "vo", "narration") else "dialogue"


class ShotPlan(_Loose):
    size: str = "MS"
    camera: str = "static"
    visual_prompt: str = ""
    characters: list[str] = Field(default_factory=list)
    sfx: list[str] = Field(default_factory=list)
    lines: list[LinePlan] = Field(default_factory=list)

    @field_validator("size")
    @classmethod
    def _size(cls, v: str) -> str:
        v = (v or "").strip().upper()
        return v if v in {s.value for s in ShotSize} else "MS"

    @field_validator("camera")
    @classmethod
    def _camera(cls, v: str) -> str:
        v = (v or "").strip().lower().replace(" ", "_").replace("-", "_")
        return v if v in {c.value for c in CameraMove} else "static"


class ShotsPlan(_Loose):
    shots: list[ShotPlan] = Field(min_length=1)


class Draft(BaseModel):
    """Every level of an LLM adaptation; saved as JSON next to the screenplay and editable."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    source_sha256: str
    language: str = "zh"
    episode_seconds: float = 90.0
    ranges: list[tuple[int, int]] = Field(default_factory=list)  # source range of each episode
    summaries: list[ChunkSummary] = Field(default_factory=list)
    chunk_count: int = 0
    logline: LoglinePlan | None = None
    cast: CastPlan | None = None
    outline: list[EpisodePlan] = Field(default_factory=list)
    scenes: dict[str, ScenesPlan] = Field(default_factory=dict)  # episode number -> scenes
    shots: dict[str, ShotsPlan] = Field(default_factory=dict)  # "episode:scene" -> shots

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Draft:
        from core.screenplay import format_validation_error

        try:
            return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise InputError(f"draft {str(path)!r} does not exist") from e
        except ValueError as e:
            detail = format_validation_error(e) if hasattr(e, "errors") else str(e)  # type: ignore[arg-type]
            raise InputError(f"draft {str(path)!r} is not valid:\n{detail}",
                             hint="fix it by hand or delete it to start over") from e


def clear_level(draft: Draft, level: str, episode: int | None = None) -> None:
    """Forget one level (for one episode, where the level is per episode) so it is generated again."""
    if level not in LEVELS:
        raise InputError(f"unknown level {level!r}", hint=f"use one of {', '.join(LEVELS)}")
    if level == "summaries":
        draft.summaries, draft.chunk_count = [], 0
    elif level == "logline":
        draft.logline = None
    elif level == "characters":
        draft.cast = None
    elif level == "outline":
        if episode is None:
            draft.outline = []
        else:
            draft.outline = [e for e in draft.outline if e.number != episode]
    elif level == "scenes":
        if episode is None:
            draft.scenes = {}
        else:
            draft.scenes.pop(str(episode), None)
    elif level == "lines":
        if episode is None:
            draft.shots = {}
        else:
            for key in [k for k in draft.shots if k.split(":")[0] == str(episode)]:
                draft.shots.pop(key)


# --- prompts ----------------------------------------------------------------------------------


class Prompts:
    """Prompt templates shipped as package data (``agents/script/prompts/{zh,en}.toml``)."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    @classmethod
    def load(cls, language: str = "zh", path: str | Path | None = None) -> Prompts:
        if path is not None:
            raw = Path(path).read_text(encoding="utf-8")
        else:
            if language not in ("zh", "en"):
                raise InputError(f"no prompts for language {language!r}", hint="use zh or en")
            raw = resources.files("agents.script").joinpath("prompts", f"{language}.toml").read_text(encoding="utf-8")
        table = tomllib.loads(raw)
        missing = {"system", "summary", "logline", "characters", "outline", "scenes", "shots", "repair"} - set(table)
        if missing:
            raise InputError(f"prompt file lacks {', '.join(sorted(missing))}")
        return cls({k: str(v) for k, v in table.items()})

    def render(self, key: str, **values: object) -> str:
        return Template(self.table[key]).substitute({k: str(v) for k, v in values.items()})


# --- the engine -------------------------------------------------------------------------------


class LLMEngine(ScriptEngine):
    """Drives a :class:`ChatClient` through the levels; ``name`` is the client's engine name."""

    def __init__(
        self,
        client: ChatClient,
        *,
        price_lookup: PriceLookup | None = None,
        language: str = "zh",
        prompts: Prompts | None = None,
        draft_path: str | Path | None = None,
        attempts: int = 3,
        max_characters: int = 20,
        today: Callable[[], date] = date.today,
        hybrid_threshold: float | None = None,
    ) -> None:
        self.client = client
        self.name = client.engine or "openai"  # type: ignore[misc]
        self.price_lookup = price_lookup
        self.language = language
        self.prompts = prompts or Prompts.load(language)
        self.draft_path = Path(draft_path) if draft_path else None
        self.attempts = attempts
        self.max_characters = max_characters
        self.today = today
        self.hybrid_threshold = hybrid_threshold  # set: only doubtful speakers go to the model (agents.script.hybrid)
        self._lock = threading.Lock()
        self._usage: list[UsageRecord] = []
        self._ctx: RunContext | None = None
        self._pending: list[UsageRecord] = []
        self._owner = threading.get_ident()

    # -- usage ------------------------------------------------------------------------------
    def _record(self, level: str, completion: Completion, attempt: int, extra: dict[str, Any] | None = None) -> None:
        day = self.today()
        records = []
        for unit, tokens in (("input_token", completion.tokens_in), ("output_token", completion.tokens_out)):
            detail: dict[str, Any] = {"level": level, "attempt": attempt, "tokens_estimated": completion.estimated}
            detail.update(extra or {})
            price = self.price_lookup(completion.model, unit, day) if self.price_lookup else None
            if price is not None:
                detail["unit_price_cny"] = str(price)
                detail["cost_cny"] = str((Decimal(tokens) * price).quantize(Decimal("0.000001")))
            records.append(UsageRecord(
                stage="script", engine=self.name, unit=unit, quantity=Decimal(tokens), model=completion.model,
                device=self.client.device, seconds=Decimal(str(round(completion.seconds, 3))) if unit == "output_token" else Decimal(0),
                tokens_in=completion.tokens_in if unit == "input_token" else 0,
                tokens_out=completion.tokens_out if unit == "output_token" else 0,
                vendor=self.client.vendor, licence=self.client.licence, detail=detail,
            ))
        if self.client.device in ("cpu", "cuda", "mps"):  # a local model: its compute time too
            unit = "gpu_second" if self.client.device == "cuda" else "cpu_second"
            secs = Decimal(str(round(completion.seconds, 3)))
            records.append(UsageRecord(stage="script", engine=self.name, unit=unit, quantity=secs,
                                       model=completion.model, device=self.client.device, seconds=secs,
                                       licence=self.client.licence, detail={"level": level}))
        with self._lock:
            self._usage.extend(records)
            self._pending.extend(records)
        if threading.get_ident() == self._owner:
            self._flush()

    def _flush(self) -> None:
        """Write queued usage through the context, from the thread that owns it (SQLite is per thread).

        Called after every call on the main thread and as worker calls finish, so money already
        spent stays on the books even when a later call fails.
        """
        with self._lock:
            batch, self._pending = self._pending, []
        if batch and self._ctx is not None:
            self._ctx.record(batch)

    def _ask(self, level: str, prompt: str, model: type[BaseModel], *, max_tokens: int = 2048,
             check: Callable[[Any], None] | None = None) -> Any:
        messages: list[Message] = [{"role": "system", "content": self.prompts.table["system"]},
                                   {"role": "user", "content": prompt}]
        return ask_json(
            self.client, messages, model,
            repair_prompt=lambda err: self.prompts.render("repair", error=err),
            on_completion=lambda c, a: self._record(level, c, a),
            attempts=self.attempts, max_tokens=max_tokens, what=f"{level} reply", check=check,
        )

    # -- budgets ----------------------------------------------------------------------------
    @property
    def source_chars(self) -> int:
        """Characters of source text one prompt may carry (about half the context; ~1 token per CJK char)."""
        return max(800, min(60_000, int(self.client.context_tokens * 0.45)))

    # -- main -------------------------------------------------------------------------------
    def generate(self, novel: NovelText, inp: ScriptInput, ctx: RunContext) -> EngineResult:
        self._ctx = ctx
        self._usage = []
        self._pending = []
        self._owner = threading.get_ident()
        if self.hybrid_threshold is not None:
            from agents.script.hybrid import generate_hybrid

            return generate_hybrid(self, novel, inp, ctx)
        an = analyse(novel, ctx)
        plan = plan_episodes(an, inp.episodes)
        draft = self._open_draft(novel, inp, plan, an)
        self._save(draft)
        # the offline engine's picks for the same episodes: verbatim, condensed source for long ranges
        offline, _rep = build_series(an, inp, None, plan=plan)
        text = novel.text

        if not draft.summaries:
            self._summaries(an, draft, ctx)
        ctx.step(0.45, "logline")
        running = draft.summaries[-1].summary if draft.summaries else ""
        if draft.logline is None:
            draft.logline = self._ask("logline", self.prompts.render(
                "logline", title_hint=inp.title or an.book.title or novel.title_hint, summary=running), LoglinePlan)
            self._save(draft)
        if draft.cast is None:
            cands = "\n".join(f"{p.name}：{p.mentions}" + (f"（{'、'.join(p.aliases)}）" if p.aliases else "")
                              for p in an.cast.people[:40])
            draft.cast = self._ask("characters", self.prompts.render(
                "characters", summary=running, candidates=cands or "（无）", max_characters=self.max_characters),
                CastPlan, max_tokens=3000)
            self._save(draft)
        ctx.step(0.5, "outline")
        self._outline(an, draft, inp, offline)
        cast_names = "、".join(c.name for c in draft.cast.characters[:12])
        # scenes of every episode, concurrently
        todo = [e for e in draft.outline if str(e.number) not in draft.scenes]
        self._parallel(ctx, draft, todo, lambda e: self._scenes(draft, e, text, offline, cast_names),
                       lambda e, v: draft.scenes.__setitem__(str(e.number), v), 0.55, 0.7, "scenes")
        # lines of every scene, concurrently
        jobs = [(e, k, sc) for e in draft.outline for k, sc in enumerate(draft.scenes[str(e.number)].scenes, start=1)
                if f"{e.number}:{k}" not in draft.shots]
        self._parallel(ctx, draft, jobs, lambda j: self._shots(draft, j[0], j[1], j[2], text, offline),
                       lambda j, v: draft.shots.__setitem__(f"{j[0].number}:{j[1]}", v), 0.7, 0.95, "lines")
        series, report = self._assemble(novel, an, draft, inp, ctx)
        report["calls"] = sum(1 for r in self._usage if r.unit == "input_token")
        report["tokens_in"] = sum(r.tokens_in for r in self._usage)
        report["tokens_out"] = sum(r.tokens_out for r in self._usage)
        if self.price_lookup is None:
            log.info("no price book: %d LLM usage records carry no cost; the ledger prices them on import",
                     len(self._usage))
        ctx.step(1.0, "done")
        usage = list(self._usage)
        self._ctx = None
        return EngineResult(series=series, usage=usage, report=report | {"recorded": True})

    def _open_draft(self, novel: NovelText, inp: ScriptInput, plan: list[list[int]], an: Analysis) -> Draft:
        draft: Draft | None = None
        if self.draft_path and self.draft_path.exists():
            draft = Draft.load(self.draft_path)
            if draft.source_sha256 != novel.sha256:
                log.warning("draft %s belongs to another source; starting a new one", self.draft_path)
                draft = None
            elif draft.episode_seconds != float(inp.episode_seconds) or len(draft.ranges) != len(plan):
                log.warning("draft %s was made for other episode settings; starting a new one", self.draft_path)
                draft = None
        if draft is None:
            ranges = [(an.scenes[ids[0]].start, an.scenes[ids[-1]].end) for ids in plan if ids]
            draft = Draft(source_sha256=novel.sha256, language=self.language,
                          episode_seconds=float(inp.episode_seconds), ranges=ranges)
        return draft

    def _save(self, draft: Draft) -> None:
        if self.draft_path is not None:
            with self._lock:
                draft.save(self.draft_path)

    # -- levels -----------------------------------------------------------------------------
    def _chunks(self, an: Analysis) -> list[str]:
        limit = self.source_chars
        text = an.novel.text
        chunks: list[str] = []
        cur: list[str] = []
        size = 0
        for ch in an.book.chapters:
            parts = [ch.title] + [text[p.start:p.end] for p in ch.paragraphs]
            for part in parts:
                if size + len(part) > limit and cur:
                    chunks.append("\n".join(cur))
                    cur, size = [], 0
                while len(part) > limit:  # one enormous paragraph
                    chunks.append(part[:limit])
                    part = part[limit:]
                cur.append(part)
                size += len(part) + 1
        if cur:
            chunks.append("\n".join(cur))
        return chunks

    def _summaries(self, an: Analysis, draft: Draft, ctx: RunContext) -> None:
        chunks = self._chunks(an)
        draft.chunk_count = len(chunks)
        summary_chars = max(300, min(3000, self.source_chars // 6))
        running = draft.summaries[-1].summary if draft.summaries else "（尚无）" if self.language == "zh" else "(none yet)"
        for i in range(len(draft.summaries), len(chunks)):
            ctx.step(0.05 + 0.4 * i / max(1, len(chunks)), f"summary {i + 1}/{len(chunks)}")
            part = self._ask("summaries", self.prompts.render(
                "summary", chunk_index=i + 1, chunk_count=len(chunks), running_summary=running, chunk=chunks[i],
                summary_chars=summary_chars), ChunkSummary, max_tokens=max(512, summary_chars * 2))
            draft.summaries.append(part)
            running = part.summary
            self._save(draft)

    def _episode_source(self, draft: Draft, number: int, text: str, offline: Series) -> str:
        a, b = draft.ranges[number - 1]
        clean = _clean_range(text, a, b)
        if len(clean) <= self.source_chars:
            return clean
        # too long for one prompt: the offline engine's picks for this episode (all verbatim)
        if number <= len(offline.episodes):
            picked = "\n".join(f"{ln.speaker}：{ln.text}" if ln.kind != "narration" else ln.text
                               for sh in offline.episodes[number - 1].shots() for ln in sh.lines)
            if picked:
                return picked[: self.source_chars]
        return clean[: self.source_chars]

    def _outline(self, an: Analysis, draft: Draft, inp: ScriptInput, offline: Series) -> None:
        have = {e.number for e in draft.outline}
        missing = [n for n in range(1, len(draft.ranges) + 1) if n not in have]
        assert draft.logline is not None and draft.cast is not None
        cast = "、".join(c.name for c in draft.cast.characters[:12])
        per_episode = max(200, self.source_chars // (2 * OUTLINE_BATCH))
        for i in range(0, len(missing), OUTLINE_BATCH):
            batch = missing[i:i + OUTLINE_BATCH]
            lines = []
            for n in batch:
                src = self._episode_source(draft, n, an.novel.text, offline)
                lines.append(f"第{n}集：{src[:per_episode]}")
            wanted = set(batch)

            def check(v: OutlineBatch, wanted: set[int] = wanted) -> None:
                got = {e.number for e in v.episodes}
                if not wanted <= got:
                    raise ValueError(f"episodes {sorted(wanted - got)} are missing; give exactly {sorted(wanted)}")

            result = self._ask("outline", self.prompts.render(
                "outline", title=draft.logline.title, logline=draft.logline.logline, characters=cast,
                total_episodes=len(draft.ranges), episode_seconds=f"{inp.episode_seconds:g}",
                episodes="\n".join(lines)), OutlineBatch, max_tokens=400 * len(batch), check=check)
            draft.outline.extend(e for e in result.episodes if e.number in wanted)
            draft.outline.sort(key=lambda e: e.number)
            self._save(draft)

    def _scenes(self, draft: Draft, ep: EpisodePlan, text: str, offline: Series, cast: str) -> ScenesPlan:
        max_scenes = max(1, round(draft.episode_seconds / 22))
        return self._ask("scenes", self.prompts.render(
            "scenes", number=ep.number, episode_title=ep.title, episode_seconds=f"{draft.episode_seconds:g}",
            synopsis=ep.synopsis, hook=ep.hook, cliffhanger=ep.cliffhanger, characters=cast,
            source=self._episode_source(draft, ep.number, text, offline), max_scenes=max_scenes), ScenesPlan)

    def _shots(self, draft: Draft, ep: EpisodePlan, k: int, sc: ScenePlan, text: str, offline: Series) -> ShotsPlan:
        scenes = draft.scenes[str(ep.number)].scenes
        seconds = draft.episode_seconds / max(1, len(scenes))
        source = self._episode_source(draft, ep.number, text, offline)
        # narrow to this scene when its quote is found: from it to the next scene's quote
        here = source.find(sc.source_quote[:12]) if sc.source_quote else -1
        if here >= 0:
            nxt = scenes[k].source_quote[:12] if k < len(scenes) and scenes[k].source_quote else ""
            there = source.find(nxt, here + 1) if nxt else -1
            source = source[here: there if there > here else None]
        return self._ask("lines", self.prompts.render(
            "shots", number=ep.number, scene_number=k, place=sc.place or "未知", int_ext=sc.int_ext,
            time_of_day=sc.time_of_day, scene_summary=sc.summary, seconds=f"{seconds:.0f}",
            characters="、".join(sc.characters), source=source, max_line_chars=MAX_LINE_CHARS), ShotsPlan,
            max_tokens=3000)

    def _parallel(self, ctx: RunContext, draft: Draft, jobs: list[Any], fn: Callable[[Any], Any],
                  put: Callable[[Any, Any], None], lo: float, hi: float, what: str) -> None:
        if not jobs:
            return
        done = 0
        try:
            with ThreadPoolExecutor(max_workers=max(1, self.client.concurrency),
                                    thread_name_prefix=f"script-{what}") as pool:
                futures: dict[Future[Any], Any] = {pool.submit(fn, job): job for job in jobs}
                pending = set(futures)
                try:
                    while pending:
                        finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                        self._flush()
                        for fut in finished:
                            put(futures[fut], fut.result())
                            done += 1
                        if finished:
                            self._save(draft)
                        ctx.step(lo + (hi - lo) * done / len(jobs), f"{what} {done}/{len(jobs)}")
                except BaseException:
                    for fut in pending:
                        fut.cancel()
                    self._save(draft)  # what finished is kept: the next run resumes from there
                    raise
        finally:
            self._flush()  # calls that finished after a failure were paid for too

    # -- assembly ---------------------------------------------------------------------------
    def _assemble(self, novel: NovelText, an: Analysis, draft: Draft, inp: ScriptInput,
                  ctx: RunContext) -> tuple[Series, dict[str, Any]]:
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
            pieces = _range_pieces(text, a, b)
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
            language=self.language, characters=characters, locations=list(locations.values()), episodes=episodes,
            source=SourceInfo(path=novel.path, sha256=novel.sha256, encoding=novel.encoding,
                              chapters=[c.title for c in an.book.chapters]),
            engine=f"{self.name}:{self.client.model}",
        )
        return series, {"episodes": len(episodes), "lines": stats}


# --- helpers ----------------------------------------------------------------------------------

_PREFIX = re.compile(r"^\s*[\w\u4e00-\u9fff]{1,8}\s*[（(][^）)]{0,6}[）)]\s*[：:]|^\s*[\w\u4e00-\u9fff]{1,6}\s*[：:]")


def _clean_range(text: str, a: int, b: int) -> str:
    """The story text of ``text[a:b]`` without junk lines (ads, update stamps)."""
    from agents.script.text import is_junk, match_heading

    lines = []
    for raw in text[a:b].split("\n"):
        s = raw.strip(" \t\u3000\xa0")
        if s and not is_junk(s) and match_heading(s) is None:
            lines.append(s)
    return "\n".join(lines)


def _range_pieces(text: str, a: int, b: int) -> list[tuple[int, int]]:
    return speakable_pieces(text, a, b)


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
