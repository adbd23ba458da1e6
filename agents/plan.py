"""Plans: a make over a series, or an enhance over many files, as tasks an executor runs.

:func:`series_plan` turns the episodes a make must render into the task graph of
:mod:`agents.tasks`: per shot a voice task, with a generating picture engine a keyframe (and a
motion) task on the engine's pool, then the shot's clip once its episode's mix is done; per
episode the mix, the synth agent's own pass (``render.json``), the cut and the enhance. An
episode is cut as soon as its own shots are done, whatever the others are doing. A synth agent
put in place of the built-in one runs whole, as one task per episode.

:func:`enhance_plan` is one task per file on the ``enhance`` pool (one worker per GPU).

Freshness is the Studio's: it leaves out the synth tasks of an episode whose synth stage is up
to date, and asks again before the cut and the enhance start (their inputs are made in the run).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.base import Agent
from agents.synth import (
    PICTURE_ENGINES,
    AnimaticEngine,
    KeyframeEngine,
    SynthInput,
    resolve_settings,
)
from agents.tasks import KINDS_PATH, shared_data
from core.config import Config
from core.executor import Plan, Pool, Resources, Task

# shares of the progress bar, roughly what each kind of task takes on a CPU
WEIGHTS = {"synth.voice": 1.0, "synth.sheets": 2.0, "synth.keyframe": 6.0, "synth.motion": 12.0,
           "synth.pictures": 6.0, "synth.mix": 1.0, "synth.shot": 4.0, "synth.episode": 1.0, "cut": 2.0,
           "enhance": 20.0}
TTS_HTTP_CONCURRENCY = 4  # calls at once to an HTTP TTS service, across the whole cluster


@dataclass(slots=True)
class EpisodeWork:
    """What a make asks of one episode."""

    number: int
    synth: SynthInput | None  # None: the synth stage is up to date
    cut: dict[str, Any] = field(default_factory=dict)  # the cut task's args
    enhance: dict[str, Any] | None = None  # the enhance task's args (None: no enhance stage)

    @property
    def tag(self) -> str:
        return f"ep{self.number:02d}"


def stage_of(task: Task) -> str | None:
    """The manifest stage a task completes (``synth:ep03``), or None for a part of one."""
    names = {"synth.episode": "synth", "cut": "cut", "enhance": "enhance"}
    if task.kind in names and task.group:
        return f"{names[task.kind]}:{task.group}"
    return None


def _is(factory: Any, kind: type) -> bool:
    """The engine a registry factory makes is a ``kind`` (a factory that is not a class: unknown, False)."""
    return isinstance(factory, type) and issubclass(factory, kind)


def _rel(root: Path, path: Path) -> str:
    return path.resolve().relative_to(root).as_posix()


def picture_pool(name: str, device: str) -> Pool:
    """A pool for a model-holding picture engine: one worker per GPU, or one CPU worker."""
    return Pool(f"picture:{name}", size=1, cpus=1.0, gpus=1.0 if device != "cpu" else 0.0, per_gpu=device != "cpu")


def series_plan(root: Path, config: Config, run_id: str, work: Sequence[EpisodeWork], *,
                agents: Mapping[str, Agent[Any, Any]] | None = None, remote: bool = False) -> Plan:
    """The task graph of a make. ``agents`` are the Studio's (one put in place of a built-in agent
    travels with the plan; a synth agent that is not the built-in one runs whole, one task per
    episode); ``remote`` keeps the config's secrets out of what is sent to other machines."""
    from agents.cut import CutAgent
    from agents.enhance import EnhanceAgent
    from agents.synth import SynthAgent

    root = root.resolve()
    builtin = {"synth": SynthAgent, "cut": CutAgent, "enhance": EnhanceAgent}
    custom = {k: a for k, a in (agents or {}).items() if type(a) is not builtin.get(k)}
    custom_synth = "synth" in custom
    inputs = {w.number: w.synth for w in work if w.synth is not None}
    plan = Plan(root=str(root), kinds=KINDS_PATH, run_id=run_id, log_dir=str(root / "logs"),
                shared=shared_data(config.without_secrets() if remote else config, run_id, inputs, custom))
    plan.shared["secrets_redacted"] = remote
    settings = {n: resolve_settings(inp, config) for n, inp in inputs.items()}
    engines: dict[int, Any] = {n: PICTURE_ENGINES.factory(s.engine) for n, s in settings.items()}

    # an episode made through generation providers (--image/--video/--voice) runs whole, in one task:
    # the synth agent opens the provider sessions, checks the quote against the budget, then pays
    whole = {n for n, inp in inputs.items() if custom_synth or inp.providers is not None}
    sheets = [n for n in inputs if n not in whole and _is(engines[n], KeyframeEngine)
              and settings[n].synth.consistency != "off"]
    if sheets:
        s = settings[sheets[0]]
        pool = plan.add_pool(picture_pool(s.engine, s.device))
        plan.add(Task("series/sheets", "synth.sheets", {"episodes": sheets}, resources=Resources(pool=pool.name),
                      weight=WEIGHTS["synth.sheets"], group="series", label="角色设定图 · character sheets"))
    for w in work:
        after_synth: tuple[str, ...] = ()
        if w.synth is not None:
            after_synth = (_synth_tasks(plan, root, w, settings[w.number], engines[w.number], bool(sheets))
                           if w.number not in whole else _whole_synth(plan, root, w))
        plan.add(Task(f"{w.tag}/cut", "cut", w.cut, after=after_synth, inputs=(f"{w.cut['synth_dir']}/render.json",),
                      outputs=(w.cut["video"], w.cut["srt"]), weight=WEIGHTS["cut"], group=w.tag,
                      label=f"{w.tag} 成片 · cut"))
        if w.enhance is not None:
            res = Resources(pool="enhance") if w.enhance.get("options", {}).get("device", "auto") != "cpu" else Resources()
            if res.pool:
                plan.add_pool(Pool("enhance", size=1, per_gpu=True, gpus=1.0))
            plan.add(Task(f"{w.tag}/enhance", "enhance", w.enhance, after=(f"{w.tag}/cut",), inputs=(w.enhance["src"],),
                          outputs=(w.enhance["dst"],), resources=res, weight=WEIGHTS["enhance"], group=w.tag,
                          label=f"{w.tag} 增强 · enhance"))
    return plan.validate()


