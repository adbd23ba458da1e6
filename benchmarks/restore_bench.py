"""Denoise/deblock and frame interpolation: quality (PSNR) and speed on real footage, CPU.

    python -m benchmarks restore_bench [--frames 20] [--quick]

Inputs: the Debian opencv-doc clips ``vtest.avi`` (768x576, fixed camera, people walking) and
``Megamind.avi`` (720x528, animation, dark; frames inside one shot), plus seven opencv-doc
pictures for deblocking. Nothing is downloaded; the benchmark stops if they are absent.

- **Denoise**: clean frames + Gaussian noise (sigma) and/or JPEG coding (quality q, 8x8 blocks,
  4:2:0), as a camera then a codec would. PSNR (dB, RGB) against the clean frames, averaged over
  frames 4.. (the temporal filter's warm-up is excluded for every method alike). Baselines in the
  same run: the noisy input; the same chain per frame (``temporal=False``: deblock + bilateral);
  OpenCV non-local means per frame (h = 0.7 x measured sigma); OpenCV's
  temporal NLM over 5 frames (``fastNlMeansDenoisingColoredMulti``, h = measured sigma) on 4
  frames only (it takes seconds per frame).
- **Deblock**: JPEG at quality 10/20/35, PSNR gain and the block-edge ratio (mean step across the
  8x8 grid / at the other phases; about 1.0 for a picture without a grid) before and after.
- **Interpolation**: every other frame is dropped and rebuilt from its neighbours (t = 0.5,
  i.e. half the source frame rate), PSNR against the dropped frame. Baselines: repeat the
  previous frame, cross-fade. RIFE runs with random weights for its speed only (no quality
  claim: no weights are shipped).
- **Scene cuts**: the cut score for every consecutive pair of the whole Megamind clip.
- **1080p speed**: the temporal denoiser per frame and the flow interpolator per new frame on
  Megamind frames resized to 1920x1080 (``--only hd`` runs this part alone).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks._machine import describe_machine
from benchmarks.common import table

DATA = Path("/usr/share/doc/opencv-doc/examples/data")
PICTURES = ("fruits.jpg", "building.jpg", "baboon.jpg", "home.jpg", "aero3.jpg", "lena.jpg", "board.jpg")
CASES = ((15, 0), (10, 30), (20, 50), (0, 20))  # (noise sigma, JPEG quality; 0 = none)


def degrade(image: np.ndarray, sigma: float, quality: int, rng: np.random.Generator) -> np.ndarray:
    out = image
    if sigma:
        out = np.clip(np.rint(image.astype(np.float32) + rng.normal(0, sigma, image.shape)), 0, 255).astype(np.uint8)
    if quality:
        ok, buf = cv2.imencode(".jpg", out[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        assert decoded is not None, "OpenCV could not decode its own JPEG"
        out = decoded[:, :, ::-1].copy()
    return out


def load_clip(name: str, start: int, count: int) -> list[np.ndarray]:
    from core.media import iter_frames

    return [f.image for f in iter_frames(DATA / name, start=start, end=start + count)]


def bench_denoise(clips: dict[str, list[np.ndarray]], quick: bool) -> None:
    from pipelines.denoise import (
        DenoiseSettings,
        TemporalDenoiser,
        denoise_frames,
        estimate_noise,
        psnr,
    )

    rows = []
    warm = 4
    for name, clean in clips.items():
        for sigma, q in CASES:
            rng = np.random.default_rng(11)
            noisy = [degrade(f, sigma, q, rng) for f in clean]
            scored = slice(warm, len(clean))

            def score(frames: list[np.ndarray], ref: list[np.ndarray] = clean, part: slice = scored) -> float:
                return float(np.mean([psnr(a, b) for a, b in zip(ref[part], frames[part], strict=True)]))

            t = time.perf_counter()
            per_frame = denoise_frames(noisy, DenoiseSettings(temporal=False))
            t_pf = (time.perf_counter() - t) / len(noisy)
            t = time.perf_counter()
            temporal = TemporalDenoiser()(noisy)
            t_tp = (time.perf_counter() - t) / len(noisy)
            sharp = TemporalDenoiser(DenoiseSettings(sharpen=0.3))(noisy)
            sig = float(np.mean([estimate_noise(f) for f in noisy[warm:warm + 3]]))
            h = max(1.0, 0.7 * sig)
            t = time.perf_counter()
            nlm_part = range(warm, len(noisy)) if not quick else range(warm, warm + 3)
            nlm = {i: cv2.fastNlMeansDenoisingColored(noisy[i], None, h, h, 7, 21) for i in nlm_part}
            t_nlm = (time.perf_counter() - t) / len(nlm)
            p_nlm = float(np.mean([psnr(clean[i], nlm[i]) for i in nlm]))
            multi_idx = list(range(warm, warm + (2 if quick else 4)))
            t = time.perf_counter()
            hm = max(1.0, sig)
            multi = {i: cv2.fastNlMeansDenoisingColoredMulti(noisy, i, 5, None, hm, hm, 7, 21) for i in multi_idx}
            t_multi = (time.perf_counter() - t) / len(multi)
            p_multi = float(np.mean([psnr(clean[i], multi[i]) for i in multi_idx]))
            p_tp_multi = float(np.mean([psnr(clean[i], temporal[i]) for i in multi_idx]))
            label = f"sigma {sigma}" + (f" + JPEG q{q}" if q else "") if sigma else f"JPEG q{q}"
            rows.append([name, label, score(noisy), score(per_frame), p_nlm, f"{p_multi:.2f} ({p_tp_multi:.2f})",
                         score(temporal), score(sharp), f"{1000 * t_pf:.0f} / {1000 * t_nlm:.0f} / "
                         f"{1000 * t_multi:.0f} / {1000 * t_tp:.0f}"])
            print(f"  denoise {name} {label}: done", flush=True)
    print("\nDenoise: PSNR dB (frames 4..; NLM-multi on 4 frames, ours on the same 4 in brackets)")
    print(table(["clip", "degradation", "noisy", "per-frame (ours, no temporal)", "NLM per frame",
                 "NLM 5-frame (ours)", "temporal (ours)", "temporal + sharpen 0.3",
                 "ms/frame: per-frame / NLM / NLM-5 / temporal"], rows))


def bench_deblock() -> None:
    from pipelines.denoise import deblock, detect_blocks, psnr

    read = [cv2.imread(str(DATA / p)) for p in PICTURES if (DATA / p).exists()]
    pictures = [p[:, :, ::-1].copy() for p in read if p is not None]
    rows = []
    for q in (10, 20, 35):
        gains, before, after, ms = [], [], [], []
        for pic in pictures:
            coded = degrade(pic, 0, q, np.random.default_rng(0))
            g = detect_blocks(coded)
            t = time.perf_counter()
            fixed = deblock(coded)
            ms.append(1000 * (time.perf_counter() - t) / (pic.shape[0] * pic.shape[1] / 1e6))
            a = detect_blocks(fixed)
            gains.append(psnr(pic, fixed) - psnr(pic, coded))
            before.append(max(g.ratio_x, g.ratio_y))
            after.append(max(a.ratio_x, a.ratio_y))
        rows.append([f"q{q}", len(pictures), float(np.mean(gains)), float(np.min(gains)), float(np.mean(before)),
                     float(np.mean(after)), float(np.mean(ms))])
    print("\nDeblock: JPEG-coded opencv-doc pictures")
    print(table(["JPEG", "pictures", "PSNR gain dB (mean)", "gain (worst)", "block ratio before", "after",
                 "ms per megapixel"], rows))


def bench_interpolation(clips: dict[str, list[np.ndarray]], quick: bool) -> None:
    from pipelines.denoise import psnr
    from pipelines.interpolate import BlendInterpolator, FlowInterpolator, RepeatInterpolator

    methods = [("repeat previous", RepeatInterpolator()), ("cross-fade", BlendInterpolator()),
               ("flow (DIS medium, default)", FlowInterpolator()),
               ("flow + occlusion weighting", FlowInterpolator(occlusion=True)),
               ("flow (DIS fast, 512 px)", FlowInterpolator(preset="fast", max_side=512))]
    rows = []
    for name, frames in clips.items():
        triplets = [(frames[i], frames[i + 1], frames[i + 2]) for i in range(0, len(frames) - 2, 2)]
        if quick:
            triplets = triplets[:4]
        for label, interp in methods:
            t = time.perf_counter()
            scores = [psnr(mid, interp.interpolate(a, b, [0.5])[0]) for a, mid, b in triplets]
            dt = (time.perf_counter() - t) / len(triplets)
            rows.append([name, label, len(triplets), float(np.mean(scores)), float(np.min(scores)), f"{1000 * dt:.0f}"])
    print("\nInterpolation: rebuild every other frame (t = 0.5), PSNR dB vs the dropped frame")
    print(table(["clip", "method", "frames", "PSNR mean", "PSNR worst", "ms/frame"], rows))


def bench_rife_speed(frame: np.ndarray) -> None:
    import torch

    from models.rife import build_ifnet, pad_to

    rows = []
    x = torch.from_numpy(np.stack([frame, frame])).permute(0, 3, 1, 2).float() / 255
    for version in ("4.6", "4.25"):
        model = build_ifnet(version).eval()
        padded, _ = pad_to(x, model.modulo)
        with torch.inference_mode():
            model(padded[:1], padded[1:], 0.5)
            t = time.perf_counter()
            for _ in range(2):
                model(padded[:1], padded[1:], 0.5)
            dt = (time.perf_counter() - t) / 2
        rows.append([version, f"{frame.shape[1]}x{frame.shape[0]}", "fp32 CPU", f"{1000 * dt:.0f}"])
    print(f"\nRIFE IFNet on the CPU (random weights, speed only; torch threads {torch.get_num_threads()})")
    print(table(["version", "size", "precision", "ms/frame"], rows))


def bench_cuts() -> None:
    from pipelines.interpolate import SceneCutDetector

    frames = load_clip("Megamind.avi", 0, 10_000)
    det = SceneCutDetector()
    scores = [det.score(frames[i], frames[i + 1]) for i in range(len(frames) - 1)]
    cuts = [i + 1 for i, s in enumerate(scores) if s > det.threshold]
    inside = sorted(s for s in scores if s <= det.threshold)
    print(f"\nScene cuts, Megamind.avi ({len(frames)} frames, threshold {det.threshold}): cut before frames "
          f"{cuts} (decoding order from 0; 1 = end of the black leader); scores at cuts "
          f"{[round(scores[c - 1], 1) for c in cuts]}; highest score inside a shot {inside[-1]:.1f}")


def bench_hd(frames: int = 8) -> None:
    from pipelines.denoise import TemporalDenoiser
    from pipelines.interpolate import FlowInterpolator

    clip = [cv2.resize(f, (1920, 1080), interpolation=cv2.INTER_LANCZOS4)
            for f in load_clip("Megamind.avi", 101, frames + 1)]
    rng = np.random.default_rng(11)
    noisy = [degrade(f, 15, 0, rng) for f in clip]
    t = time.perf_counter()
    TemporalDenoiser()(noisy)
    t_den = (time.perf_counter() - t) / len(noisy)
    flow = FlowInterpolator()
    flow.interpolate(clip[0], clip[1], [0.5])  # warm-up
    t = time.perf_counter()
    for a, b in zip(clip[:frames], clip[1:frames + 1], strict=True):
        flow.interpolate(a, b, [0.5])
    t_flow = (time.perf_counter() - t) / frames
    print(f"\n1080p (Megamind frames resized to 1920x1080): temporal denoise {t_den:.2f} s/frame over "
          f"{len(noisy)} frames (sigma 15); flow interpolation {t_flow:.2f} s per new frame over {frames} pairs")


def bench_files(tmp: Path) -> None:
    from core.media import probe, trim
    from pipelines.denoise import denoise_video
    from pipelines.interpolate import interpolate_video

    src = tmp / "mm.mp4"
    trim(DATA / "Megamind.avi", src, 100, 148)
    rows = []
    for fps in ("50", "60"):
        t = time.perf_counter()
        stats = interpolate_video(src, tmp / f"out{fps}.mp4", fps)
        dt = time.perf_counter() - t
        info = probe(tmp / f"out{fps}.mp4")
        audio = float(info.audio.duration) if info.audio and info.audio.duration else float("nan")
        rows.append([f"interpolate 23.976 -> {fps}", stats.src_frames, stats.out_frames, stats.cuts,
                     f"{stats.out_frames / dt:.1f} out fps", f"{audio:.3f} s / {stats.out_frames / int(fps):.3f} s"])
    t = time.perf_counter()
    d = denoise_video(src, tmp / "den.mp4")
    dt = time.perf_counter() - t
    rows.append(["denoise (temporal)", d["frames"], d["written"], d["cuts"], f"{d['written'] / dt:.1f} fps", ""])
    print("\nFiles end to end (Megamind 720x528, 48 frames with stereo AC-3 sound; decode + compute + x264 veryfast)")
    print(table(["job", "in frames", "out frames", "cuts", "speed", "audio / video duration"], rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks restore_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20, help="frames per clip for the denoise table")
    parser.add_argument("--quick", action="store_true", help="fewer frames (a smoke run, not for the record)")
    parser.add_argument("--only", choices=("hd",), default=None, help="run one part alone")
    args = parser.parse_args(argv)
    if not (DATA / "vtest.avi").exists() or not (DATA / "Megamind.avi").exists():
        raise SystemExit(f"the opencv-doc sample clips are not in {DATA} (apt-get install opencv-doc)")
    print(f"machine: {describe_machine()}")
    if args.only == "hd":
        bench_hd()
        return 0
    n = 10 if args.quick else args.frames
    clips = {"vtest": load_clip("vtest.avi", 0, n), "megamind": load_clip("Megamind.avi", 101, n)}
    bench_denoise(clips, args.quick)
    bench_deblock()
    interp_clips = {"vtest": load_clip("vtest.avi", 0, 41), "megamind": load_clip("Megamind.avi", 101, 41)}
    bench_interpolation(interp_clips, args.quick)
    bench_rife_speed(interp_clips["vtest"][0])
    bench_cuts()
    bench_hd(4 if args.quick else 8)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        bench_files(Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
