"""Orchestration overhead of the provider runner: N shots, each a chain keyframe -> image-to-video,
against local fakes (Kling images, Ark Seedance video) whose tasks take a known, per-shot time.

``python -m benchmarks providers_bench [--shots 12] [--image 1.5:3] [--video 3:6] [--seed 1]``

The floor is the slowest chain: max over shots of (keyframe time + video time), the time the
providers themselves take. The runner's wall time is compared with that floor (target: within
10%) and with the sequential baseline measured in the same run (the sum of the chains), which
is what an orchestrator that waits for each shot in turn would take. Polling is scaled to the
fakes' short tasks (first look after 0.25 s; the default 2 s is meant for tasks of minutes).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import random
import re
import tempfile
import time
from pathlib import Path

from pipelines.providers import PROVIDERS, GenRequest, ProviderSettings
from pipelines.providers.runner import Job, JobResult, Step, TaskRunner
from tests.support.providers import FakeArk, FakeKling

KEY = "bench-key-0123456789"
SECRET = "bench-secret-0123456789-abcdefghijkl"


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _range(text: str) -> tuple[float, float]:
    lo, _, hi = text.partition(":")
    return float(lo), float(hi or lo)


def chains(n: int, frame: Path, tag: str) -> list[list[Job | Step]]:
    def bind(job: Job, prev: JobResult) -> Job:
        return dataclasses.replace(job, request=dataclasses.replace(job.request, image=prev.files[0]))

    out: list[list[Job | Step]] = []
    for i in range(n):
        key = Job(f"{tag}/shot{i:02d}/keyframe", "kling",
                  GenRequest("image", "kling-v1-5", prompt=f"镜头 {i}：雨夜长街", references=(frame,), seed=i,
                             width=720, height=1280))
        video = Job(f"{tag}/shot{i:02d}/video", "ark",
                    GenRequest("video", "doubao-seedance-1-0-pro-250528", prompt=f"镜头 {i}：回头", image=frame,
                               seed=i, width=720, height=1280, duration=5))
        out.append([key, Step(video, bind)])
    return out


def run(project: Path, ch: list[list[Job | Step]], kling: FakeKling, ark: FakeArk, concurrency: int) -> float:
    def settings(base_url: str) -> ProviderSettings:
        return ProviderSettings(base_url=base_url, poll_first_s=0.25, poll_max_s=30.0, concurrency=concurrency)

    provs = {"kling": PROVIDERS.create("kling", settings(kling.base_url),
                                       env={"KLING_ACCESS_KEY": KEY, "KLING_SECRET_KEY": SECRET}),
             "ark": PROVIDERS.create("ark", settings(ark.base_url), env={"ARK_API_KEY": KEY})}
    with TaskRunner(project, provs) as r:
        r.preflight(["kling", "ark"])  # the free key checks are not part of the chains
        t0 = time.perf_counter()
        results = r.run_chains(ch)
        wall = time.perf_counter() - t0
    bad = [res for chain in results for res in chain if res.status != "done"]
    if bad:
        raise SystemExit(f"benchmark run failed: {bad[0].job.name}: {bad[0].error}")
    return wall


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks providers_bench")
    ap.add_argument("--shots", type=int, default=12)
    ap.add_argument("--image", default="1.5:3", help="keyframe task seconds, LO:HI (uniform per shot)")
    ap.add_argument("--video", default="3:6", help="video task seconds, LO:HI")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-sequential", action="store_true")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    ilo, ihi = _range(args.image)
    vlo, vhi = _range(args.video)
    img_lat = [rng.uniform(ilo, ihi) for _ in range(args.shots)]
    vid_lat = [rng.uniform(vlo, vhi) for _ in range(args.shots)]
    floor = max(a + b for a, b in zip(img_lat, vid_lat, strict=True))
    total = sum(img_lat) + sum(vid_lat)

    def shot_of(task: object) -> int:
        body = getattr(task, "body", {}) or {}
        text = body.get("prompt") or next((c.get("text", "") for c in body.get("content", [])
                                           if c.get("type") == "text"), "")
        m = re.search(r"镜头 (\d+)", str(text))
        return int(m.group(1)) if m else 0

    from PIL import Image

    rows = []
    with tempfile.TemporaryDirectory() as tmp, FakeKling(key=KEY, secret=SECRET) as kling, FakeArk(key=KEY) as ark:
        kling.latency_for = lambda t: img_lat[shot_of(t)]
        ark.latency_for = lambda t: vid_lat[shot_of(t)]
        frame = Path(tmp) / "ref.png"
        Image.new("RGB", (72, 128), (90, 60, 30)).save(frame)
        wall = run(Path(tmp) / "concurrent", chains(args.shots, frame, "c"), kling, ark, concurrency=args.shots)
        rows.append(("runner, chains concurrent", args.shots, wall, floor))
        wall4 = run(Path(tmp) / "limited", chains(args.shots, frame, "l"), kling, ark, concurrency=4)
        rows.append(("runner, concurrency 4 (default)", 4, wall4, floor))
        if not args.skip_sequential:
            seq = 0.0
            for i, chain in enumerate(chains(args.shots, frame, "s")):
                seq += run(Path(tmp) / f"seq{i}", [chain], kling, ark, concurrency=1)
            rows.append(("baseline: one chain at a time", 1, seq, total))
        submits = kling.counts["submit"] + ark.counts["submit"]
        polls = kling.counts["status"] + ark.counts["status"]

    print(f"machine: {_cpu()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"input: {args.shots} shots, keyframe {args.image} s, video {args.video} s per task (seed {args.seed}); "
          f"slowest chain {floor:.2f} s, sum of chains {total:.2f} s")
    print(f"{'run':<34}{'concurrency':>12}{'wall s':>10}{'floor s':>10}{'over floor':>12}{'shots/min':>11}")
    for name, conc, w, fl in rows:
        print(f"{name:<34}{conc:>12}{w:>10.2f}{fl:>10.2f}{(w / fl - 1) * 100:>11.1f}%{args.shots * 60 / w:>11.1f}")
    print(f"create calls {submits} (2 per shot per run), status queries {polls}")
    return 0