def _whole_synth(plan: Plan, root: Path, w: EpisodeWork) -> tuple[str, ...]:
    assert w.synth is not None
    task = plan.add(Task(f"{w.tag}/synth", "synth.episode", {"episode": w.number},
                         outputs=(_rel(root, w.synth.out_dir / "render.json"),), weight=WEIGHTS["synth.shot"] * 4,
                         group=w.tag, label=f"{w.tag} 合成 · synth"))
    return (task.id,)


def _synth_tasks(plan: Plan, root: Path, w: EpisodeWork, s: Any, engine: Any, sheets: bool) -> tuple[str, ...]:
    """voice -> (keyframe -> motion) -> shot per shot, the mix between, the episode's pass after."""
    inp = w.synth
    assert inp is not None
    n, tag = w.number, w.tag
    ep_dir = _rel(root, inp.out_dir)
    shots = [shot for scene in inp.series.episode(n).scenes for shot in scene.shots]
    generating = not _is(engine, AnimaticEngine)
    per_shot = generating and _is(engine, KeyframeEngine)
    pool = plan.add_pool(picture_pool(s.engine, s.device)).name if generating else ""
    voice_res = Resources()
    if inp.tts == "http":  # a paid service: its calls are limited across the cluster
        voice_res = Resources(cpus=0.0, pool=plan.add_pool(Pool("provider:tts-http", size=1, cpus=0.0,
                                                                concurrency=TTS_HTTP_CONCURRENCY)).name)
    voices, pictures = [], {}
    for shot in shots:
        voices.append(plan.add(Task(f"{tag}/voice/{shot.id}", "synth.voice", {"episode": n, "shot": shot.id},
                                    resources=voice_res, weight=WEIGHTS["synth.voice"], group=tag,
                                    label=f"{tag} 配音 {shot.id}")).id)
    if per_shot:
        for shot in shots:
            kf = plan.add(Task(f"{tag}/keyframe/{shot.id}", "synth.keyframe", {"episode": n, "shot": shot.id},
                               after=("series/sheets",) if sheets else (), resources=Resources(pool=pool),
                               outputs=(f"{ep_dir}/keyframes/{shot.id}.png",), weight=WEIGHTS["synth.keyframe"],
                               group=tag, label=f"{tag} 关键帧 {shot.id}"))
            pictures[shot.id] = kf.id
            if s.video_model:
                mo = plan.add(Task(f"{tag}/motion/{shot.id}", "synth.motion", {"episode": n, "shot": shot.id},
                                   after=(kf.id,), resources=Resources(pool=pool),
                                   outputs=(f"{ep_dir}/keyframes/{shot.id}.motion.mp4",),
                                   weight=WEIGHTS["synth.motion"], group=tag, label=f"{tag} 图生视频 {shot.id}"))
                pictures[shot.id] = mo.id
    elif generating:  # a plug-in engine that makes an episode's pictures at once
        pic = plan.add(Task(f"{tag}/pictures", "synth.pictures", {"episode": n}, resources=Resources(pool=pool),
                            weight=WEIGHTS["synth.pictures"] * len(shots), group=tag, label=f"{tag} 画面 · pictures"))
        pictures = {shot.id: pic.id for shot in shots}
    mix = plan.add(Task(f"{tag}/mix", "synth.mix", {"episode": n}, after=tuple(voices),
                        outputs=(f"{ep_dir}/mix/{plan.run_id or 'run'}.npz",), weight=WEIGHTS["synth.mix"], group=tag,
                        label=f"{tag} 混音 · mix"))
    clips = []
    for shot in shots:
        after = (mix.id, pictures[shot.id]) if shot.id in pictures else (mix.id,)
        clips.append(plan.add(Task(f"{tag}/shot/{shot.id}", "synth.shot", {"episode": n, "shot": shot.id},
                                   after=after, inputs=(f"{ep_dir}/mix/{plan.run_id or 'run'}.npz",),
                                   outputs=tuple(f"{ep_dir}/shots/{shot.id}{x}" for x in (".json", ".mp4", ".wav", ".png")),
                                   weight=WEIGHTS["synth.shot"], group=tag, label=f"{tag} 镜头 {shot.id}")).id)
    episode = plan.add(Task(f"{tag}/synth", "synth.episode", {"episode": n}, after=tuple(clips),
                            resources=Resources(pool=pool) if generating else Resources(),
                            outputs=(f"{ep_dir}/render.json",), weight=WEIGHTS["synth.episode"], group=tag,
                            label=f"{tag} 合成 · synth"))
    return (episode.id,)


