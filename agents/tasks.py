"""The Studio's units of work as task kinds: what an executor runs, in this process or on any node.

The walk of one shot, each arrow one task: ``synth.voice`` (the shot's lines spoken into the
voice cache) -> ``synth.keyframe`` (its picture, on the picture engine's pool) -> ``synth.motion``
(image-to-video) -> ``synth.shot`` (the clip: picture, cards, label, and its exact samples of the
episode's mix). Per episode: ``synth.mix`` (every line timed, the sound mixed once),
``synth.episode`` (the synth agent itself, which now finds every shot made and writes
``render.json`` and the cover), ``cut`` (the episode file), ``enhance``. Per series:
``synth.sheets`` (the characters' reference sheets, made once before any keyframe).

Every kind is idempotent through the synth package's content-hash caches (speech per line,
keyframes per request, clips per shot) and writes whole files only (:mod:`core.files`); it
returns its usage records and notes to the driver, which alone writes the usage store and the
manifest. What all tasks share (the config, each episode's part of the screenplay, the agents a
caller put in place of the built-in ones) comes in ``ctx.shared``, see :func:`shared_data`.

Kinds are declared in :data:`TASK_KINDS` (a :class:`core.registry.Registry`); a plug-in adds one
(a provider's generation task, a QC check) through the entry point ``task.<name>``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from agents.base import Agent, RunContext
from core.config import Config
from core.executor import TaskContext, TaskOutput
from core.files import atomic_path, atomic_write_bytes, atomic_write_text, temp_name
from core.registry import Registry
from core.screenplay import Series, Shot
from core.usage import UsageRecord, seconds_since
from core.workspace import Workspace, sha256_file, sha256_text

log = logging.getLogger(__name__)

TASK_KINDS: Registry[TaskOutput] = Registry("task", "units of work an executor runs (the Studio's plan)")
KINDS_PATH = "agents.tasks:TASK_KINDS"


# -- what every task shares ----------------------------------------------------------------------
def shared_data(config: Config, run_id: str, inputs: Mapping[int, Any] | None = None,
                agents: Mapping[str, Agent[Any, Any]] | None = None) -> dict[str, Any]:
    """``Plan.shared`` for the Studio's tasks.

    ``inputs`` maps an episode number to its :class:`~agents.synth.SynthInput`; the screenplay
    travels as JSON holding only that episode (every node parses its own part), the rest as
    plain fields. ``agents`` holds only the agents a caller put in place of the built-in ones.
    """
    episodes: dict[int, dict[str, Any]] = {}
    for n, inp in (inputs or {}).items():
        fields = {k: getattr(inp, k) for k in inp.__dataclass_fields__ if k not in ("series", "price")}
        part = inp.series.model_copy(update={"episodes": [inp.series.episode(n)]})
        episodes[n] = {"fields": fields, "series": part.to_json()}
    return {"config": config, "run_id": run_id, "episodes": episodes, "agents": dict(agents or {})}


def _config(ctx: TaskContext) -> Config:
    """The run's config; its secrets, which do not travel, from this machine's own config and environment."""
    config: Config = ctx.shared["config"]
    if not ctx.shared.get("secrets_redacted"):
        return config

    def local() -> Config:
        from core.config import load_config, with_local_secrets

        return with_local_secrets(config, load_config())

    return _cached(ctx, f"config:{ctx.shared.get('run_id')}", local)  # type: ignore[no-any-return]


def _run_context(ctx: TaskContext) -> RunContext:
    return RunContext(config=_config(ctx), workspace=Workspace(ctx.root), run_id=str(ctx.shared.get("run_id", "")),
                      progress=ctx.report, cancel=ctx.cancel)


def _cached(ctx: TaskContext, key: str, make: Any) -> Any:
    """``ctx.cache[key]``, made on first use: a worker keeps engines and models between its tasks."""
    if key not in ctx.cache:
        ctx.cache[key] = make()
    return ctx.cache[key]


def _agent(ctx: TaskContext, name: str, default: Any) -> Any:
    """The agent a caller put in place of the built-in one, else this worker's own."""
    given = ctx.shared.get("agents", {}).get(name)
    return given if given is not None else _cached(ctx, f"agent:{name}", default)


def synth_input(ctx: TaskContext, episode: int) -> Any:
    from agents.synth import SynthInput
    from core.prices import price_lookup

    key = f"synth-input:{ctx.shared.get('run_id')}:{episode}"
    if key not in ctx.cache:
        spec = ctx.shared["episodes"][episode]
        series = Series.from_json(spec["series"], origin=f"episode {episode} of the plan")
        prices = _cached(ctx, "prices", lambda: price_lookup(_config(ctx).ledger.price_book))
        ctx.cache[key] = SynthInput(series=series, price=prices, **spec["fields"])
    return ctx.cache[key]


