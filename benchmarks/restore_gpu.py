"""RIFE on a CUDA GPU: fp16 vs fp32 speed and agreement, and interpolate_video end to end.

    python -m benchmarks restore_gpu [--weights flownet.pkl] [--seconds 240]

Without ``--weights`` the networks get random weights (fixed seed): the timings are real, the
pictures are not (no quality claim). With a user's Practical-RIFE ``flownet.pkl`` the fp16/fp32
agreement and the interpolation of real frames are meaningful too. Everything runs from local
files; nothing is downloaded. Stops early when the time budget (``--seconds``) is spent.

Prints: the machine; per version and size, ms per interpolated frame in fp32 and fp16 (CUDA
events, after warm-up), the max and mean absolute difference fp16 vs fp32 in 8-bit levels; then
``interpolate_video`` 25 -> 50 fps on a generated 1080p clip with sound, with its output checks.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

from benchmarks._machine import describe_machine
from benchmarks.common import table


def _frames(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """A real frame pair when the opencv-doc clip is installed (resized), else a moving texture."""
    import cv2

    path = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
    if path.exists():
        from core.media import iter_frames

        imgs = [f.image for f in iter_frames(path, end=3)]
        return (cv2.resize(imgs[0], (w, h), interpolation=cv2.INTER_CUBIC),
                cv2.resize(imgs[2], (w, h), interpolation=cv2.INTER_CUBIC))
    rng = np.random.default_rng(0)
    big = cv2.GaussianBlur(rng.integers(0, 256, (h, w + 16, 3)).astype(np.float32), (0, 0), 3)
    big = np.clip((big - 128) * 3 + 128, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(big[:, :w]), np.ascontiguousarray(big[:, 16:])


def main(argv: list[str] | None = None) -> int:
    import torch

    from models.rife import build_ifnet, save_rife
    from pipelines.interpolate import RifeInterpolator, interpolate_video

    parser = argparse.ArgumentParser(prog="python -m benchmarks restore_gpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, default=None, help="a Practical-RIFE 4.x flownet.pkl (optional)")
    parser.add_argument("--seconds", type=float, default=240.0, help="time budget for the whole run")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print(f"machine: {describe_machine()}", flush=True)
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure here (the CPU numbers are in benchmarks/restore_bench.py)")
        return 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        weight_files: list[tuple[str, Path]] = []
        if args.weights is not None:
            weight_files.append(("user", args.weights))
        else:
            for version in ("4.6", "4.25"):
                torch.manual_seed(0)
                weight_files.append((f"{version} (random)", save_rife(build_ifnet(version), Path(tmp) / f"{version}.pkl")))
        for label, path in weight_files:
            for w, h in ((1280, 720), (1920, 1080), (3840, 2160)):
                if time.perf_counter() - start > args.seconds * 0.6:
                    print("time budget reached; skipping the remaining sizes", flush=True)
                    break
                a, b = _frames(w, h)
                scale = 0.5 if w >= 3840 else 1.0
                outs = {}
                for precision in ("fp32", "fp16"):
                    rife = RifeInterpolator(path, device="cuda", precision=precision, scale=scale)
                    for _ in range(3):  # warm-up (cuDNN autotune, allocator)
                        rife.interpolate(a, b, [0.5])
                    torch.cuda.synchronize()
                    n = 10
                    t0 = time.perf_counter()
                    for _ in range(n):
                        out = rife.interpolate(a, b, [0.5])[0]
                    torch.cuda.synchronize()
                    outs[precision] = (out, (time.perf_counter() - t0) / n)
                    del rife
                    torch.cuda.empty_cache()
                diff = np.abs(outs["fp16"][0].astype(np.int16) - outs["fp32"][0].astype(np.int16))
                rows.append([label, f"{w}x{h}", scale, f"{1000 * outs['fp32'][1]:.1f}", f"{1000 * outs['fp16'][1]:.1f}",
                             int(diff.max()), f"{diff.mean():.3f}"])
                print(f"  {label} {w}x{h}: done", flush=True)
        print("\nRIFE IFNet per interpolated frame (host frames in and out, i.e. including transfers)")
        print(table(["weights", "size", "scale", "fp32 ms", "fp16 ms", "fp16-fp32 max |diff|", "mean |diff|"], rows))

        try:
            import av  # noqa: F401 - the end-to-end run decodes and encodes with PyAV
        except ImportError:
            print("\ninterpolate_video end to end: skipped (PyAV is not installed here)")
            print(f"total {time.perf_counter() - start:.0f} s")
            return 0
        from core.media import VideoWriter, probe

        src = Path(tmp) / "clip.mp4"
        rate = 48000
        a, b = _frames(1920, 1080)
        with VideoWriter(src, 1920, 1080, Fraction(25), audio_rate=rate) as wr:
            for i in range(50):
                wr.write(a if i % 2 == 0 else b)
                wr.write_audio(np.zeros(rate // 25, np.float32))
        t0 = time.perf_counter()
        path = weight_files[-1][1]
        stats = interpolate_video(src, Path(tmp) / "out.mp4", 50, method="rife", weights=path, device="cuda")
        dt = time.perf_counter() - t0
        info = probe(Path(tmp) / "out.mp4")
        ok = info.video is not None and info.video.frames == 100 and info.video.fps == 50
        print(f"\ninterpolate_video 1080p 25 -> 50 fps (50 -> {stats.out_frames} frames) with RIFE on "
              f"{stats.engine.get('device_name')} {stats.engine.get('dtype')}: {dt:.1f} s "
              f"({stats.out_frames / dt:.1f} output fps, decode + encode included); "
              f"output {'OK' if ok else 'WRONG'}: {info.video}; audio {info.audio}")
    print(f"total {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