# -- enhance over many files --------------------------------------------------------------------
def enhance_plan(pairs: Sequence[tuple[Path, Path]], options: Mapping[str, Any], config: Config, *,
                 record_dir: Path, run_id: str = "", remote: bool = False) -> Plan:
    """One ``enhance`` task per (source, destination), on the ``enhance`` pool (one worker per GPU)
    unless the device is the CPU. A record per file in ``record_dir`` (its source's, settings' and
    result's hashes) keeps a finished file from being made again. Every node must reach the files
    at the same paths."""
    paths = [p.resolve() for pair in pairs for p in pair] + [record_dir.resolve()]
    root = Path(os.path.commonpath([str(p) for p in paths]))
    plan = Plan(root=str(root), kinds=KINDS_PATH, run_id=run_id,
                shared=shared_data(config.without_secrets() if remote else config, run_id))
    plan.shared["secrets_redacted"] = remote
    gpu = str(options.get("device", "auto")) != "cpu"
    if gpu:
        plan.add_pool(Pool("enhance", size=1, per_gpu=True, gpus=1.0))
    for i, (src, dst) in enumerate(pairs):
        src_rel, dst_rel = _rel(root, src), _rel(root, dst)
        rec = _rel(root, record_dir / f"{dst.name}.json")
        plan.add(Task(f"enhance/{i:04d}/{src.name}", "enhance",
                      {"src": src_rel, "dst": dst_rel, "options": dict(options), "record": rec},
                      inputs=(src_rel,), outputs=(dst_rel,), resources=Resources(pool="enhance") if gpu else Resources(),
                      weight=WEIGHTS["enhance"], group="enhance", label=f"增强 · {src.name}"))
    return plan.validate()
