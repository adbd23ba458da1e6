"""Known defects put into real episodes, for the QC tests: each helper writes a new file, the source is kept."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np

from core.media import VideoWriter, concat, iter_frames, probe, read_audio, write_wav

FrameFn = Callable[[int, np.ndarray], np.ndarray]


def keep_metadata(path: Path) -> dict[str, str]:
    return {k: v for k, v in probe(path).metadata.items() if k.upper() == "AIGC" or k in {"comment", "title"}}


def with_audio(src: Path, dst: Path, fn: Callable[[np.ndarray, int], np.ndarray], *,
               metadata: dict[str, str] | None = None) -> Path:
    """``src`` with its sound changed by ``fn(samples, rate)``; the picture's packets are copied."""
    info = probe(src)
    rate = info.audio.sample_rate if info.audio else 48000
    samples = read_audio(src, rate=rate, channels=1)[:, 0]
    wav = dst.with_suffix(".defect.wav")
    write_wav(wav, fn(samples.copy(), rate), rate)
    concat([src], dst, audio_from=[wav], audio_rate=rate, metadata=keep_metadata(src) if metadata is None else metadata)
    wav.unlink()
    return dst


def with_frames(src: Path, dst: Path, fn: FrameFn, *, size: tuple[int, int] | None = None) -> Path:
    """``src`` re-encoded with each frame passed through ``fn(index, rgb)``; the sound and tags are kept."""
    info = probe(src)
    assert info.video is not None
    w, h = size or info.video.display_size
    rate = info.audio.sample_rate if info.audio else None
    audio = read_audio(src, rate=rate, channels=1) if rate else None
    with VideoWriter(dst, w, h, info.video.fps, crf=20, preset="veryfast", audio_rate=rate,
                     metadata=keep_metadata(src)) as writer:
        if audio is not None:
            writer.write_audio(audio)
        for frame in iter_frames(src):
            writer.write(np.ascontiguousarray(fn(frame.index, frame.image)))
    return dst


def black_segment(start: int, count: int) -> FrameFn:
    def fn(i: int, img: np.ndarray) -> np.ndarray:
        return np.zeros_like(img) if start <= i < start + count else img
    return fn


def frozen_segment(start: int, count: int) -> FrameFn:
    """Frames ``start .. start+count`` repeat the frame before ``start``."""
    held: dict[str, np.ndarray] = {}

    def fn(i: int, img: np.ndarray) -> np.ndarray:
        if i == start - 1:
            held["img"] = img.copy()
        if start <= i < start + count and "img" in held:
            return held["img"]
        return img
    return fn


def flicker_segment(start: int, count: int, delta: int = 40) -> FrameFn:
    """Every other frame of ``start .. start+count`` brighter by ``delta``."""
    def fn(i: int, img: np.ndarray) -> np.ndarray:
        if start <= i < start + count and (i - start) % 2 == 0:
            return np.clip(img.astype(np.int16) + delta, 0, 255).astype(np.uint8)
        return img
    return fn


def covered(rect: tuple[int, int, int, int], until: int) -> FrameFn:
    """A flat patch over ``rect`` for the first ``until`` frames (hides the visible mark)."""
    x0, y0, x1, y1 = rect

    def fn(i: int, img: np.ndarray) -> np.ndarray:
        if i < until:
            img = img.copy()
            img[y0:y1, x0:x1] = img[y1:y1 + 1, x0:x1].mean(axis=(0, 1)).astype(np.uint8)
        return img
    return fn


def text_at(text: str, xy: tuple[int, int], size: int) -> FrameFn:
    """Outlined white text (as subtitle burners draw it) at ``xy`` on every frame."""
    from PIL import Image, ImageDraw

    from pipelines.cards import _font

    font = _font(size)

    def fn(i: int, img: np.ndarray) -> np.ndarray:
        pic = Image.fromarray(img)
        ImageDraw.Draw(pic).text(xy, text, font=font, fill=(255, 255, 255), stroke_width=max(2, size // 12),
                                 stroke_fill=(0, 0, 0))
        return np.asarray(pic)
    return fn


def shifted_srt(src: Path, dst: Path, cue: int, seconds: float) -> Path:
    """The SRT with cue number ``cue`` (1-based) moved by ``seconds``."""
    from pipelines.subtitles import parse_srt

    def ts(t: float) -> str:
        ms = int(round(t * 1000))
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    from pipelines.qc.base import parse_srt_time

    blocks = []
    for n, (a, b, text) in enumerate(parse_srt(src.read_text(encoding="utf-8")), 1):
        sa, sb = parse_srt_time(a), parse_srt_time(b)
        if n == cue:
            sa, sb = sa + seconds, sb + seconds
        blocks.append(f"{n}\n{ts(sa)} --> {ts(sb)}\n{text}\n")
    dst.write_text("\n".join(blocks), encoding="utf-8")
    return dst


def picture_clip(path: Path, pictures: list[np.ndarray], seconds_each: float, *, size: tuple[int, int] = (360, 640),
                 fps: Fraction = Fraction(25), audio: np.ndarray | None = None, rate: int = 48000,
                 metadata: dict[str, str] | None = None) -> Path:
    """A vertical clip showing each picture (fitted to the frame) for ``seconds_each``, with ``audio``."""
    from pipelines.diffusion import fit_to_frame

    n_each = int(round(seconds_each * fps))
    with VideoWriter(path, size[0], size[1], fps, crf=18, preset="veryfast",
                     audio_rate=rate if audio is not None else None, metadata=metadata) as writer:
        if audio is not None:
            writer.write_audio(audio)
        for pic in pictures:
            frame, _ = fit_to_frame(pic, size, "crop")
            for _ in range(n_each):
                writer.write(np.ascontiguousarray(frame))
    return path
