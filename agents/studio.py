"""The Studio chains script -> synth -> cut -> enhance for one project folder.

Each stage records its input hashes, settings and output hashes in the project's manifest, so
a second run skips finished stages, a killed run resumes (the synth stage also caches every
shot), and a person can edit any stage's output (``screenplay.json`` above all) before the
next stage runs. Any stage can be run alone, or replaced by passing another agent.

After the script, a make is a plan of tasks (:mod:`agents.plan`: per shot voice, keyframe,
motion, clip; per episode mix, synth, cut, enhance) handed to an executor: this process by
default (:class:`core.executor.LocalExecutor`), or a Ray cluster
(``Studio(..., executor=RayExecutor(address=...))``, ``reelforge make --ray auto``). Only the
Studio writes the manifest and the usage store, from the results the tasks send back; the
episodes come out alike whichever executor ran them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from agents.base import Agent, Cancelled, RunContext
from agents.cut import CutAgent, CutInput, CutOutput, review_gate
from agents.enhance import EnhanceAgent
from agents.plan import EpisodeWork, series_plan, stage_of
from agents.qc import QCAgent, QCInput, QCReport, identity_failures, remaster_sound, write_report
from agents.synth import EpisodeRender, SynthAgent, SynthInput, review_shot
from core.config import Config, check_frame_size, parse_fps
from core.errors import InputError, ReelForgeError, StageError, WorkspaceError
from core.executor import Executor, Task, TaskFailed, TaskResult
from core.files import atomic_write_bytes, check_writable, storage_error
from core.log import log_traceback, run_log
from core.screenplay import Series
from core.usage import UsageStore
from core.workspace import Workspace, sha256_file, sha256_text
from pipelines.cards import LabelStyle

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]


@dataclass(slots=True)
class StudioSettings:
    """What a project is made with; stored in project.json so later runs reuse it."""

    episodes: int | None = 1  # None: every episode of the screenplay
    episode_seconds: float = 90.0
    script_engine: str = "offline"
    title: str | None = None
    width: int = 1080
    height: int = 1920
    fps: str = "25"
    crf: int = 20
    preset: str = "veryfast"
    audio_rate: int = 48000
    tts: str = "auto"
    enhance_scale: float = 1.0  # 1: no enhance stage
    qc: bool = True  # measure each episode after the cut (and fix what can be fixed)
    platform: str = "douyin"  # the platform the QC holds the episode to
    regenerate: int = 2  # identity fix: new seeds per failing shot, at most this many rounds
    # generation providers, "PROVIDER:MODEL" ("" : the local engines); the run's budget in yuan ("": none)
    image: str = ""
    video: str = ""
    voice: str = ""
    budget: str = ""

    @classmethod
    def from_config(cls, config: Config, **overrides: Any) -> StudioSettings:
        r = config.render
        base = cls(width=r.width, height=r.height, fps=r.fps, crf=r.crf, preset=r.preset, audio_rate=r.audio_rate,
                   tts=config.tts.engine)
        for key, value in overrides.items():
            if value is not None:
                if not hasattr(base, key):
                    raise InputError(f"unknown studio setting {key!r}")
                setattr(base, key, value)
        return base

    def validate(self) -> StudioSettings:
        check_frame_size(self.width, self.height)
        parse_fps(self.fps)
        if self.episodes is not None and self.episodes < 1:
            raise InputError(f"episodes must be at least 1, got {self.episodes}")
        if self.episode_seconds <= 0:
            raise InputError(f"episode length must be positive, got {self.episode_seconds}")
        if self.enhance_scale < 1:
            raise InputError(f"enhance scale must be >= 1, got {self.enhance_scale}")
        from pipelines.qc import PLATFORMS

        if self.platform.lower() not in PLATFORMS:
            raise InputError(f"unknown platform {self.platform!r}", hint=f"use one of {', '.join(PLATFORMS)}")
        if self.regenerate < 0:
            raise InputError(f"regenerate must be 0 or more, got {self.regenerate}")
        self.providers()  # a bad PROVIDER:MODEL is refused before any work
        if self.budget:
            from decimal import Decimal, InvalidOperation

            try:
                ok = Decimal(self.budget) >= 0
            except InvalidOperation:
                ok = False
            if not ok:
                raise InputError(f"--budget {self.budget!r} must be an amount in yuan", hint="e.g. --budget 30 or 12.50")
        return self

    def providers(self) -> Any:
        """The ``PROVIDER:MODEL`` picks as an :class:`agents.synth.providers.ProviderChoice`, or None."""
        if not (self.image or self.video or self.voice):
            return None
        from agents.synth.providers import ProviderChoice

        return ProviderChoice.parse(self.image or None, self.video or None, self.voice or None)


@dataclass(slots=True)
class StageReport:
    stage: str
    status: str  # done | reused | failed | skipped
    seconds: float = 0.0
    engine: str = ""
    detail: str = ""


@dataclass(slots=True)
class StudioResult:
    project: Path
    episodes: list[Path] = field(default_factory=list)
    subtitles: list[Path] = field(default_factory=list)
    enhanced: list[Path] = field(default_factory=list)
    stages: list[StageReport] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    run_id: str = ""
    executor: str = "local"
    tasks: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> status -> count
    qc: list[QCReport] = field(default_factory=list)  # one delivery report per episode (when QC ran)

    def count(self, kind: str, status: str) -> int:
        return self.tasks.get(kind, {}).get(status, 0)

    @property
    def qc_failed(self) -> list[QCReport]:
        return [r for r in self.qc if not r.passed]

    @property
    def finals(self) -> list[Path]:
        """The final episode files: enhanced where the enhance stage ran, else the cuts."""
        return self.enhanced or self.episodes


def select_episodes(series: Series, count: int | None, span: tuple[int, int] | None = None) -> list[int]:
    """The episodes a make renders: the first ``count`` (None: all), or those numbered ``span`` (A-B)."""
    numbers = [e.number for e in series.episodes]
    if not numbers:
        raise InputError("the screenplay has no episodes", hint="check the novel, or edit screenplay.json")
    if span is None:
        return numbers[:count] if count is not None else numbers
    a, b = span
    picked = [n for n in numbers if a <= n <= b]
    if not picked or b > numbers[-1]:
        raise InputError(f"episodes {a}-{b} are not all in the screenplay (it has {numbers[0]}-{numbers[-1]})",
                         hint=f"choose a range within {numbers[0]}-{numbers[-1]}, or script more episodes")
    return picked


class Studio:
    def __init__(self, project: str | Path | Workspace, config: Config, *, progress: ProgressFn | None = None,
                 cancel: threading.Event | None = None, agents: dict[str, Agent[Any, Any]] | None = None,
                 executor: Executor | None = None) -> None:
        self.ws = project if isinstance(project, Workspace) else Workspace(project)
        self.config = config
        self.progress = progress
        self.cancel = cancel or threading.Event()
        if executor is None:
            from agents.executors import executor_for

            executor = executor_for(None, config)  # [cluster] address; empty: this process
        self.executor = executor
        self.agents: dict[str, Agent[Any, Any]] = {"synth": SynthAgent(), "cut": CutAgent(), "enhance": EnhanceAgent(),
                                                   "qc": QCAgent()}
        self.agents.update(agents or {})
        # sha256 of stage inputs as this run read them (the screenplay): recorded instead of the file's
        # hash at the end of a stage, so an edit made meanwhile is rendered by the next run
        self._read: dict[str, str] = {}
        self._running: set[str] = set()  # stages marked running in the manifest by this make

    # ------------------------------------------------------------------------------------
    def _script_agent(self) -> Agent[Any, Series]:
        if "script" not in self.agents:
            from agents.script import ScriptAgent

            self.agents["script"] = ScriptAgent()
        return self.agents["script"]

    def _context(self, usage: UsageStore, run_id: str, lo: float, hi: float, label: str) -> RunContext:
        def scaled(fraction: float, message: str) -> None:
            if self.progress is not None:
                self.progress(lo + (hi - lo) * fraction, f"[{label}] {message}")

        return RunContext(config=self.config, workspace=self.ws, run_id=run_id, usage=usage, progress=scaled,
                          cancel=self.cancel)

    def _load_screenplay(self) -> Series:
        """The screenplay as it is now, read once; the hash of those bytes is what synth records."""
        path = self.ws.screenplay_path
        try:
            data, digest = self.ws.read_input(path)
        except FileNotFoundError as e:
            raise InputError(f"screenplay {str(path)!r} does not exist", hint="run `reelforge script` first") from e
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(f"screenplay {str(path)!r} is not UTF-8 text") from e
        series = Series.from_json(text, origin=str(path))
        self._read[str(path)] = digest
        return series

    def settings(self) -> StudioSettings:
        stored = self.ws.settings().get("studio", {})
        known = {k: v for k, v in stored.items() if k in StudioSettings.__dataclass_fields__}
        return StudioSettings(**known) if known else StudioSettings.from_config(self.config)

    # ------------------------------------------------------------------------------------
    def make(self, novel: str | Path | None, settings: StudioSettings | None = None,
             *, command: str = "make", span: tuple[int, int] | None = None, adopt: bool = False) -> StudioResult:
        """Run the whole chain. ``novel`` may be None when the project already has its source.

        ``span`` (A, B) makes episodes A to B of the screenplay instead of the first
        ``settings.episodes``. ``adopt`` lets an existing non-empty folder become the project; the
        files already in it are kept and never overwritten (a stage that would replace one stops
        and names it).
        """
        settings = (settings or self.settings()).validate()
        if novel is not None:
            src = Path(novel)
            if not src.is_file():
                raise InputError(f"novel {str(src)!r} does not exist or is not a file")
        self.ws.create({"studio": asdict(settings)}, adopt=adopt, ignore=[novel] if novel is not None else [])
        check_writable(self.ws.root, need_bytes=_need_bytes(settings), what="project")
        with self.ws.lock(), UsageStore(self.ws.usage_db) as usage:
            run_id = usage.start_run(command)
            result = StudioResult(project=self.ws.root, run_id=run_id, executor=self.executor.name)
            with self._run_log(run_id):
                source = self._import_source(novel)
                series = self._stage_script(source, settings, usage, run_id, result)
                numbers = select_episodes(series, settings.episodes, span)
                if settings.budget:
                    # what is left of the run's budget caps each episode: one plan per episode, so an
                    # episode's caps count what the episodes before it spent
                    for n in numbers:
                        self._run_episodes(series, [n], settings, usage, run_id, result, numbers)
                else:
                    self._run_episodes(series, numbers, settings, usage, run_id, result, numbers)
                for n in numbers:
                    result.episodes.append(self.ws.episode_video(n))
                    result.subtitles.append(self.ws.episode_srt(n))
                    if settings.enhance_scale > 1:
                        result.enhanced.append(self._enhanced_path(n, settings))
                if self.progress:
                    self.progress(1.0, "完成 · done")
                return result

    @contextmanager
    def _run_log(self, run_id: str) -> Iterator[Path]:
        """``logs/run-RUN.log`` holds the run's log, and the full traceback when it fails (the
        console shows one line; the error carries the log's path as ``log_path``)."""
        path = self.ws.logs_dir / f"run-{run_id}.log"
        with run_log(path) as handler:
            try:
                yield path
            except BaseException as e:
                log_traceback(e, handler, path)
                raise

    def _import_source(self, novel: str | Path | None) -> Path:
        """Copy the novel into ``source/``; a source this project copied earlier is replaced, nothing else."""
        recorded = self.ws.source_record()
        existing = sorted(p for p in self.ws.source_dir.glob("*") if p.is_file())
        if novel is None:
            named = self.ws.source_dir / recorded["name"] if recorded.get("name") else None
            if named is not None and named.is_file():
                return named
            if not existing:
                raise InputError(f"project {str(self.ws.root)!r} has no source novel", hint="pass the novel file")
            return existing[0]
        src = Path(novel)
        if not src.is_file():
            raise InputError(f"novel {str(src)!r} does not exist or is not a file")
        dst = self.ws.source_dir / src.name
        if src.resolve() == dst.resolve():
            return dst
        if dst.exists() and dst.read_bytes() == src.read_bytes():
            self.ws.set_source_record(dst.name, sha256_file(dst))
            return dst
        if dst.exists() and not _ours(self.ws, dst, recorded):
            raise WorkspaceError(f"{self.ws.rel(dst)} is already in the project and differs from {str(src)!r}",
                                 hint="rename the novel, or move the file out of the project's source folder")
        for old in existing:
            if old != dst and _ours(self.ws, old, recorded):
                old.unlink()  # one source per project; the manifest notices the change
            elif old != dst:
                log.warning("source/%s was not copied here by ReelForge: kept", old.name)
        try:
            atomic_write_bytes(dst, src.read_bytes())
        except OSError as e:
            raise storage_error(e, "read", src) from e
        self.ws.set_source_record(dst.name, sha256_file(dst))
        return dst

    def _run_stage(self, stage: str, fn: Callable[[], Any], result: StudioResult, ctx: RunContext,
                   outputs: tuple[Path, ...] = ()) -> Any:
        foreign = self.ws.foreign(outputs)
        if foreign:
            raise WorkspaceError(f"stage {stage!r} would replace files that were in the folder before the project: "
                                 f"{', '.join(foreign[:5])}", hint="move them out of the project folder first")
        try:
            # inside the try: a signal that lands while "running" is being written is still recorded
            self.ws.mark_running(stage, ctx.run_id)
            out = fn()
        except KeyboardInterrupt as e:
            self.ws.mark_failed(stage, ctx.run_id, "interrupted")
            result.stages.append(StageReport(stage, "failed", detail="interrupted"))
            raise Cancelled(f"stage {stage!r} was interrupted", hint="run the same command again to resume") from e
        except Cancelled:
            self.ws.mark_failed(stage, ctx.run_id, "cancelled")
            raise
        except ReelForgeError as e:
            self.ws.mark_failed(stage, ctx.run_id, str(e))
            result.stages.append(StageReport(stage, "failed", detail=str(e)))
            raise
        except OSError as e:  # a full disk, a folder made read-only meanwhile: one plain message
            err = storage_error(e)
            self.ws.mark_failed(stage, ctx.run_id, err.message)
            result.stages.append(StageReport(stage, "failed", detail=err.message))
            raise err from e
        except Exception as e:
            self.ws.mark_failed(stage, ctx.run_id, repr(e))
            raise StageError(stage, repr(e)) from e
        for note in ctx.notes:
            if note not in result.notes:
                result.notes.append(note)
        return out

    def _reuse(self, stage: str, result: StudioResult, edited: tuple[str, ...]) -> None:
        detail = ""
        if edited:
            detail = f"kept hand edits: {', '.join(edited)}"
            log.info("%s: outputs edited by hand are kept (%s)", stage, ", ".join(edited))
        log.info("%s: up to date, reused", stage)
        result.stages.append(StageReport(stage, "reused", detail=detail))
        if self.progress:
            self.progress(0.0, f"[{stage}] 已完成，复用 · up to date")

    # -- stages --------------------------------------------------------------------------
    def _stage_script(self, source: Path, s: StudioSettings, usage: UsageStore, run_id: str,
                      result: StudioResult) -> Series:
        params = {"engine": s.script_engine, "episodes": s.episodes, "episode_seconds": s.episode_seconds,
                  "title": s.title}
        state = self.ws.stage_state("script", [source], params)
        if state.fresh:
            self._reuse("script", result, state.edited_outputs)
            return self._load_screenplay()
        from agents.script import ScriptInput

        ctx = self._context(usage, run_id, 0.0, 0.1, "script")
        agent = self._script_agent()
        inp = ScriptInput(source=source, episodes=s.episodes, episode_seconds=s.episode_seconds,
                          engine=s.script_engine, title=s.title)
        res = self._run_stage("script", lambda: agent(inp, ctx), result, ctx, (self.ws.screenplay_path,))
        series: Series = res.output
        series.save(self.ws.screenplay_path)
        self._read[str(self.ws.screenplay_path)] = sha256_text(series.to_json())  # what synth will render
        self.ws.mark_done("script", run_id, [source], params, [self.ws.screenplay_path],
                          report={"engine": res.engine, "seconds": str(res.seconds)})
        result.stages.append(StageReport("script", "done", float(res.seconds), res.engine))
        return series

    # -- the episodes, as a plan of tasks -----------------------------------------------------
    def _run_episodes(self, series: Series, numbers: list[int], s: StudioSettings, usage: UsageStore, run_id: str,
                      result: StudioResult, made: list[int] | None = None) -> None:
        """Synth, cut and enhance of every episode in ``numbers``, as one plan on the executor.

        With ``s.qc`` each episode's delivery QC runs here on the driver as soon as its cut task
        is done (before its enhance task may start): it measures, re-masters the sound and
        regenerates failing shots through the single-stage synth and cut. ``made`` is every
        episode of the make (for the progress bar)."""
        made = made or numbers
        self._budget_left(s, usage, run_id)  # the caps the tasks get: what is left of the run's budget
        work = []
        for n in numbers:
            self._refuse_foreign(n, s)
            stage = f"synth:ep{n:02d}"
            state = self.ws.stage_state(stage, [self.ws.screenplay_path], self._synth_params(n, s), read=self._read)
            inp = None
            if state.fresh:
                self._reuse(stage, result, state.edited_outputs)
            else:
                inp = self._synth_input(series, n, s)
                inp.check()
                self._check_budget(inp, result)
            work.append(EpisodeWork(n, inp, cut=self._cut_args(series, n),
                                    enhance=self._enhance_args(n, s) if s.enhance_scale > 1 else None))
        plan = series_plan(self.ws.root, self.config, run_id, work, agents=self.agents, remote=self.executor.remote)
        log.info("make: %d episode(s), %d tasks on the %s executor", len(numbers), len(plan), self.executor.name)

        def on_start(task: Task) -> bool:
            return self._task_starts(task, series, s, run_id, result)

        def on_result(res: TaskResult) -> None:
            task = plan.task(res.task)
            self._task_done(task, res, s, usage, run_id, result)
            if task.kind == "cut" and s.qc:
                n = int(task.args["episode"])
                i, span = made.index(n), 0.9 / len(made)
                render = EpisodeRender.load(self.ws.synth_dir(n) / "render.json")
                lo = 0.1 + i * span
                result.qc.append(self._stage_qc(series, render, n, s, usage, run_id, result,
                                                lo + span * 0.8, lo + span * 0.9))

        def progress(fraction: float, message: str) -> None:
            if self.progress is not None:
                self.progress(0.1 + 0.9 * fraction, message)

        try:
            self.executor.run(plan, on_start=on_start, on_result=on_result, progress=progress, cancel=self.cancel)
        except TaskFailed as e:
            raise self._failed(plan.task(e.result.task), e, run_id, result) from e
        except KeyboardInterrupt as e:
            for stage in sorted(self._running):
                self.ws.mark_failed(stage, run_id, "interrupted")
                result.stages.append(StageReport(stage, "failed", detail="interrupted"))
            raise Cancelled("the make was interrupted", hint="run the same command again to resume") from e
        finally:
            self._running.clear()
            done = sum(c for kinds in result.tasks.values() for st, c in kinds.items() if st == "done")
            log.info("make: tasks %s (%d made)", {k: dict(v) for k, v in result.tasks.items()}, done)

    def _refuse_foreign(self, n: int, s: StudioSettings) -> None:
        """Before any task: no stage of episode ``n`` may replace a file that was in an adopted folder."""
        outputs: dict[str, tuple[Path, ...]] = {
            f"synth:ep{n:02d}": (self.ws.synth_dir(n),),
            f"cut:ep{n:02d}": (self.ws.episode_video(n), self.ws.episode_srt(n))}
        if s.enhance_scale > 1:
            outputs[f"enhance:ep{n:02d}"] = (self._enhanced_path(n, s),)
        for stage, paths in outputs.items():
            foreign = self.ws.foreign(paths)
            if foreign:
                raise WorkspaceError(f"stage {stage!r} would replace files that were in the folder before the project: "
                                     f"{', '.join(foreign[:5])}", hint="move them out of the project folder first")

    def _synth_params(self, n: int, s: StudioSettings) -> dict[str, Any]:
        return {"episode": n, "w": s.width, "h": s.height, "fps": s.fps, "crf": s.crf, "preset": s.preset,
                "rate": s.audio_rate, "tts": s.tts, "label": asdict(self.config.label),
                # the budget shapes no output: a run under another budget reuses the episode
                "synth": {k: v for k, v in asdict(self.config.synth).items() if k != "budget_cny"},
                "models": asdict(self.config.models), "voices": asdict(self.config.tts),
                "providers": [s.image, s.video, s.voice]}

    def _budget_left(self, s: StudioSettings, usage: UsageStore, run_id: str) -> None:
        """With a run budget, the caps the synth agent enforces: what is left of it after this run's spend."""
        if not s.budget:
            return
        from decimal import Decimal

        from agents.synth.providers import spent_in_run

        left = Decimal(s.budget) - spent_in_run(usage, run_id)
        self.config.synth.budget_cny = str(max(left, Decimal(0)))

    def _cut_params(self, series: Series, n: int) -> dict[str, Any]:
        return {"episode": n, "title": series.title, "producer": self.config.label.producer}

    def _enhance_params(self, s: StudioSettings) -> dict[str, Any]:
        return {"scale": s.enhance_scale, "method": "auto", "device": self.config.device}

    def _enhanced_path(self, n: int, s: StudioSettings) -> Path:
        return self.ws.enhanced_video(n, int(s.enhance_scale) if float(s.enhance_scale).is_integer() else 0)

    def _cut_args(self, series: Series, n: int) -> dict[str, Any]:
        rel = self.ws.rel
        return {"episode": n, "synth_dir": rel(self.ws.synth_dir(n)), "video": rel(self.ws.episode_video(n)),
                "srt": rel(self.ws.episode_srt(n)), "title": series.title, "producer": self.config.label.producer,
                "review_required": self.config.review.required}

    def _enhance_args(self, n: int, s: StudioSettings) -> dict[str, Any]:
        return {"episode": n, "src": self.ws.rel(self.ws.episode_video(n)), "dst": self.ws.rel(self._enhanced_path(n, s)),
                "options": {"scale": s.enhance_scale, "device": self.config.device}}

    def _check_budget(self, inp: SynthInput, result: StudioResult) -> None:
        """The episode's quote against the caps, before any task spends (the tasks run apart)."""
        sc = self.config.synth
        if not (sc.budget_cny or sc.gpu_seconds_cap) or type(self.agents["synth"]) is not SynthAgent:
            return
        from agents.synth.job import resolve_settings
        from agents.synth.quote import Spend, check_quote

        quote = SynthAgent().quote(inp, self.config)
        unpriced = check_quote(resolve_settings(inp, self.config).caps, quote, Spend())
        if unpriced:
            log.warning(unpriced)
            if unpriced not in result.notes:
                result.notes.append(unpriced)

    def _task_starts(self, task: Task, series: Series, s: StudioSettings, run_id: str, result: StudioResult) -> bool:
        """On the driver, before a stage's task starts: False when the stage is up to date (its inputs were
        made in this run, so this is the first moment to know)."""
        stage = stage_of(task)
        if stage is None:
            part = f"synth:{task.group}" if task.kind.startswith("synth.") and task.group.startswith("ep") else ""
            if part and part not in self._running:  # the first task of an episode's synth
                self.ws.mark_running(part, run_id)
                self._running.add(part)
            return True
        n = int(task.args["episode"])
        if task.kind == "cut":
            render_path = self.ws.synth_dir(n) / "render.json"
            if self.config.review.required:  # the gate: not even a cut made earlier is handed out
                review_gate(EpisodeRender.load(render_path), True, log.warning)
            state = self.ws.stage_state(stage, [render_path], self._cut_params(series, n))
        elif task.kind == "enhance":
            state = self.ws.stage_state(stage, [self.ws.episode_video(n)], self._enhance_params(s))
        else:
            state = None
        if state is not None and state.fresh:
            self._reuse(stage, result, state.edited_outputs)
            return False
        self.ws.mark_running(stage, run_id)
        self._running.add(stage)
        return True

    def _task_done(self, task: Task, res: TaskResult, s: StudioSettings, usage: UsageStore, run_id: str,
                   result: StudioResult) -> None:
        """On the driver, as each task's result arrives: its usage and notes kept, its stage recorded."""
        counts = result.tasks.setdefault(task.kind, {})
        counts[res.status] = counts.get(res.status, 0) + 1
        out = res.output
        if out is None:
            return
        if out.usage:
            usage.add(run_id, out.usage)
        for note in out.notes:
            if note not in result.notes:
                log.warning(note)
                result.notes.append(note)
        stage = stage_of(task)
        if stage is None or res.status == "skipped":
            return
        n = int(task.args["episode"])
        value = out.value or {}
        if task.kind == "synth.episode":
            render_path = self.ws.synth_dir(n) / "render.json"
            self.ws.mark_done(stage, run_id, [self.ws.screenplay_path], self._synth_params(n, s), [render_path],
                              report={"engine": value.get("engine", ""), "notes": value.get("notes", [])},
                              read=self._read)
        elif task.kind == "cut":
            series_title, producer = task.args["title"], task.args["producer"]
            params = {"episode": n, "title": series_title, "producer": producer}
            self.ws.mark_done(stage, run_id, [self.ws.synth_dir(n) / "render.json"], params,
                              [self.ws.episode_video(n), self.ws.episode_srt(n)], report={"engine": value.get("engine")})
        elif task.kind == "enhance":
            self.ws.mark_done(stage, run_id, [self.ws.episode_video(n)], self._enhance_params(s),
                              [self._enhanced_path(n, s)], report={"engine": value.get("engine")})
        self._running.discard(stage)
        result.stages.append(StageReport(stage, "done", round(res.seconds, 3), str(value.get("engine", "")),
                                         "; ".join(value.get("notes", []))))

    def _failed(self, task: Task, e: TaskFailed, run_id: str, result: StudioResult) -> BaseException:
        """The stage a failed task belongs to marked failed; the error to raise (the task's own where it
        ran here)."""
        stage = stage_of(task) or (f"synth:{task.group}" if task.group.startswith("ep") else task.id)
        err = e.result.error
        cause = e.result.exception
        if isinstance(cause, Cancelled) or (err is not None and err.type == "Cancelled"):
            self.ws.mark_failed(stage, run_id, "cancelled")
            return cause if isinstance(cause, Cancelled) else Cancelled(err.message if err else "stopped",
                                                                        hint="run the same command again to resume")
        detail = str(cause) if isinstance(cause, ReelForgeError) else (repr(cause) if cause is not None else
                                                                       f"{err.type}: {err.message}" if err else "")
        self.ws.mark_failed(stage, run_id, detail)
        result.stages.append(StageReport(stage, "failed", round(e.result.seconds, 3), detail=detail))
        if isinstance(cause, ReelForgeError):
            return cause
        if cause is not None:
            return StageError(stage, repr(cause))
        if err is not None and err.expected:
            return StageError(stage, err.message, hint=err.hint or None)
        return StageError(stage, f"{err.type}: {err.message}" if err else "unknown failure",
                          hint=f"the worker's log is in {self.ws.logs_dir}")

    def _synth_input(self, series: Series, number: int, s: StudioSettings) -> SynthInput:
        lab = self.config.label
        return SynthInput(series=series, episode=number, out_dir=self.ws.synth_dir(number), width=s.width,
                          height=s.height, fps=parse_fps(s.fps), crf=s.crf, preset=s.preset, audio_rate=s.audio_rate,
                          tts=s.tts, label=LabelStyle(lab.text, lab.position, lab.opacity, lab.enabled),
                          producer=lab.producer, providers=s.providers())

    def _stage_synth(self, series: Series, number: int, s: StudioSettings, usage: UsageStore, run_id: str,
                     result: StudioResult, lo: float, hi: float) -> EpisodeRender:
        stage = f"synth:ep{number:02d}"
        render_path = self.ws.synth_dir(number) / "render.json"
        params = self._synth_params(number, s)
        self._budget_left(s, usage, run_id)
        state = self.ws.stage_state(stage, [self.ws.screenplay_path], params, read=self._read)
        if state.fresh:
            self._reuse(stage, result, state.edited_outputs)
            return EpisodeRender.load(render_path)
        ctx = self._context(usage, run_id, lo, hi, stage)
        agent = self.agents["synth"]
        res = self._run_stage(stage, lambda: agent(self._synth_input(series, number, s), ctx), result, ctx,
                              (self.ws.synth_dir(number),))
        self.ws.mark_done(stage, run_id, [self.ws.screenplay_path], params, [render_path],
                          report={"engine": res.engine, "notes": res.notes}, read=self._read)
        result.stages.append(StageReport(stage, "done", float(res.seconds), res.engine, "; ".join(res.notes)))
        return res.output  # type: ignore[no-any-return]

    def _stage_cut(self, series: Series, render: EpisodeRender, number: int, usage: UsageStore, run_id: str,
                   result: StudioResult, lo: float, hi: float) -> CutOutput:
        stage = f"cut:ep{number:02d}"
        render_path = self.ws.synth_dir(number) / "render.json"
        video, srt = self.ws.episode_video(number), self.ws.episode_srt(number)
        params = self._cut_params(series, number)
        if self.config.review.required:  # the gate: not even a cut made earlier is handed out
            review_gate(render, True, log.warning)
        state = self.ws.stage_state(stage, [render_path], params)
        if state.fresh:
            self._reuse(stage, result, state.edited_outputs)
            return CutOutput(video, srt, render.total_frames, "reused", sum(len(s.lines) for s in render.shots))
        ctx = self._context(usage, run_id, lo, hi, stage)
        agent = self.agents["cut"]
        inp = CutInput(render=render, synth_dir=self.ws.synth_dir(number), video_out=video, srt_out=srt,
                       title=series.title, producer=self.config.label.producer,
                       review_required=self.config.review.required)
        res = self._run_stage(stage, lambda: agent(inp, ctx), result, ctx, (video, srt))
        self.ws.mark_done(stage, run_id, [render_path], params, [video, srt], report={"engine": res.engine})
        result.stages.append(StageReport(stage, "done", float(res.seconds), res.engine))
        return res.output  # type: ignore[no-any-return]

    def _measure(self, number: int, s: StudioSettings, usage: UsageStore, run_id: str, result: StudioResult,
                 lo: float, hi: float) -> QCReport:
        stage = f"qc:ep{number:02d}"
        ctx = self._context(usage, run_id, lo, hi, stage)
        agent = self.agents["qc"]
        inp = QCInput(self.ws.root, number, s.platform)
        res = self._run_stage(stage, lambda: agent(inp, ctx), result, ctx)
        report: QCReport = res.output
        video = self.ws.episode_video(number)
        self.ws.mark_done(stage, run_id, [video], {"platform": s.platform},
                          [p for p in (report.json_path, report.html_path) if p],
                          report={"passed": report.passed, "failed": report.failed()})
        result.stages.append(StageReport(stage, "done", float(res.seconds), res.engine,
                                         "passed" if report.passed else "failed: " + ", ".join(report.failed())))
        return report

    def _stage_qc(self, series: Series, render: EpisodeRender, number: int, s: StudioSettings, usage: UsageStore,
                  run_id: str, result: StudioResult, lo: float, hi: float) -> QCReport:
        """Measure the delivered episode, fix what can be fixed, measure again; the report lists the fixes.

        Sound (loudness, true peak) is re-mastered in place. Faces that do not match their speaker
        are regenerated with a new seed when the picture engine can do that (diffusers), then the
        episode is synthesised and cut again (finished shots are reused) and measured again, at
        most ``s.regenerate`` rounds. Never silent: every fix, and every fix not possible, is in
        the report and the log.
        """
        report = self._measure(number, s, usage, run_id, result, lo, hi)
        fixes: list[dict[str, Any]] = []
        fixes += self._fix_sound(series, number, s, report, run_id)
        if fixes and fixes[-1].get("fixed"):
            report = self._measure(number, s, usage, run_id, result, lo, hi)
        rounds = 0
        while (shots := identity_failures(report)):
            regen = _SynthRegenerator(self.ws.synth_dir(number), render)
            if not regen.can_regenerate():
                fixes.append({"check": "identity", "action": f"not fixed: the {render.engine} engine cannot make a shot "
                              "again with another seed (diffusers can)", "shots": shots, "fixed": False})
                break
            if rounds >= s.regenerate:
                fixes.append({"check": "identity", "action": f"not fixed after {rounds} round(s) of new seeds",
                              "shots": shots, "fixed": False})
                break
            rounds += 1
            log.info("qc fix: regenerating %s with new seeds (round %d)", ", ".join(shots), rounds)
            regen.regenerate(shots)
            self.ws.invalidate(f"synth:ep{number:02d}")
            render = self._stage_synth(series, number, s, usage, run_id, result, lo, hi)
            self._stage_cut(series, render, number, usage, run_id, result, lo, hi)
            report = self._measure(number, s, usage, run_id, result, lo, hi)
            sound = self._fix_sound(series, number, s, report, run_id)
            if sound and sound[-1].get("fixed"):
                report = self._measure(number, s, usage, run_id, result, lo, hi)
            still = identity_failures(report)
            fixes.append({"check": "identity", "action": f"regenerated {len(shots)} shot(s) with a new seed",
                          "shots": shots, "round": rounds, "fixed": not any(x in still for x in shots)})
            fixes += sound
        if fixes:
            report.fixes = fixes
            write_report(report, self.ws.episode_video(number))
            for f in fixes:
                (log.info if f.get("fixed") else log.warning)("qc fix %s: %s", f["check"], f["action"])
        if not report.passed:
            note = f"episode {number}: QC failed on {', '.join(report.failed())} (report: {report.html_path})"
            if note not in result.notes:
                result.notes.append(note)
        return report

    def _fix_sound(self, series: Series, number: int, s: StudioSettings, report: QCReport, run_id: str) -> list[dict[str, Any]]:
        fix = remaster_sound(self.ws, number, s.platform, report)
        if fix is None:
            return []
        if fix.get("fixed"):
            # the episode file changed on purpose: record it as the cut stage's output, so the next
            # run does not take it for a hand edit
            stage = f"cut:ep{number:02d}"
            render_path = self.ws.synth_dir(number) / "render.json"
            prior = self.ws.manifest()["stages"].get(stage, {}).get("report", {})
            self.ws.mark_done(stage, run_id, [render_path], self._cut_params(series, number),
                              [self.ws.episode_video(number), self.ws.episode_srt(number)],
                              report={**prior, "qc_fix": fix["action"]})
        return [fix]

    # -- single stages, for `reelforge synth/cut` and the UI -------------------------------
    def synth(self, episode: int, settings: StudioSettings | None = None) -> EpisodeRender:
        s = (settings or self.settings()).validate()
        self.ws.require()
        series = self._load_screenplay()
        check_writable(self.ws.synth_dir(episode), need_bytes=_need_bytes(replace(s, episodes=1)), what="project")
        with self.ws.lock(), UsageStore(self.ws.usage_db) as usage:
            run_id = usage.start_run(f"synth ep{episode}")
            with self._run_log(run_id):
                return self._stage_synth(series, episode, s, usage, run_id, StudioResult(self.ws.root), 0.0, 1.0)

    def quote(self, episode: int, settings: StudioSettings | None = None) -> Any:
        """What synthesizing ``episode`` will cost with these settings (providers, models), priced
        from the price book; nothing is generated or sent. For the studio's quote before Make."""
        from agents.synth import SynthAgent

        s = (settings or self.settings()).validate()
        series = self._load_screenplay()
        if s.budget:
            self.config.synth.budget_cny = s.budget
        return SynthAgent().quote(self._synth_input(series, episode, s), self.config)

    def quote_make(self, novel: str | Path | None, settings: StudioSettings | None = None,
                   span: tuple[int, int] | None = None) -> list[Any]:
        """``make --dry-run``: the screenplay (made only when that is free: the offline engine, or
        already made), then each episode's quote. Nothing billable is sent."""
        s = (settings or self.settings()).validate()
        self.ws.create({"studio": asdict(s)}, ignore=[novel] if novel is not None else [])
        with self.ws.lock(), UsageStore(self.ws.usage_db) as usage:
            source = self._import_source(novel)
            params = {"engine": s.script_engine, "episodes": s.episodes, "episode_seconds": s.episode_seconds,
                      "title": s.title}
            if not self.ws.stage_state("script", [source], params).fresh and s.script_engine != "offline":
                raise InputError(f"a dry run cannot write the screenplay with the {s.script_engine!r} engine "
                                 "without paying for it",
                                 hint="run `reelforge script` first (it has its own quote), or use --engine offline")
            run_id = usage.start_run("make --dry-run")
            series = self._stage_script(source, s, usage, run_id, StudioResult(self.ws.root, run_id=run_id))
        return [self.quote(n, s) for n in select_episodes(series, s.episodes, span)]

    def cut(self, episode: int) -> CutOutput:
        self.ws.require()
        series = Series.load(self.ws.screenplay_path)
        render = EpisodeRender.load(self.ws.synth_dir(episode) / "render.json")
        check_writable(self.ws.out_dir, what="project")
        with self.ws.lock(), UsageStore(self.ws.usage_db) as usage:
            run_id = usage.start_run(f"cut ep{episode}")
            with self._run_log(run_id):
                return self._stage_cut(series, render, episode, usage, run_id, StudioResult(self.ws.root), 0.0, 1.0)


