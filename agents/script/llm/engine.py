"""Hierarchical LLM screenwriting: summaries -> logline -> characters -> outline -> scenes -> lines.

Each level is stored in a :class:`~agents.script.llm.draft.Draft` (JSON, editable).
:meth:`LLMEngine.generate` fills only the levels that are missing, so a person can edit any level,
delete it (or use :func:`clear_level`) and re-run to regenerate just that level. Long novels are
read in chunks with a running summary, so no prompt overflows the model's context; episode
sources come from the offline engine's analysis (chapters, scenes, and its condensed picks when a
range is too long). Prompt sizes, reply caps and attempts follow the model's size
(:class:`~agents.script.llm.budget.Budget`); a local model's run starts with a time estimate.

Every reply is validated against its level's schema, against the prompts' own template text
(:class:`~agents.script.llm.prompts.EchoGuard`) and, for scenes and lines, against the source
(quotes and lines must be found in the novel); each problem goes back to the model on the repair
turn. A level no reply passes is, with ``fallback="offline"``, filled from the offline engine's
analysis (:class:`~agents.script.llm.fallback.OfflineLevels`) and marked in the draft, the usage
and the run's notes; with ``fallback="none"`` the run stops with the error, the draft kept.

Scenes and lines of different episodes are asked for concurrently, up to the client's
concurrency limit. Every call is a usage record (tokens in/out, cost from the price book; a local
model's compute seconds too).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import date
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from agents.script.base import EngineResult, ScriptEngine, ScriptInput
from agents.script.llm.assemble import ChapterTable, assemble, clean_range, trace_lines
from agents.script.llm.budget import FALLBACK_BELOW, Budget
from agents.script.llm.client import ChatClient, Completion, Message
from agents.script.llm.draft import (
    LEVELS,
    CastPlan,
    ChunkSummary,
    Draft,
    EpisodePlan,
    LoglinePlan,
    OutlineBatch,
    ScenePlan,
    ScenesPlan,
    ShotsPlan,
    clear_level,
    fill_key,
)
from agents.script.llm.fallback import OfflineLevels
from agents.script.llm.prompts import EchoGuard, Prompts
from agents.script.llm.structured import InvalidReplyError, ask_json
from agents.script.offline import Analysis, analyse, build_series, plan_episodes
from agents.script.pricing import PriceLookup
from agents.script.reader import NovelText
from agents.script.segment import MAX_LINE_CHARS, speakable_pieces
from core.errors import InputError
from core.screenplay import Series
from core.usage import UsageRecord

if TYPE_CHECKING:
    from agents.base import RunContext

__all__ = ["LEVELS", "FALLBACKS", "Draft", "LLMEngine", "Prompts", "clear_level", "default_fallback"]

log = logging.getLogger(__name__)

FALLBACKS = ("auto", "offline", "none")
T = TypeVar("T", bound=BaseModel)


def default_fallback(client: ChatClient) -> str:
    """``offline`` for a local model smaller than :data:`FALLBACK_BELOW` parameters, else ``none``."""
    return "offline" if client.device != "api" and 0 < client.parameters < FALLBACK_BELOW else "none"


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
        attempts: int | None = None,
        max_characters: int | None = None,
        fallback: str = "auto",
        min_traced: float = 0.5,
        today: Callable[[], date] = date.today,
        hybrid_threshold: float | None = None,
    ) -> None:
        if fallback not in FALLBACKS:
            raise InputError(f"unknown fallback {fallback!r}", hint=f"use one of {', '.join(FALLBACKS)}")
        self.client = client
        self.name = client.engine or "openai"  # type: ignore[misc]
        self.price_lookup = price_lookup
        self.language = language
        self.prompts = prompts or Prompts.load(language)
        self.guard = EchoGuard.from_prompts(self.prompts)
        self.draft_path = Path(draft_path) if draft_path else None
        self.budget = Budget.for_client(client, attempts=attempts, max_characters=max_characters)
        self.fallback = default_fallback(client) if fallback == "auto" else fallback
        self.min_traced = min_traced
        self.today = today
        self.hybrid_threshold = hybrid_threshold  # set: only doubtful speakers go to the model (agents.script.hybrid)
        self._lock = threading.Lock()
        self._usage: list[UsageRecord] = []
        self._ctx: RunContext | None = None
        self._pending: list[UsageRecord] = []
        self._owner = threading.get_ident()
        self._filled: list[str] = []
        self._offline: OfflineLevels | None = None
        self._chapters: ChapterTable | None = None

    @property
    def attempts(self) -> int:
        return self.budget.attempts

    @property
    def source_chars(self) -> int:
        """Characters of source text one prompt may carry (about half the context; ~1 token per CJK char)."""
        return self.budget.source_chars

    def close(self) -> None:
        self.client.close()

    # -- usage ------------------------------------------------------------------------------
    def _record(self, level: str, completion: Completion, attempt: int, extra: dict[str, Any] | None = None) -> None:
        day = self.today()
        records = []
        client = self.client
        for unit, tokens in (("input_token", completion.tokens_in), ("output_token", completion.tokens_out)):
            detail: dict[str, Any] = {"level": level, "attempt": attempt, "tokens_estimated": completion.estimated}
            detail.update(extra or {})
            price = self.price_lookup(completion.model, unit, day) if self.price_lookup else None
            if price is not None:
                detail["unit_price_cny"] = str(price)
                detail["cost_cny"] = str((Decimal(tokens) * price).quantize(Decimal("0.000001")))
            records.append(UsageRecord(
                stage="script", engine=self.name, unit=unit, quantity=Decimal(tokens), model=completion.model,
                device=client.device, seconds=_secs(completion.seconds) if unit == "output_token" else Decimal(0),
                tokens_in=completion.tokens_in if unit == "input_token" else 0,
                tokens_out=completion.tokens_out if unit == "output_token" else 0,
                vendor=client.vendor, licence=client.licence, detail=detail,
            ))
        if client.device != "api":  # a local model: its compute time too (wall seconds, and CPU time when known)
            unit = "gpu_second" if client.device == "cuda" else "cpu_second"
            detail = {"level": level, "attempt": attempt}
            if completion.cpu_seconds is not None:
                detail["cpu_time_s"] = str(_secs(completion.cpu_seconds))
            records.append(UsageRecord(stage="script", engine=self.name, unit=unit, quantity=_secs(completion.seconds),
                                       model=completion.model, device=client.device, seconds=_secs(completion.seconds),
                                       vendor=client.vendor, licence=client.licence, detail=detail))
        self._queue(records)

    def _queue(self, records: list[UsageRecord]) -> None:
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

    # -- asking -----------------------------------------------------------------------------
    def _ask(self, level: str, prompt: str, model: type[T], *, max_tokens: int,
             check: Callable[[T], None] | None = None) -> T:
        messages: list[Message] = [{"role": "system", "content": self.prompts.table["system"]},
                                   {"role": "user", "content": prompt}]

        def checks(value: T) -> None:
            problems = []
            for fn in (self.guard.check, check):
                if fn is None:
                    continue
                try:
                    fn(value)
                except ValueError as e:
                    problems.append(str(e))
            if problems:
                raise ValueError("\n".join(problems))

        return ask_json(
            self.client, messages, model,
            repair_prompt=lambda err: self.prompts.render("repair", error=err),
            on_completion=lambda c, a: self._record(level, c, a),
            attempts=self.budget.attempts, max_tokens=max_tokens, what=f"{level} reply", check=checks,
        )

    def _level(self, draft: Draft, key: str, ask: Callable[[], T], fill: Callable[[], T | None]) -> T | None:
        """``ask()``; when no reply validates and the fallback is offline, ``fill()`` and mark ``key``."""
        try:
            return ask()
        except InvalidReplyError as e:
            if self.fallback != "offline":
                raise
            return self._fill(draft, key, e, fill)

    def _fill(self, draft: Draft, key: str, err: InvalidReplyError, fill: Callable[[], T | None]) -> T | None:
        t0 = time.perf_counter()
        value = fill()
        seconds = time.perf_counter() - t0
        with self._lock:
            draft.filled[key] = "offline"
            self._filled.append(key)
        log.warning("%s: %s; filled from the offline analysis", key, err.message)
        self._queue([UsageRecord(stage="script", engine="offline", unit="cpu_second", quantity=_secs(seconds),
                                 device="cpu", seconds=_secs(seconds), licence="ReelForge offline rules",
                                 detail={"level": key.split(":")[0], "filled": key, "fallback": "offline",
                                         "for_model": self.client.model, "reason": err.message[:300]})])
        return value

    # -- main -------------------------------------------------------------------------------
    def generate(self, novel: NovelText, inp: ScriptInput, ctx: RunContext) -> EngineResult:
        self._ctx = ctx
        self._usage, self._pending, self._filled = [], [], []
        self._owner = threading.get_ident()
        if self.hybrid_threshold is not None:
            from agents.script.hybrid import generate_hybrid

            return generate_hybrid(self, novel, inp, ctx)
        an = analyse(novel, ctx)
        plan = plan_episodes(an, inp.episodes)
        draft = self._open_draft(novel, inp, plan, an)
        self._save(draft)
        # the offline engine's series over the same ranges: condensed sources for long ranges, and
        # the data of any level the model cannot write
        offline, _rep = build_series(an, inp, None, plan=plan)
        self._offline = OfflineLevels(an, offline)
        self._chapters = ChapterTable(an)
        text = novel.text
        report: dict[str, Any] = {"estimate_s": self._estimate(an, draft, ctx), "seconds": {}}
        clock = _Clock(report["seconds"])

        with clock("summaries"):
            self._summaries(an, draft, ctx)
        ctx.step(0.45, "logline")
        running = draft.summaries[-1].summary if draft.summaries else ""
        with clock("logline"):
            if draft.logline is None:
                prompt = self.prompts.render("logline", title_hint=inp.title or an.book.title or novel.title_hint,
                                             summary=running)
                draft.logline = self._level(draft, "logline", lambda: self._ask(
                    "logline", prompt, LoglinePlan, max_tokens=self.budget.reply_tokens("logline")),
                    self._offline.logline)
                self._save(draft)
        with clock("characters"):
            if draft.cast is None:
                cands = "\n".join(f"{p.name}：{p.mentions}" + (f"（{'、'.join(p.aliases)}）" if p.aliases else "")
                                  for p in an.cast.people[:40])
                prompt = self.prompts.render("characters", summary=running, candidates=cands or "（无）",
                                             max_characters=self.budget.max_characters)
                draft.cast = self._level(draft, "characters", lambda: self._ask(
                    "characters", prompt, CastPlan, max_tokens=self.budget.reply_tokens("characters")),
                    lambda: self._offline_levels().cast(self.budget.max_characters))
                self._save(draft)
        ctx.step(0.5, "outline")
        with clock("outline"):
            self._outline(an, draft, inp, offline)
        assert draft.cast is not None
        cast_names = "、".join(c.name for c in draft.cast.characters[:12])
        with clock("scenes"):  # scenes of every episode, concurrently
            todo = [e for e in draft.outline if str(e.number) not in draft.scenes]
            self._parallel(ctx, draft, todo, lambda e: self._scenes(draft, e, text, offline, cast_names),
                           lambda e, v: draft.scenes.__setitem__(str(e.number), v), 0.55, 0.7, "scenes")
        with clock("lines"):  # lines of every scene, concurrently
            jobs = [(e, k, sc) for e in draft.outline
                    for k, sc in enumerate(draft.scenes[str(e.number)].scenes, start=1)
                    if f"{e.number}:{k}" not in draft.shots and fill_key("lines", e.number, k) not in draft.filled]

            def put(job: Any, shots: ShotsPlan | None) -> None:
                if shots is not None:  # None: nothing to fill this scene with; it is left out
                    draft.shots[f"{job[0].number}:{job[1]}"] = shots

            self._parallel(ctx, draft, jobs, lambda j: self._shots(draft, j[0], j[1], j[2], text, offline), put,
                           0.7, 0.95, "lines")
        engine = f"{self.name}:{self.client.model}" + ("+offline" if draft.filled else "")
        series, assembled = assemble(novel, an, draft, inp, ctx, language=self.language, engine=engine)
        report |= assembled
        self._report(report, draft, ctx)
        ctx.step(1.0, "done")
        usage = list(self._usage)
        self._ctx = None
        return EngineResult(series=series, usage=usage, report=report | {"recorded": True})

    def _offline_levels(self) -> OfflineLevels:
        assert self._offline is not None
        return self._offline

    def _report(self, report: dict[str, Any], draft: Draft, ctx: RunContext) -> None:
        report["calls"] = sum(1 for r in self._usage if r.unit == "input_token")
        report["tokens_in"] = sum(r.tokens_in for r in self._usage)
        report["tokens_out"] = sum(r.tokens_out for r in self._usage)
        report["fallback"] = self.fallback
        report["filled"] = dict(sorted(draft.filled.items()))
        if draft.filled:
            levels = sorted({k.split(":")[0] for k in draft.filled}, key=LEVELS.index)
            shown = ", ".join(sorted(draft.filled)[:12]) + (" ..." if len(draft.filled) > 12 else "")
            ctx.warn(f"{self.client.model} could not write {len(draft.filled)} part(s) ({', '.join(levels)}); "
                     f"they were filled by the offline engine and are marked in the draft's 'filled': {shown} / "
                     f"模型未能完成的部分已由离线引擎补全并标注")
        if self.price_lookup is None:
            log.info("no price book: %d LLM usage records carry no cost; the ledger prices them on import",
                     len(self._usage))

    def _estimate(self, an: Analysis, draft: Draft, ctx: RunContext) -> list[float] | None:
        """Log the time the remaining calls should take, from the local model's measured speed."""
        episodes = len(draft.ranges)
        scenes = max(1, round(draft.episode_seconds / 22))
        calls = {"summaries": max(0, len(self._chunks(an)) - len(draft.summaries)),
                 "logline": int(draft.logline is None), "characters": int(draft.cast is None),
                 "outline": -(-(episodes - len(draft.outline)) // self.budget.outline_batch),
                 "scenes": episodes - len(draft.scenes), "lines": max(0, episodes * scenes - len(draft.shots))}
        span = self.budget.estimate(calls)
        if span is None:
            return None
        low, high = span
        msg = (f"time estimate for {sum(calls.values())} calls to {self.client.model} at "
               f"{self.budget.tokens_per_s:.0f} tokens/s: {low / 60:.1f}-{high / 60:.1f} min "
               f"(the upper figure if every reply runs to its cap on every attempt)")
        (log.warning if high > 1800 else log.info)(msg)
        ctx.step(0.0, f"estimate {low / 60:.0f}-{high / 60:.0f} min")
        return [round(low, 1), round(high, 1)]

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
        limit = self.budget.summary_chars
        empty = "（尚无）" if self.language == "zh" else "(none yet)"
        for i in range(len(draft.summaries), len(chunks)):
            ctx.step(0.05 + 0.4 * i / max(1, len(chunks)), f"summary {i + 1}/{len(chunks)}")
            running = draft.summaries[-1].summary if draft.summaries else empty
            prompt = self.prompts.render("summary", chunk_index=i + 1, chunk_count=len(chunks),
                                         running_summary=running, chunk=chunks[i], summary_chars=limit)
            previous = running if draft.summaries else ""
            part = self._level(draft, fill_key("summaries", i), lambda p=prompt: self._ask(  # type: ignore[misc]
                "summaries", p, ChunkSummary, max_tokens=self.budget.reply_tokens("summaries")),
                lambda c=chunks[i], r=previous: self._offline_levels().summary(c, r, limit))  # type: ignore[misc]
            assert part is not None
            draft.summaries.append(part)
            self._save(draft)

    def _episode_source(self, draft: Draft, number: int, text: str, offline: Series) -> str:
        a, b = draft.ranges[number - 1]
        clean = clean_range(text, a, b)
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
        logline = draft.logline
        cast = "、".join(c.name for c in draft.cast.characters[:12])
        size = self.budget.outline_batch
        per_episode = max(200, self.source_chars // (2 * size))
        for i in range(0, len(missing), size):
            batch = missing[i:i + size]
            lines = [f"第{n}集：{self._episode_source(draft, n, an.novel.text, offline)[:per_episode]}" for n in batch]
            wanted = set(batch)

            def check(v: OutlineBatch, wanted: set[int] = wanted) -> None:
                got = {e.number for e in v.episodes}
                if not wanted <= got:
                    raise ValueError(f"episodes {sorted(wanted - got)} are missing; give exactly {sorted(wanted)}")

            prompt = self.prompts.render(
                "outline", title=logline.title, logline=logline.logline, characters=cast,
                total_episodes=len(draft.ranges), episode_seconds=f"{inp.episode_seconds:g}", episodes="\n".join(lines))

            def ask(prompt: str = prompt, batch: list[int] = batch, check: Any = check) -> list[EpisodePlan]:
                reply = self._ask("outline", prompt, OutlineBatch, check=check,
                                  max_tokens=self.budget.reply_tokens("outline", len(batch)))
                return [e for e in reply.episodes if e.number in set(batch)]

            try:
                got = ask()
            except InvalidReplyError as e:
                if self.fallback != "offline":
                    raise
                levels = self._offline_levels()
                got = []
                for n in batch:
                    filled = self._fill(draft, fill_key("outline", n), e, partial(levels.episode, n))
                    if filled is not None:
                        got.append(filled)
            draft.outline.extend(got)
            draft.outline.sort(key=lambda e: e.number)
            self._save(draft)

    def _scenes(self, draft: Draft, ep: EpisodePlan, text: str, offline: Series, cast: str) -> ScenesPlan:
        max_scenes = max(1, round(draft.episode_seconds / 22))
        source = self._episode_source(draft, ep.number, text, offline)

        def check(v: ScenesPlan) -> None:
            lost = [s.source_quote for s in v.scenes if s.source_quote.strip() and source.find(s.source_quote.strip()[:12]) < 0]
            if lost:
                raise ValueError(f"source_quote {lost[0][:30]!r} is not in the source text; copy the first sentence "
                                 "of each scene word for word from the text between <<< and >>>")

        prompt = self.prompts.render(
            "scenes", number=ep.number, episode_title=ep.title, episode_seconds=f"{draft.episode_seconds:g}",
            synopsis=ep.synopsis, hook=ep.hook, cliffhanger=ep.cliffhanger, characters=cast, source=source,
            max_scenes=max_scenes)
        result = self._level(draft, fill_key("scenes", ep.number), lambda: self._ask(
            "scenes", prompt, ScenesPlan, check=check, max_tokens=self.budget.reply_tokens("scenes")),
            lambda: self._offline_levels().scenes(ep.number))
        assert result is not None
        return result

    def _shots(self, draft: Draft, ep: EpisodePlan, k: int, sc: ScenePlan, text: str, offline: Series) -> ShotsPlan | None:
        scenes = draft.scenes[str(ep.number)].scenes
        seconds = draft.episode_seconds / max(1, len(scenes))
        source = self._episode_source(draft, ep.number, text, offline)
        # narrow to this scene when its quote is found: from it to the next scene's quote
        here = source.find(sc.source_quote[:12]) if sc.source_quote else -1
        if here >= 0:
            nxt = scenes[k].source_quote[:12] if k < len(scenes) and scenes[k].source_quote else ""
            there = source.find(nxt, here + 1) if nxt else -1
            source = source[here: there if there > here else None]
        a, b = draft.ranges[ep.number - 1]
        pieces = speakable_pieces(text, a, b)
        chapters = self._chapters
        assert chapters is not None

        def check(v: ShotsPlan) -> None:
            traced, missing = trace_lines(text, a, b, v, pieces, chapters)
            total = traced + len(missing)
            if total == 0:
                raise ValueError("the shots have no lines; give each shot 1 to 3 lines from the source text")
            if traced < self.min_traced * total:
                shown = "; ".join(repr(m[:30]) for m in missing[:4])
                raise ValueError(f"{len(missing)} of {total} lines are not in the source text ({shown}); copy lines "
                                 "and narration word for word from the text between <<< and >>>")

        prompt = self.prompts.render(
            "shots", number=ep.number, scene_number=k, place=sc.place or "未知", int_ext=sc.int_ext,
            time_of_day=sc.time_of_day, scene_summary=sc.summary, seconds=f"{seconds:.0f}",
            characters="、".join(sc.characters), source=source, max_line_chars=MAX_LINE_CHARS)
        offline_scenes = fill_key("scenes", ep.number) in draft.filled
        return self._level(draft, fill_key("lines", ep.number, k), lambda: self._ask(
            "lines", prompt, ShotsPlan, check=check, max_tokens=self.budget.reply_tokens("lines")),
            lambda: self._offline_levels().shots(ep.number, k, scenes, offline_scenes))

    def _parallel(self, ctx: RunContext, draft: Draft, jobs: list[Any], fn: Callable[[Any], Any],
                  put: Callable[[Any, Any], Any], lo: float, hi: float, what: str) -> None:
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


class _Clock:
    """Wall seconds per level into a report dict: ``with clock("lines"): ...``."""

    def __init__(self, into: dict[str, float]) -> None:
        self.into = into

    def __call__(self, level: str) -> _Clock:
        self._level = level
        return self

    def __enter__(self) -> None:
        self._t0 = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.into[self._level] = round(self.into.get(self._level, 0.0) + time.perf_counter() - self._t0, 3)


def _secs(seconds: float) -> Decimal:
    return Decimal(str(round(seconds, 3)))