def synth_job(ctx: TaskContext, episode: int) -> Any:
    """The episode's :class:`~agents.synth.EpisodeJob`, built here from the plan's shared data."""
    from agents.synth import SynthAgent

    agent = _cached(ctx, "agent:synth", SynthAgent)
    return agent.job(synth_input(ctx, episode), _run_context(ctx))


def _shots(job: Any) -> list[tuple[int, Any, Shot]]:
    return [(si, scene, shot) for si, scene in enumerate(job.episode.scenes, 1) for shot in scene.shots]


def _shot(job: Any, shot_id: str) -> tuple[int, Any, Shot]:
    for si, scene, shot in _shots(job):
        if shot.id == shot_id:
            return si, scene, shot
    raise KeyError(f"shot {shot_id!r} is not in episode {job.episode.number}")


def _voice(ctx: TaskContext, job: Any) -> Any:
    from pipelines.tts import get_engine

    opts = job.settings.tts
    return _cached(ctx, f"voice:{job.inp.tts}:{sha256_text(repr(opts))}", lambda: get_engine(job.inp.tts, opts))


def picture_engine(ctx: TaskContext, name: str) -> Any:
    """The picture engine, one per worker: a pool's worker loads its model once."""
    from agents.synth import PICTURE_ENGINES

    return _cached(ctx, f"picture:{name}", lambda: PICTURE_ENGINES.create(name))


def _bare_plans(job: Any, shots: list[tuple[int, Any, Shot]]) -> list[Any]:
    """Shot plans without timing: what the picture engines read (the shot, its scene)."""
    from agents.synth import ShotPlan

    return [ShotPlan(si, scene, shot, [], [], 0) for si, scene, shot in shots]


def _cpu(stage: str, engine: str, start: float, detail: dict[str, Any]) -> UsageRecord:
    took = seconds_since(start, time.perf_counter())
    return UsageRecord(stage=stage, engine=engine, unit="cpu_second", quantity=took, seconds=took, device="cpu",
                       model=engine, licence="Apache-2.0 (ReelForge)", detail=detail)


# -- the episode's mix, kept for the run ---------------------------------------------------------
def mix_path(root: Path, episode: int, run_id: str) -> Path:
    return root / "synth" / f"ep{episode:02d}" / "mix" / f"{run_id or 'run'}.npz"


def save_mix(path: Path, sound: Any) -> None:
    """The mixed sound and its report (removing the mixes of earlier runs)."""
    if path.parent.is_dir():
        for old in path.parent.glob("*.npz"):
            if old.name != path.name:
                old.unlink(missing_ok=True)
    meta = json.dumps({"report": asdict(sound.report), "music": sound.music, "notes": sound.notes}, ensure_ascii=False)
    buf = io.BytesIO()
    np.savez(buf, audio=np.ascontiguousarray(sound.audio, np.float32), meta=np.frombuffer(meta.encode(), np.uint8))
    atomic_write_bytes(path, buf.getvalue())


def load_mix(path: Path) -> Any:
    from agents.synth.sound import EpisodeSound
    from pipelines.audio import MixReport

    with np.load(path) as data:
        audio = np.array(data["audio"], np.float32)
        meta = json.loads(bytes(data["meta"]).decode())
    rep = meta["report"]
    report = MixReport(**{**rep, "music": tuple(rep.get("music", ())), "sfx": tuple(rep.get("sfx", ()))})
    return EpisodeSound(audio, report, list(meta["music"]), list(meta["notes"]))


# -- the kinds -------------------------------------------------------------------------------------
@TASK_KINDS.register("synth.voice", description="one shot's lines spoken into the episode's voice cache")
def synth_voice(ctx: TaskContext) -> TaskOutput:
    from agents.synth.sound import cast_voices, voice_shot, voice_usage

    start = time.perf_counter()
    job = synth_job(ctx, ctx.args["episode"])
    _, _, shot = _shot(job, ctx.args["shot"])
    engine = _voice(ctx, job)
    voicing, notes = voice_shot(job, engine, cast_voices(job.inp.series), shot)
    usage = voice_usage(job, engine, voicing, spoken=False)  # the episode's own run records the seconds spoken
    if voicing.made:
        usage.append(_cpu("synth", "voice", start, {"episode": job.episode.number, "shot": shot.id,
                                                    "lines": voicing.made, "engine": engine.name}))
    return TaskOutput(value={"made": voicing.made}, usage=usage, notes=notes, reused=not voicing.made)