def _ours(ws: Workspace, path: Path, recorded: dict[str, str]) -> bool:
    """True when ``path`` is the source this project copied in, unchanged since (projects made before
    the source was recorded: any file of ``source/`` that was not there before the project)."""
    if ws.foreign([path]):
        return False
    if not recorded:
        return True
    return path.name == recorded.get("name") and sha256_file(path) == recorded.get("sha256")


def _need_bytes(s: StudioSettings) -> int:
    """A generous guess of the disk a make needs: shots, their sound, the episode, twice over."""
    episodes = s.episodes or 1
    pixels = s.width * s.height
    per_second = max(200_000, pixels // 4)  # bytes of H.264 + AAC at the project's CRF, with room to spare
    return int(64 * 2**20 + 2 * episodes * s.episode_seconds * per_second * (s.enhance_scale ** 2))


class _SynthRegenerator:
    """The identity fix for the synth agent's own pictures: a new seed through the review gate."""

    def __init__(self, synth_dir: Path, render: EpisodeRender) -> None:
        self.synth_dir = synth_dir
        self.render = render

    def can_regenerate(self) -> bool:
        return self.render.engine == "diffusers"

    def regenerate(self, shots: list[str]) -> None:
        for shot in shots:
            review_shot(self.synth_dir, shot, "regenerate")


def episode_duration(render: EpisodeRender) -> Fraction:
    return Fraction(render.total_frames) / render.fps_fraction
