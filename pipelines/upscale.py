"""Upscaling. The foundation ships the honest classic method; neural models plug in here.

``classic``: Lanczos-4 resampling followed by a mild unsharp mask. It invents no detail and
says so in every report; the neural super-resolution models replace it where installed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.errors import InputError
from core.media import even_size

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True, slots=True)
class ClassicUpscaler:
    """Lanczos + unsharp mask. ``amount`` 0 disables sharpening."""

    scale: float
    amount: float = 0.6
    sigma: float = 1.0
    name: str = "classic-lanczos"

    def __post_init__(self) -> None:
        if not 1 <= self.scale <= 8:
            raise InputError(f"scale must be between 1 and 8, got {self.scale}")

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        return int(round(width * self.scale)), int(round(height * self.scale))

    def upscale(self, image: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        h, w = image.shape[:2]
        tw, th = size or self.output_size(w, h)
        out = cv2.resize(image, (tw, th), interpolation=cv2.INTER_LANCZOS4)
        if self.amount > 0:
            blur = cv2.GaussianBlur(out, (0, 0), self.sigma * self.scale / 2)
            # int16 so the difference can go negative before clipping
            sharp = out.astype(np.int16) + (self.amount * (out.astype(np.int16) - blur.astype(np.int16))).astype(np.int16)
            out = np.clip(sharp, 0, 255).astype(np.uint8)
        return out

    def batch(self, images: list[np.ndarray], size: tuple[int, int]) -> list[np.ndarray]:
        return [self.upscale(img, size) for img in images]


def video_output_size(width: int, height: int, scale: float) -> tuple[int, int]:
    return even_size(int(round(width * scale)), int(round(height * scale)))


def is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES
