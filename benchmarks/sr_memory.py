"""Peak memory of a video upscale against the video's length: it must stay flat.

Makes a 1-minute and a 10-minute 160x90 clip (moving texture + a tone, 25 fps), upscales each to
640x360 with ``reelforge enhance --scale 4`` in a fresh process, and compares the peak resident
memory of the two processes (target: the 10-minute job uses no more than 1.1x the 1-minute one).

    python -m benchmarks.sr_memory [--model rf-x4] [--minutes 1,10]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from benchmarks.common import machine, table


def make_clip(path: Path, seconds: int, fps: int = 25) -> Path:
    from core.media import VideoWriter

    rng = np.random.default_rng(0)
    plate = (rng.random((270, 480, 3)) * 255).astype(np.uint8)
    rate = 48000
    per = rate // fps
    with VideoWriter(path, 160, 90, Fraction(fps), crf=23, audio_rate=rate) as w:
        for i in range(seconds * fps):
            x, y = (i * 2) % 320, (i // 3) % 180
            w.write(np.ascontiguousarray(plate[y:y + 90, x:x + 160]))
            t = (np.arange(per) + i * per) / rate
            w.write_audio((0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32))
    return path


def run_enhance(src: Path, dst: Path, model: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one `reelforge enhance` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "ui.cli", "-q", "--log-level", "WARNING", "enhance", str(src), str(dst),
                           "--scale", "4", "--model", model], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"enhance failed: {proc.stderr[-2000:]}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # RUSAGE_CHILDREN keeps the largest child so far: run the short clip first
    return wall, max(peak, before) / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.sr_memory")
    ap.add_argument("--model", default="rf-x4")
    ap.add_argument("--minutes", default="1,10")
    ap.add_argument("--work", default="/tmp/sr_memory")
    args = ap.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    peaks = []
    for minutes in [int(m) for m in args.minutes.split(",")]:
        src = work / f"clip_{minutes}min.mp4"
        if not src.exists():
            make_clip(src, minutes * 60)
        wall, peak = run_enhance(src, work / f"up_{minutes}min.mp4", args.model)
        peaks.append(peak)
        rows.append([f"{minutes} min", minutes * 60 * 25, round(wall, 1), round(peak, 1)])
    print(f"machine: {machine()}")
    print(f"job: reelforge enhance --scale 4 --model {args.model}, 160x90 -> 640x360, 25 fps, H.264 + AAC")
    print(table(["clip", "frames", "wall s", "peak RSS MiB"], rows))
    if len(peaks) >= 2:
        ratio = peaks[-1] / peaks[0]
        print(f"peak RSS ratio longest/shortest: {ratio:.3f} (target <= 1.10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
