"""The Studio chains script -> synth -> cut -> enhance for one project folder.

Each stage records its input hashes, settings and output hashes in the project's manifest, so
a second run skips finished stages, a killed run resumes (the synth stage also caches every
shot), and a person can edit any stage's output (``screenplay.json`` above all) before the
next stage runs. Any stage can be run alone, or replaced by passing another agent.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from agents.base import Agent, Cancelled, RunContext
from agents.cut import CutAgent, CutInput, CutOutput, review_gate
from agents.enhance import EnhanceAgent, EnhanceInput
from agents.synth import EpisodeRender, SynthAgent, SynthInput
from core.config import Config, parse_fps
from core.errors import InputError, ReelForgeError, StageError
from core.screenplay import Series
from core.usage import UsageStore
from core.workspace import Workspace, sha256_text
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
        if self.width <= 0 or self.height <= 0 or self.width % 2 or self.height % 2:
            raise InputError(f"size {self.width}x{self.height} must be positive and even", hint="e.g. --size 1080x1920")
        parse_fps(self.fps)
        if self.episodes is not None and self.episodes < 1:
            raise InputError(f"episodes must be at least 1, got {self.episodes}")
        if self.episode_seconds <= 0:
            raise InputError(f"episode length must be positive, got {self.episode_seconds}")
        if self.enhance_scale < 1:
            raise InputError(f"enhance scale must be >= 1, got {self.enhance_scale}")
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

    @property
    def finals(self) -> list[Path]:
        """The final episode files: enhanced where the enhance stage ran, else the cuts."""
        return self.enhanced or self.episodes


class Studio:
    def __init__(self, project: str | Path | Workspace, config: Config, *, progress: ProgressFn | None = None,
                 cancel: threading.Event | None = None, agents: dict[str, Agent[Any, Any]] | None = None) -> None:
        self.ws = project if isinstance(project, Workspace) else Workspace(project)
        self.config = config
        self.progress = progress
        self.cancel = cancel or threading.Event()
        self.agents: dict[str, Agent[Any, Any]] = {"synth": SynthAgent(), "cut": CutAgent(), "enhance": EnhanceAgent()}
        self.agents.update(agents or {})
        # sha256 of stage inputs as this run read them (the screenplay): recorded instead of the file's
        # hash at the end of a stage, so an edit made meanwhile is rendered by the next run
        self._read: dict[str, str] = {}

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
             *, command: str = "make") -> StudioResult:
        """Run the whole chain. ``novel`` may be None when the project already has its source."""
        settings = (settings or self.settings()).validate()
        self.ws.create({"studio": asdict(settings)})
        with self.ws.lock(), UsageStore(self.ws.usage_db) as usage:
            run_id = usage.start_run(command)
            handler = self._log_to_project(run_id)
            result = StudioResult(project=self.ws.root, run_id=run_id)
            try:
                source = self._import_source(novel)
                series = self._stage_script(source, settings, usage, run_id, result)
                numbers = [e.number for e in series.episodes]
                if settings.episodes is not None:
                    numbers = numbers[: settings.episodes]
                if not numbers:
                    raise InputError("the screenplay has no episodes", hint="check the novel, or edit screenplay.json")
                span = 0.9 / len(numbers)
                for i, number in enumerate(numbers):
                    lo = 0.1 + i * span
                    render = self._stage_synth(series, number, settings, usage, run_id, result, lo, lo + span * 0.75)
                    cut = self._stage_cut(series, render, number, usage, run_id, result, lo + span * 0.75, lo + span * 0.9)
                    result.episodes.append(cut.video)
                    result.subtitles.append(cut.srt)
                    if settings.enhance_scale > 1:
                        result.enhanced.append(self._stage_enhance(number, settings, usage, run_id, result,
                                                                   lo + span * 0.9, lo + span))
                if self.progress:
                    self.progress(1.0, "完成 · done")
                return result
            finally:
                logging.getLogger().removeHandler(handler)
                handler.close()

    def _log_to_project(self, run_id: str) -> logging.Handler:
        self.ws.logs_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.ws.logs_dir / f"run-{run_id}.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
        handler.setLevel(logging.INFO)
        logging.getLogger().addHandler(handler)
        if logging.getLogger().level > logging.INFO:
            logging.getLogger().setLevel(logging.INFO)
        return handler

    def _import_source(self, novel: str | Path | None) -> Path:
        existing = sorted(p for p in self.ws.source_dir.glob("*") if p.is_file())
        if novel is None:
            if not existing:
                raise InputError(f"project {str(self.ws.root)!r} has no source novel", hint="pass the novel file")
            return existing[0]
        src = Path(novel)
        if not src.is_file():
            raise InputError(f"novel {str(src)!r} does not exist or is not a file")
        dst = self.ws.source_dir / src.name
        if src.resolve() != dst.resolve():
            if dst.exists() and dst.read_bytes() == src.read_bytes():
                return dst
            for old in existing:
                if old != dst:
                    old.unlink()  # one source per project; the manifest notices the change
            shutil.copyfile(src, dst)
        return dst

    def _run_stage(self, stage: str, fn: Callable[[], Any], result: StudioResult, ctx: RunContext) -> Any:
        self.ws.mark_running(stage, ctx.run_id)
        try:
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
        res = self._run_stage("script", lambda: agent(inp, ctx), result, ctx)
        series: Series = res.output
        series.save(self.ws.screenplay_path)
        self._read[str(self.ws.screenplay_path)] = sha256_text(series.to_json())  # what synth will render
        self.ws.mark_done("script", run_id, [source], params, [self.ws.screenplay_path],
                          report={"engine": res.engine, "seconds": str(res.seconds)})
        result.stages.append(StageReport("script", "done", float(res.seconds), res.engine))
        return series

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
        params = {"episode": number, "w": s.width, "h": s.height, "fps": s.fps, "crf": s.crf, "preset": s.preset,
                  "rate": s.audio_rate, "tts": s.tts, "label": asdict(self.config.label),
                  # the budget shapes no output: a run under another budget reuses the episode
                  "synth": {k: v for k, v in asdict(self.config.synth).items() if k != "budget_cny"},
                  "models": asdict(self.config.models), "voices": asdict(self.config.tts),
                  "providers": [s.image, s.video, s.voice]}
        if s.budget:  # the caps the synth agent enforces: what is left of the run's budget
            from decimal import Decimal

            from agents.synth.providers import spent_in_run

            left = Decimal(s.budget) - spent_in_run(usage, run_id)
            self.config.synth.budget_cny = str(max(left, Decimal(0)))
        state = self.ws.stage_state(stage, [self.ws.screenplay_path], params, read=self._read)
        if state.fresh:
            self._reuse(stage, result, state.edited_outputs)
            return EpisodeRender.load(render_path)
        ctx = self._context(usage, run_id, lo, hi, stage)
        agent = self.agents["synth"]
        res = self._run_stage(stage, lambda: agent(self._synth_input(series, number, s), ctx), result, ctx)
        self.ws.mark_done(stage, run_id, [self.ws.screenplay_path], params, [render_path],
                          report={"engine": res.engine, "notes": res.notes}, read=self._read)
        result.stages.append(StageReport(stage, "done", float(res.seconds), res.engine, "; ".join(res.notes)))
        return res.output  # type: ignore[no-any-return]

    def _stage_cut(self, series: Series, render: EpisodeRender, number: int, usage: UsageStore, run_id: str,
                   result: StudioResult, lo: float, hi: float) -> CutOutput:
        stage = f"cut:ep{number:02d}"
        render_path = self.ws.synth_dir(number) / "render.json"
        video, srt = self.ws.episode_video(number), self.ws.episode_srt(number)
        params = {"episode": number, "title": series.title, "producer": self.config.label.producer}
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
        res = self._run_stage(stage, lambda: agent(inp, ctx), result, ctx)
        self.ws.mark_done(stage, run_id, [render_path], params, [video, srt], report={"engine": res.engine})
        result.stages.append(StageReport(stage, "done", float(res.seconds), res.engine))
        return res.output  # type: ignore[no-any-return]

    def _stage_enhance(self, number: int, s: StudioSettings, usage: UsageStore, run_id: str, result: StudioResult,
                       lo: float, hi: float) -> Path:
        stage = f"enhance:ep{number:02d}"
        src = self.ws.episode_video(number)
        dst = self.ws.enhanced_video(number, int(s.enhance_scale) if float(s.enhance_scale).is_integer() else 0)
        params = {"scale": s.enhance_scale, "method": "auto", "device": self.config.device}
        state = self.ws.stage_state(stage, [src], params)
        if state.fresh:
            self._reuse(stage, result, state.edited_outputs)
            return dst
        ctx = self._context(usage, run_id, lo, hi, stage)
        agent = self.agents["enhance"]
        res = self._run_stage(stage, lambda: agent(EnhanceInput(src, dst, scale=s.enhance_scale, device=self.config.device), ctx), result, ctx)
        self.ws.mark_done(stage, run_id, [src], params, [dst], report={"engine": res.engine})
        result.stages.append(StageReport(stage, "done", float(res.seconds), res.engine))
        return dst

    # -- single stages, for `reelforge synth/cut` and the UI -------------------------------
    def synth(self, episode: int, settings: StudioSettings | None = None) -> EpisodeRender:
        s = (settings or self.settings()).validate()
        self.ws.require()
        series = self._load_screenplay()
        with self.ws.lock(), UsageStore(self.ws.usage_db) as usage:
            run_id = usage.start_run(f"synth ep{episode}")
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

    def quote_make(self, novel: str | Path | None, settings: StudioSettings | None = None) -> list[Any]:
        """``make --dry-run``: the screenplay (made only when that is free: the offline engine, or
        already made), then each episode's quote. Nothing billable is sent."""
        s = (settings or self.settings()).validate()
        self.ws.create({"studio": asdict(s)})
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
        numbers = [e.number for e in series.episodes]
        if s.episodes is not None:
            numbers = numbers[: s.episodes]
        return [self.quote(n, s) for n in numbers]

    def cut(self, episode: int) -> CutOutput:
        self.ws.require()
        series = Series.load(self.ws.screenplay_path)
        render = EpisodeRender.load(self.ws.synth_dir(episode) / "render.json")
        with self.ws.lock(), UsageStore(self.ws.usage_db) as usage:
            run_id = usage.start_run(f"cut ep{episode}")
            return self._stage_cut(series, render, episode, usage, run_id, StudioResult(self.ws.root), 0.0, 1.0)


def episode_duration(render: EpisodeRender) -> Fraction:
    return Fraction(render.total_frames) / render.fps_fraction
