"""Seconds per shot for each synth engine on this machine (CPU), at the real frame size.

Runs the SynthAgent on the same small episode (shots of ~3-4 s, 1080x1920, 25 fps) with:

* baseline  - the animatic with every camera static (one prepared frame per line: the fast path)
* animatic  - the same shots with camera moves and two-layer parallax (a warp per frame)
* diffusers - keyframes from a tiny random SD 1.5-architecture pipeline (measures our plumbing,
              fitting and compositing; a real model's generation time comes on top, see synth_gpu)

and, separately, seconds per spoken line for each installed TTS engine. Each run starts from an
empty cache. Usage: ``python -m benchmarks.synth_cpu [--shots 6] [--size 1080x1920]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.screenplay import Series

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _series(shots: int, moving: bool) -> Series:
    from core.screenplay import CameraMove, Character, Episode, Line, LineKind, Scene, Series, Shot

    moves = [CameraMove.PUSH_IN, CameraMove.PAN_LEFT, CameraMove.TILT_UP, CameraMove.PULL_OUT, CameraMove.HANDHELD]
    texts = ["我们先前——比你阔的多啦！", "你那里配姓赵！", "阿Q没有家，住在未庄的土谷祠里。"]
    items = []
    for i in range(shots):
        who = ["阿Q", "赵太爷", ""][i % 3]
        items.append(Shot(id=f"e01s01k{i:02d}", camera=moves[i % len(moves)] if moving else CameraMove.STATIC,
                          characters=[who] if who else [], visual_prompt=f"未庄，镜头{i}",
                          lines=[Line(speaker=who, text=texts[i % 3], kind=LineKind.DIALOGUE if who else LineKind.NARRATION)]))
    return Series(title="基准", characters=[Character(name="阿Q", appearance="瘦小，黄辫子"), Character(name="赵太爷")],
                  episodes=[Episode(number=1, scenes=[Scene(id="e01s01", place="未庄", shots=items)])])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shots", type=int, default=6)
    parser.add_argument("--size", default="1080x1920")
    args = parser.parse_args(argv)
    w, h = (int(x) for x in args.size.split("x"))

    import torch

    from agents.base import RunContext
    from agents.synth import SynthAgent, SynthInput
    from core.config import load_config
    from pipelines.tts import ENGINES, TTSOptions, VoiceSpec, engine_class, get_engine
    from tests.support.tiny_pipelines import random_sd_pipeline

    print(f"machine: {platform.node()} | {platform.processor() or platform.machine()} | {os.cpu_count()} cores | "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads) | python {platform.python_version()}")
    print(f"episode: {args.shots} shots, one line each, {w}x{h} at 25 fps, empty cache per run")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = random_sd_pipeline(Path(tmp) / "tiny-sd")
        for name, engine, moving in (("baseline (static)", "animatic", False), ("animatic (moves)", "animatic", True),
                                     ("diffusers tiny (moves)", "diffusers", True)):
            cfg = load_config()
            series = _series(args.shots, moving)
            inp = SynthInput(series=series, episode=1, out_dir=Path(tmp) / name.split()[0] / "ep01", width=w, height=h,
                             tts="silence", engine=engine, image_model=str(model) if engine == "diffusers" else "",
                             steps=2)
            t = time.perf_counter()
            render = SynthAgent()(inp, RunContext(config=cfg)).output
            secs = time.perf_counter() - t
            frames = render.total_frames
            rows.append((name, secs / args.shots, frames / secs, frames))
    print(f"{'engine':<24}{'s/shot':>9}{'frames/s':>10}{'frames':>8}")
    for name, per, fps, frames in rows:
        print(f"{name:<24}{per:>9.2f}{fps:>10.1f}{frames:>8}")
    print(f"camera moves cost {rows[1][1] / rows[0][1]:.2f}x the static baseline per shot")
    print(f"{'TTS engine':<24}{'s/line':>9}{'audio s':>10}")
    for name in ENGINES.names():
        cls = engine_class(name)
        if name == "silence" or not cls.available(TTSOptions()):
            continue
        voice = get_engine(name, TTSOptions())
        text = "我们先前比你阔的多啦！你算是什么东西！" if name != "piper" else "We were much richer than you before!"
        voice.synthesize(text, VoiceSpec())  # warm-up (model load)
        t = time.perf_counter()
        speech = [voice.synthesize(text, VoiceSpec()) for _ in range(3)]
        per = (time.perf_counter() - t) / 3
        print(f"{name:<24}{per:>9.3f}{float(speech[0].seconds):>10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
