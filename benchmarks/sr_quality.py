"""Quality of ReelForge's own SR models on Set5/Set14, next to bicubic and published figures.

    python -m benchmarks.sr_quality [--images ../shared/data/images] [--device cpu]

Protocol of the SR literature: HR mod-cropped to the scale, LR made with MATLAB-style
antialiased bicubic ``imresize`` (uint8), Y channel of BT.601 ``rgb2ycbcr``, ``scale`` border
pixels cropped, PSNR and SSIM (11x11 Gaussian, sigma 1.5) averaged over the images. Bicubic
is measured in the same run; the published rows are the figures the SR literature tabulates
(bicubic as in Kim et al., VDSR, CVPR 2016; FSRCNN as in Lai et al., LapSRN, CVPR 2017).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from benchmarks._machine import describe_machine
from models.registry import load_model
from models.sr_eval import bicubic_upscaler, evaluate, list_images, model_upscaler

# (set, scale) -> (PSNR, SSIM) as published
PUBLISHED_BICUBIC = {("Set5", 2): (33.66, 0.9299), ("Set14", 2): (30.24, 0.8688),
                     ("Set5", 4): (28.42, 0.8104), ("Set14", 4): (26.00, 0.7027)}
PUBLISHED_FSRCNN = {("Set5", 2): (37.05, 0.9560), ("Set14", 2): (32.66, 0.9090),
                    ("Set5", 4): (30.72, 0.8660), ("Set14", 4): (27.61, 0.7550)}
TARGET_PSNR = {("Set5", 2): 37.0, ("Set14", 2): 32.6, ("Set5", 4): 30.7, ("Set14", 4): 27.6}


def _default_images() -> Path:
    root = os.environ.get("REELFORGE_SHARED_DATA")
    base = Path(root) if root else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return base / "images"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sr_quality", description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=_default_images(), help="folder holding CSet5 and CSet14")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--scales", default="2,4")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    sets = [("Set5", args.images / "CSet5"), ("Set14", args.images / "CSet14")]
    missing = [str(p) for _, p in sets if not p.is_dir()]
    if missing:
        raise SystemExit(f"missing image folders: {', '.join(missing)} (use --images)")
    print(f"machine: {describe_machine()}")
    print("protocol: MATLAB-bicubic LR, Y (BT.601), border = scale; PSNR dB / SSIM")
    header = f"{'set':6} {'x':>2} | {'bicubic (here)':>16} | {'bicubic (paper)':>16} | {'FSRCNN (paper)':>16} | " \
             f"{'ReelForge rf':>16} | {'target':>6} | {'rf ms/img':>9}"
    print(header)
    print("-" * len(header))
    ok = True
    for scale in (int(s) for s in args.scales.split(",")):
        model = load_model(f"rf-x{scale}", device)
        for set_name, folder in sets:
            paths = list_images(folder)
            bic = evaluate(bicubic_upscaler(scale), paths, scale, set_name)
            run = model_upscaler(model, device)
            spent = [0.0]

            def timed(lr, run=run, spent=spent):  # noqa: ANN001, ANN202 - a local adaptor
                start = time.perf_counter()
                out = run(lr)
                spent[0] += time.perf_counter() - start
                return out

            ours = evaluate(timed, paths, scale, set_name)
            ms = spent[0] / len(paths) * 1000
            pb, pf, target = PUBLISHED_BICUBIC[set_name, scale], PUBLISHED_FSRCNN[set_name, scale], \
                TARGET_PSNR[set_name, scale]
            met = ours.psnr_y >= target
            ok &= met
            print(f"{set_name:6} {scale:>2} | {bic.psnr_y:7.2f} / {bic.ssim_y:.4f} | {pb[0]:7.2f} / {pb[1]:.4f} | "
                  f"{pf[0]:7.2f} / {pf[1]:.4f} | {ours.psnr_y:7.2f} / {ours.ssim_y:.4f} | {target:6.2f} | "
                  f"{ms:9.0f}{'' if met else '  (below target)'}")
    print("all targets met" if ok else "some targets are not met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
