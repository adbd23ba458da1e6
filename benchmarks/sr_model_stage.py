"""Super-resolution model stage alone: eager vs ``torch.compile``, input already on the device.

The loop behind the "Model stage only" table of benchmarks/RESULTS.md: a manifest model from
:data:`models.SR_MODELS` (verified weights; official ones converted on first use) in eval mode,
channels_last, fp16 on CUDA; a fixed batch of frames already on the device; each configuration
warmed up (compiles, cuDNN autotune), then ``--frames`` frames timed between two
``torch.cuda.synchronize()`` calls. Eager batch 1 is the baseline, measured in the same run. No host
transfer, no uint8 conversion: that is ``benchmarks.sr_throughput``.

The frames are a fixed-seed smooth random pattern: a convolutional network's cost does not depend
on the picture.

    python -m benchmarks sr_model_stage                          # CUDA: animevideov3-x4, 960x540
    python -m benchmarks sr_model_stage --device cpu --size 160x90 --frames 8 --modes eager  # smoke run
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from benchmarks.common import machine, table


def _input(torch: Any, batch: int, w: int, h: int, device: Any, dtype: Any) -> Any:
    g = torch.Generator().manual_seed(0)
    small = torch.rand(batch, 3, max(1, h // 8), max(1, w // 8), generator=g)
    x = torch.nn.functional.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return x.to(device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)


def _sync(torch: Any, device: Any) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_stage(torch: Any, fn: Any, x: Any, frames: int, device: Any, warmup: int) -> float:
    """Frames per second of ``fn`` over ``frames`` frames in batches of ``len(x)``, after warm-up."""
    batch = x.shape[0]
    steps = max(1, frames // batch)
    with torch.inference_mode():
        for _ in range(warmup):
            fn(x)
        _sync(torch, device)
        t = time.perf_counter()
        for _ in range(steps):
            fn(x)
        _sync(torch, device)
        seconds = time.perf_counter() - t
    return steps * batch / seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="animevideov3-x4")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precision", default="auto", help="auto: fp16 on CUDA, fp32 on the CPU")
    ap.add_argument("--size", default="960x540", help="input WxH")
    ap.add_argument("--frames", type=int, default=256)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--modes", default="eager,default,max-autotune-no-cudagraphs",
                    help="eager and/or torch.compile modes")
    ap.add_argument("--warmup", type=int, default=3)
    args = ap.parse_args(argv)

    import torch

    from core.device import dtype_from_name, resolve_device
    from models import SR_MODELS

    device = resolve_device(args.device)
    dtype = dtype_from_name(args.precision, device)
    w, h = (int(v) for v in args.size.lower().split("x"))
    batches = [int(b) for b in args.batches.split(",")]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model = SR_MODELS.create(args.model, device, dtype, channels_last=True)
    scale = int(round(float(getattr(model, "scale", 1))))
    digest = str(getattr(model, "weights_sha256", ""))
    print(f"machine: {machine()}")
    print(f"model: {args.model} (weights sha256 {digest[:12]}...), {w}x{h} -> {w * scale}x{h * scale}, "
          f"{str(dtype).replace('torch.', '')}, channels_last, {args.frames} frames per configuration after "
          f"{args.warmup} warm-up batches, input on {device}")
    rows = []
    baseline = None
    for mode in modes:
        fn = model if mode == "eager" else torch.compile(model, mode=mode, dynamic=False)
        for batch in batches if mode == "eager" else [b for b in batches if b > 1] or batches:
            x = _input(torch, batch, w, h, device, dtype)
            fps = time_stage(torch, fn, x, args.frames, device, args.warmup)
            if baseline is None:
                baseline = fps
            label = "eager" if mode == "eager" else f"torch.compile ({mode})"
            rows.append([f"{label}, batch {batch}", round(fps, 1), f"{fps / baseline:.2f}x"])
            print(f"  {rows[-1][0]}: {fps:.1f} frames/s", flush=True)
    print(table(["configuration", "frames/s", "vs first row"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
