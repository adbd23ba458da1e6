"""Evaluate an upscaler on an image folder the way SR papers do (Set5/Set14 tables).

HR image -> mod-crop to the scale -> MATLAB bicubic downscale (uint8) -> upscaler -> uint8 ->
Y-channel PSNR/SSIM with ``scale`` border pixels cropped. numpy + torch only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.sr_metrics import (
    SRScore,
    as_rgb,
    imresize,
    load_image,
    make_lr,
    modcrop,
    score_y,
    to_tensor,
    to_uint8,
)

IMAGE_SUFFIXES = (".png", ".bmp", ".jpg", ".jpeg", ".tif", ".tiff")

Upscaler = Callable[[np.ndarray], np.ndarray]  # uint8 LR (HxW or HxWx3) -> uint8 SR


@dataclass(frozen=True, slots=True)
class ImageScore:
    name: str
    score: SRScore


@dataclass(frozen=True, slots=True)
class SetScore:
    name: str
    scale: int
    images: tuple[ImageScore, ...]

    @property
    def psnr_y(self) -> float:
        return float(np.mean([i.score.psnr_y for i in self.images]))

    @property
    def ssim_y(self) -> float:
        return float(np.mean([i.score.ssim_y for i in self.images]))


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"image folder {str(folder)!r} does not exist")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def bicubic_upscaler(scale: int) -> Upscaler:
    return lambda lr: imresize(lr, float(scale))


def model_upscaler(model: nn.Module, device: torch.device | str = "cpu",
                   dtype: torch.dtype = torch.float32) -> Upscaler:
    """Run ``model`` on a whole image (RGB in [0, 1]); gray inputs are repeated to RGB."""

    def run(lr: np.ndarray) -> np.ndarray:
        x = to_tensor(as_rgb(lr)).to(device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            y = model(x)
        return to_uint8(y)

    return run


def evaluate(upscale: Upscaler, paths: Iterable[Path], scale: int, name: str = "") -> SetScore:
    scores = []
    for path in paths:
        hr = modcrop(load_image(path), scale)
        sr = upscale(make_lr(hr, scale))
        if sr.shape[:2] != hr.shape[:2]:
            raise ValueError(f"{path.name}: upscaled to {sr.shape[:2]}, expected {hr.shape[:2]}")
        scores.append(ImageScore(path.stem, score_y(sr, hr, scale)))
    return SetScore(name, scale, tuple(scores))


def format_score(s: SetScore) -> str:
    psnr = "inf" if math.isinf(s.psnr_y) else f"{s.psnr_y:.2f}"
    return f"{s.name} x{s.scale}: {psnr} dB / {s.ssim_y:.4f}"
