"""Cheap small frames for detection, straight from the decoder's planes.

Colour conversion and scaling in swscale cost more than decoding at small sizes, so for planar
YUV we read the decoder's planes as numpy views and sample them on a grid (no copy of the full
frame, no conversion); other pixel formats go through one cached reformatter. Decoding uses
FFmpeg's threads; the per-frame Python work is a few strided numpy slices.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from core.errors import UnsupportedMediaError
from core.media import decoded_frames, probe

log = logging.getLogger(__name__)

_PLANAR: dict[str, int | tuple[int, int]] = {"yuv420p": 2, "yuvj420p": 2, "yuv422p": (2, 1), "yuvj422p": (2, 1), "yuv444p": 1, "yuvj444p": 1}


@dataclass(frozen=True, slots=True)
class SmallStream:
    fps: Fraction
    frames: int  # from the container (may be 0 or approximate)
    width: int
    height: int
    rotation: int


def small_yuv(path: str | os.PathLike[str], *, grid: tuple[int, int] = (36, 64),
              threads: int = 0) -> tuple[SmallStream, Iterator[np.ndarray]]:
    """``(info, frames)`` where each frame is a ``(gh, gw, 3)`` uint8 YUV sample of the picture.

    Frames come in presentation order, one per decoded picture (variable-rate input is simply
    numbered in order). The sampling grid is a strided view (``gh x gw`` points), so the cost per
    frame does not grow with the resolution.
    """
    info = probe(path)
    if info.video is None:
        raise UnsupportedMediaError(f"{str(path)!r} has no video stream")
    v = info.video
    meta = SmallStream(v.fps, v.frames, v.width, v.height, v.rotation)
    return meta, _iter(path, grid, threads, v.rotation)


def _iter(path: str | os.PathLike[str], grid: tuple[int, int], threads: int, rotation: int) -> Iterator[np.ndarray]:
    from av.video.reformatter import Interpolation, VideoReformatter

    gh, gw = grid
    reformatter = VideoReformatter()
    for frame in decoded_frames(path, threads=threads):
        fmt = frame.format.name
        h, w = frame.height, frame.width
        sy, sx = max(1, h // gh), max(1, w // gw)
        if fmt in _PLANAR and h >= gh and w >= gw:
            sub = _PLANAR[fmt]
            cy, cx = (sub, sub) if isinstance(sub, int) else (sub[1], sub[0])
            y = _plane(frame.planes[0], h, w)[sy // 2::sy, sx // 2::sx][:gh, :gw]
            u = _plane(frame.planes[1], -(-h // cy), -(-w // cx))
            vv = _plane(frame.planes[2], -(-h // cy), -(-w // cx))
            # chroma sampled at the same picture positions as luma
            ys = (np.arange(gh) * sy + sy // 2) // cy
            xs = (np.arange(gw) * sx + sx // 2) // cx
            img = np.empty((gh, gw, 3), np.uint8)
            img[..., 0] = y
            img[..., 1] = u[ys[:, None], xs[None, :]]
            img[..., 2] = vv[ys[:, None], xs[None, :]]
        else:
            out = reformatter.reformat(frame, width=gw, height=gh, format="yuv444p",
                                       interpolation=Interpolation.AREA)
            img = np.stack([_plane(out.planes[i], gh, gw) for i in range(3)], axis=-1)
        if rotation:
            img = np.ascontiguousarray(np.rot90(img, k=(rotation // 90) % 4))
        yield img


def _plane(plane: object, h: int, w: int) -> np.ndarray:
    line = plane.line_size  # type: ignore[attr-defined]
    return np.frombuffer(plane, np.uint8).reshape(-1, line)[:h, :w]  # type: ignore[call-overload]


def small_rgb(path: str | os.PathLike[str], size: tuple[int, int] = (48, 27), *,
              threads: int = 0) -> tuple[SmallStream, Iterator[np.ndarray]]:
    """``(info, frames)`` of ``(h, w, 3)`` RGB frames scaled by FFmpeg (bicubic, as the reference's ffmpeg -s), e.g. TransNetV2's 48x27."""
    info = probe(path)
    if info.video is None:
        raise UnsupportedMediaError(f"{str(path)!r} has no video stream")
    v = info.video
    meta = SmallStream(v.fps, v.frames, v.width, v.height, v.rotation)

    def gen() -> Iterator[np.ndarray]:
        from av.video.reformatter import Interpolation, VideoReformatter

        w, h = size
        if v.rotation % 180 == 90:
            w, h = h, w
        r = VideoReformatter()
        for frame in decoded_frames(path, threads=threads):
            img: np.ndarray = r.reformat(frame, width=w, height=h, format="rgb24",
                                         interpolation=Interpolation.BICUBIC).to_ndarray()
            if v.rotation:
                img = np.ascontiguousarray(np.rot90(img, k=(v.rotation // 90) % 4))
            yield img

    return meta, gen()
