"""QC wall time and memory against episode length, on a real 1080x1920 episode.

``python -m benchmarks qc_bench --project DIR [--lengths 80,180,320]``

DIR is a project made by ``reelforge make`` at 1080x1920 (the sample story: 80 s). Each length
(seconds) is that episode joined to itself as often as needed and cut at the first shot start at
or after the length (video packets copied, sound rebuilt, subtitles and shots repeated), so every
length is real content. Each length is measured in a fresh process
(wall time of the whole QC: every check, both decoding passes, and the report with its
thumbnails; peak resident memory), next to the baseline measured in the same run: decoding
the same file's video and audio once with PyAV and nothing else, the floor any QC has to pay.
The target is a wall time under half the episode's duration on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import machine, table

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
from benchmarks.qc_bench import child
print(json.dumps(child(Path({video!r}), Path({srt!r}), {facts!r}, {mode!r})))
"""


def _repeat(project: Path, seconds: float, out: Path) -> tuple[Path, Path, dict[str, object]]:
    """The project's episode joined to itself and cut at the first shot start at or after ``seconds``."""
    import math

    from agents.qc import episode_facts
    from core.media import concat, probe, trim
    from core.workspace import Workspace
    from pipelines.qc.base import ShotFact, parse_srt_time
    from pipelines.subtitles import parse_srt

    ws = Workspace(project)
    video, srt = ws.episode_video(1), ws.episode_srt(1)
    info = probe(video)
    assert info.video is not None
    fps = float(info.video.fps)
    length = info.video.frames / fps
    facts, _ = episode_facts(ws, 1)
    times = max(1, math.ceil(seconds / length - 1e-9))
    shots = [ShotFact(f"{s.id}#{k}", s.start + k * length, s.end + k * length, s.speakers, s.characters, s.moving)
             for k in range(times) for s in facts.shots]
    end = next((s.start for s in shots if s.start >= seconds - 1e-6), times * length)
    shots = [s for s in shots if s.start < end - 1e-6]
    meta = {k: v for k, v in info.metadata.items() if k.upper() == "AIGC" or k in {"comment", "title"}}
    dst = video
    if times > 1:
        dst = out / f"ep_{seconds:g}s_joined.mp4"
        concat([video] * times, dst, metadata=meta)
    if end < times * length - 1e-6:
        cut = out / f"ep_{seconds:g}s.mp4"
        trim(dst, cut, 0, int(round(end * fps)), metadata=meta)
        dst = cut
    speakers: list[str] = []
    blocks, n = [], 0
    for k in range(times):
        for (a, b, text), who in zip(parse_srt(srt.read_text(encoding="utf-8")), facts.cue_speakers, strict=False):
            sa, sb = parse_srt_time(a) + k * length, parse_srt_time(b) + k * length
            if sa >= end:
                continue
            n += 1
            speakers.append(who)
            blocks.append(f"{n}\n{_ts(sa)} --> {_ts(min(sb, end))}\n{text}\n")
    srt_out = out / f"ep_{seconds:g}s.srt"
    srt_out.write_text("\n".join(blocks), encoding="utf-8")
    spec = {"target": end, "cue_speakers": speakers,
            "shots": [[s.id, s.start, s.end, list(s.speakers), s.moving] for s in shots]}
    return dst, srt_out, spec


def _ts(t: float) -> str:
    ms = int(round(t * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def child(video: Path, srt: Path, spec: dict[str, object], mode: str) -> dict[str, float]:
    """One measurement in this (fresh) process: the QC, or the decode-only baseline."""
    import resource

    from core.media import decoded_frames, iter_audio, probe

    t0 = time.perf_counter()
    if mode == "baseline":
        for _ in decoded_frames(video):
            pass
        for _ in iter_audio(video, rate=48000):
            pass
    else:
        from agents.qc import QCReport, write_report
        from pipelines.qc import run_checks
        from pipelines.qc.base import EpisodeFacts, ShotFact

        raw: Any = spec
        facts = EpisodeFacts(target_seconds=float(raw["target"]), cue_speakers=list(raw["cue_speakers"]),
                             shots=[ShotFact(i, a, b, tuple(sp), moving=mv) for i, a, b, sp, mv in raw["shots"]])
        run = run_checks(video, srt, facts, "douyin")
        report = QCReport(1, str(video), "douyin", run.checks, run.seconds, "", notes=run.notes)
        # the report is written as `qc` writes it, beside a link to the episode in a temporary folder
        link = Path(tempfile.mkdtemp()) / "ep.mp4"
        link.symlink_to(video.resolve())
        write_report(report, link)
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "seconds": float(probe(video).duration or 0)}


def _run(video: Path, srt: Path, spec: dict[str, object], mode: str) -> dict[str, float]:
    repo = str(Path(__file__).resolve().parents[1])
    code = CHILD.format(repo=repo, video=str(video), srt=str(srt), facts=spec, mode=mode)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=repo)
    return dict(json.loads(res.stdout.strip().splitlines()[-1]))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks qc_bench")
    ap.add_argument("--project", required=True, help="a project made at 1080x1920 by `reelforge make`")
    ap.add_argument("--lengths", default="80,180,320", help="episode lengths to measure, in seconds")
    args = ap.parse_args(argv)
    project = Path(args.project)
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        for seconds in [float(x) for x in args.lengths.split(",")]:
            video, srt, spec = _repeat(project, seconds, out)
            base = _run(video, srt, spec, "baseline")
            qc = _run(video, srt, spec, "qc")
            rows.append([f"{seconds:g} s", round(qc["seconds"], 1), round(base["wall_s"], 1), round(qc["wall_s"], 1),
                         round(qc["wall_s"] / qc["seconds"], 3), round(base["rss_mib"]), round(qc["rss_mib"]),
                         f"{os.getloadavg()[0]:.1f}"])
    print(f"QC benchmark — {machine()}")
    print(f"input: {project / 'out' / 'ep01.mp4'} joined to itself and cut at a shot start; "
          f"load average before {load_before[0]:.1f}")
    print(table(["asked", "length s", "baseline decode s", "QC s", "QC / length", "baseline RSS MiB",
                 "QC RSS MiB", "load after"], rows))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
