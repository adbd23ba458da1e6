"""Helpers that make small, checkable clips for the media tests."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from core.media import VideoWriter

W, H = 128, 72


def index_frame(i: int, w: int = W, h: int = H) -> np.ndarray:
    """A frame whose frame number can be read back after lossy coding: 8 black/white bars = bits."""
    img = np.zeros((h, w, 3), np.uint8)
    bar = w // 8
    for bit in range(8):
        if (i >> bit) & 1:
            img[:, bit * bar:(bit + 1) * bar] = 255
    img[: h // 6, :] = (i * 37) % 256  # some motion so the encoder makes P/B frames
    return img


def read_index(img: np.ndarray) -> int:
    h, w = img.shape[:2]
    bar = w // 8
    value = 0
    for bit in range(8):
        if img[h // 2:, bit * bar + 2:(bit + 1) * bar - 2].mean() > 127:
            value |= 1 << bit
    return value


def tone(n: int, rate: int, start: int = 0, freq: float = 440.0) -> np.ndarray:
    t = (np.arange(n) + start) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def make_clip(path: Path, frames: int, fps: Fraction = Fraction(25), *, offset: int = 0, audio: bool = True,
              rate: int = 48000, gop: int | None = 12, metadata: dict[str, str] | None = None,
              keyframes: tuple[int, ...] = (), preset: str = "veryfast") -> Path:
    with VideoWriter(path, W, H, fps, crf=18, audio_rate=rate if audio else None, gop=gop,
                     metadata=metadata, keyframes=keyframes, preset=preset) as w:
        done = 0
        for i in range(frames):
            w.write(index_frame(offset + i))
            if audio:
                want = (i + 1) * rate * fps.denominator // fps.numerator
                w.write_audio(tone(want - done, rate, done))
                done = want
    return path