@TASK_KINDS.register("synth.sheets", description="the characters' reference sheets, once for the series")
def synth_sheets(ctx: TaskContext) -> TaskOutput:
    made = 0
    usage: list[UsageRecord] = []
    notes: list[str] = []
    for episode in ctx.args["episodes"]:
        job = synth_job(ctx, episode)
        engine = picture_engine(ctx, job.settings.engine)
        before = sum(1 for ch in engine.sheet_characters(job) if job.sheet_path(ch.name).exists())
        engine.sheets(job)
        made += sum(1 for ch in engine.sheet_characters(job) if job.sheet_path(ch.name).exists()) - before
        usage += job.usage
        notes += job.ctx.notes
    return TaskOutput(value={"made": made}, usage=usage, notes=notes, reused=not made)


@TASK_KINDS.register("synth.keyframe", description="one shot's keyframe from the picture engine (its pool)")
def synth_keyframe(ctx: TaskContext) -> TaskOutput:
    job = synth_job(ctx, ctx.args["episode"])
    engine = picture_engine(ctx, job.settings.engine)
    shot = _shot(job, ctx.args["shot"])
    job.plans = _bare_plans(job, [shot])
    had = engine.cached(job, shot[2], engine.request_key(job, shot[2])) is not None
    engine.stills(job)
    return TaskOutput(usage=job.usage, notes=job.ctx.notes, reused=had)


@TASK_KINDS.register("synth.motion", description="one shot's image-to-video clip (the picture engine's pool)")
def synth_motion(ctx: TaskContext) -> TaskOutput:
    job = synth_job(ctx, ctx.args["episode"])
    engine = picture_engine(ctx, job.settings.engine)
    shot = _shot(job, ctx.args["shot"])
    job.plans = _bare_plans(job, [shot])
    before = engine.stored(job, shot[2])
    had = before is not None and before.motion is not None
    engine.animate(job, engine.stills(job))
    return TaskOutput(usage=job.usage, notes=job.ctx.notes, reused=had)


@TASK_KINDS.register("synth.pictures", description="an episode's pictures from a picture engine that works per episode")
def synth_pictures(ctx: TaskContext) -> TaskOutput:
    job = synth_job(ctx, ctx.args["episode"])
    engine = picture_engine(ctx, job.settings.engine)
    job.plans = _bare_plans(job, _shots(job))
    engine.pictures(job)
    return TaskOutput(usage=job.usage, notes=job.ctx.notes)


@TASK_KINDS.register("synth.mix", description="an episode's lines timed to the frame and its sound mixed once")
def synth_mix(ctx: TaskContext) -> TaskOutput:
    from agents.synth.sound import cast_voices, mix_sound, plan_shots

    job = synth_job(ctx, ctx.args["episode"])
    plan_shots(job, _voice(ctx, job), cast_voices(job.inp.series), _shots(job), make=False)
    sound = mix_sound(job)
    save_mix(mix_path(ctx.root, job.episode.number, str(ctx.shared.get("run_id", ""))), sound)
    return TaskOutput(value={"lufs": sound.report.lufs})


@TASK_KINDS.register("synth.shot", description="one shot's clip: picture, cards, label and its samples of the mix")
def synth_shot(ctx: TaskContext) -> TaskOutput:
    from agents.synth import AnimaticEngine, KeyframeEngine
    from agents.synth.shots import shot_clip
    from agents.synth.sound import cast_voices, plan_shots

    start = time.perf_counter()
    job = synth_job(ctx, ctx.args["episode"])
    voice = _voice(ctx, job)
    plan_shots(job, voice, cast_voices(job.inp.series), _shots(job), make=False)
    plan = next(p for p in job.plans if p.shot.id == ctx.args["shot"])
    sound = load_mix(mix_path(ctx.root, job.episode.number, str(ctx.shared.get("run_id", ""))))
    engine = picture_engine(ctx, job.settings.engine)
    kf = None
    if isinstance(engine, KeyframeEngine):
        kf = engine.stored(job, plan.shot)
    elif not isinstance(engine, AnimaticEngine):  # a plug-in engine: its episode task made the pictures
        keep = job.plans
        job.plans = [plan]
        kf = engine.pictures(job).get(plan.shot.id)
        job.plans = keep
    render, how = shot_clip(job, voice.name, sound, plan, kf)
    usage = [] if how == "cached" else [_cpu("synth", "compositor", start, {"episode": job.episode.number,
                                                                           "shot": plan.shot.id, "how": how})]
    return TaskOutput(value={"how": how, "frames": render.frames}, usage=usage, notes=list(plan.notes),
                      reused=how == "cached")


@TASK_KINDS.register("synth.episode", description="the synth agent over a whole episode: render.json and the cover")
def synth_episode(ctx: TaskContext) -> TaskOutput:
    from agents.synth import SynthAgent

    n = ctx.args["episode"]
    agent = _agent(ctx, "synth", SynthAgent)
    rc = _run_context(ctx)
    res = agent(synth_input(ctx, n), rc)
    mix = mix_path(ctx.root, n, str(ctx.shared.get("run_id", "")))
    if mix.parent.is_dir():  # the run's mix was for the shot tasks; render.json holds what matters
        for old in mix.parent.glob("*.npz"):
            old.unlink(missing_ok=True)
    return TaskOutput(value={"engine": res.engine, "notes": list(res.notes), "seconds": str(res.seconds)},
                      usage=list(res.usage), notes=list(rc.notes))


@TASK_KINDS.register("cut", description="an episode's shots joined into out/epNN.mp4 and its subtitles")
def cut(ctx: TaskContext) -> TaskOutput:
    from agents.cut import CutAgent, CutInput
    from agents.synth import EpisodeRender

    a = ctx.args
    synth_dir = ctx.path(a["synth_dir"])
    render = EpisodeRender.load(synth_dir / "render.json")
    video, srt = ctx.path(a["video"]), ctx.path(a["srt"])
    video.parent.mkdir(parents=True, exist_ok=True)
    tmp_video, tmp_srt = temp_name(video), temp_name(srt)
    rc = _run_context(ctx)
    try:
        res = _agent(ctx, "cut", CutAgent)(CutInput(render=render, synth_dir=synth_dir, video_out=tmp_video,
                                                    srt_out=tmp_srt, title=a["title"], producer=a["producer"],
                                                    review_required=a["review_required"]), rc)
        os.replace(tmp_srt, srt)
        os.replace(tmp_video, video)  # the episode last: its presence says both are complete
    finally:
        tmp_video.unlink(missing_ok=True)
        tmp_srt.unlink(missing_ok=True)
    return TaskOutput(value={"engine": res.engine, "frames": res.output.frames, "mode": res.output.mode},
                      usage=list(res.usage), notes=list(rc.notes))


@TASK_KINDS.register("enhance", description="one file upscaled (an episode, or a file of `enhance DIR_IN DIR_OUT`)")
def enhance(ctx: TaskContext) -> TaskOutput:
    """``args``: ``src``, ``dst`` (relative to the plan's root, or absolute), ``options`` (the
    :class:`~agents.enhance.EnhanceInput` fields) and ``record`` (optional): a JSON file that holds
    the hashes of the source, the settings and the result, so a finished file is not made again."""
    from agents.enhance import EnhanceAgent, EnhanceInput

    a = ctx.args
    src, dst = ctx.path(a["src"]), ctx.path(a["dst"])
    options = dict(a.get("options", {}))
    record = ctx.path(a["record"]) if a.get("record") else None
    params = sha256_text(json.dumps(options, sort_keys=True, default=str))
    src_hash = sha256_file(src) if record is not None else ""
    if record is not None and dst.exists() and record.exists():
        try:
            known = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            known = {}
        if known.get("src") == src_hash and known.get("params") == params and known.get("dst") == sha256_file(dst):
            return TaskOutput(value={"path": str(dst)}, reused=True)
    agent = _agent(ctx, "enhance", EnhanceAgent)
    rc = _run_context(ctx)
    with atomic_path(dst) as tmp:
        res = agent(EnhanceInput(src, tmp, **options), rc)
    if record is not None:
        atomic_write_text(record, json.dumps({"src": src_hash, "params": params, "dst": sha256_file(dst),
                                              "source": str(src), "method": res.output.method}, indent=2))
    return TaskOutput(value={"path": str(dst), "engine": res.engine, "method": res.output.method,
                             "device": res.output.device, "frames": res.output.frames},
                      usage=list(res.usage), notes=list(rc.notes))


def task_seconds(results: Mapping[str, Any]) -> Decimal:
    """Seconds the tasks of a run took, summed over workers (for reports)."""
    return sum((Decimal(str(round(r.seconds, 3))) for r in results.values()), Decimal(0))
