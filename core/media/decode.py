"""Streaming decode: frames as numpy arrays in presentation order, audio as float32 chunks.

A file whose index promises more frames than its data holds (a "faststart" MP4 cut short: the
index comes first and survives, the frames do not) decodes silently short. Every full decode
compares the frames it got with the container's count and warns (:func:`check_complete` does
the same up front, from the packets alone, without decoding); inside :func:`strict_media` the
shortfall is a :class:`CorruptMediaError` instead.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from core.errors import CorruptMediaError, InputError, UnsupportedMediaError
from core.media.probe import _av, open_input, probe

if TYPE_CHECKING:
    import av

log = logging.getLogger(__name__)

# Give up on a stream that yields no picture after this many packets: a damaged file must
# fail fast instead of spinning through gigabytes of garbage.
_MAX_BAD_PACKETS = 200

_STRICT: contextvars.ContextVar[bool] = contextvars.ContextVar("reelforge_strict_media", default=False)
# files already reported short inside a one_report_per_file() block (a set shared with the
# block's threads: Prefetch runs its producer in the caller's context)
_REPORTED: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar("reelforge_reported_media", default=None)
_REPORTED_LOCK = threading.Lock()


@contextmanager
def one_report_per_file() -> Iterator[None]:
    """Inside the block a short file is warned about once (an up-front check, then the decode)."""
    token = _REPORTED.set(set())
    try:
        yield
    finally:
        _REPORTED.reset(token)


@contextmanager
def strict_media(on: bool = True) -> Iterator[None]:
    """Inside the block, a file that decodes to fewer frames than its container lists is an error."""
    token = _STRICT.set(on)
    try:
        yield
    finally:
        _STRICT.reset(token)


def _short(listed: int, got: int) -> bool:
    # a complete file decodes every listed frame; edit lists may hide a couple at the start
    return listed > 0 and got < listed - max(2, listed // 100)


def _report_short(path: str | os.PathLike[str], listed: int, got: int, fps: Fraction | None, what: str) -> str:
    secs = f" ({float(Fraction(got) / fps):.2f} s of {float(Fraction(listed) / fps):.2f} s)" if fps else ""
    message = (f"{str(path)!r} is truncated or damaged: its container lists {listed} frames, "
               f"but only {got} {what}{secs}")
    if _STRICT.get():
        raise CorruptMediaError(message, hint="get the file again (a complete copy); without --strict the frames "
                                              "that decode are used and the rest is missing")
    reported = _REPORTED.get()
    first = True
    if reported is not None:
        key = os.path.abspath(path)
        with _REPORTED_LOCK:
            first = key not in reported
            reported.add(key)
    if first:
        log.warning("%s; what is made from it will be short", message)
    return message


def check_complete(path: str | os.PathLike[str]) -> str | None:
    """Before long work: None when every frame the container lists has its data, else the warning.

    Reads packets only (no decoding). Raises :class:`CorruptMediaError` inside :func:`strict_media`.
    """
    av = _av()
    info = probe(path)
    if info.video is None:
        return None
    with open_input(path) as c:
        stream = c.streams.video[0]
        listed = int(stream.frames or 0)
        if not listed:
            return None  # the container does not count its frames (MKV, AVI): nothing to compare
        got = 0
        try:
            for packet in c.demux(stream):
                if packet.size:
                    got += 1
        except av.error.FFmpegError:
            pass  # a damaged tail ends the count
    if not _short(listed, got):
        return None
    return _report_short(path, listed, got, info.video.fps, "have their data")


@dataclass(frozen=True, slots=True)
class Frame:
    index: int  # 0-based frame number in presentation order at the stream's nominal fps
    time: Fraction  # presentation time in seconds from the stream start
    image: np.ndarray  # H x W x C uint8 (rgb24 by default)


def _rotate(image: np.ndarray, rotation: int) -> np.ndarray:
    # rotation is counter-clockwise degrees (as ffprobe prints it); np.rot90 turns counter-clockwise
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(image, k=k)) if k else image


def iter_frames(
    path: str | os.PathLike[str],
    *,
    start: int = 0,
    end: int | None = None,
    pix_fmt: str = "rgb24",
    size: tuple[int, int] | None = None,
    autorotate: bool = True,
    threads: int = 0,
) -> Iterator[Frame]:
    """Yield frames ``start <= index < end`` as numpy arrays, decoding with FFmpeg threads.

    ``size`` (w, h) scales in FFmpeg's swscale (area filter for downscales) before conversion,
    which is much cheaper than scaling in numpy. ``index`` is derived from the presentation time
    at the nominal fps, so it stays right after a seek; for variable-fps input the frames are
    numbered in order.
    """
    info = probe(path)
    if info.video is None:
        raise UnsupportedMediaError(f"{str(path)!r} has no video stream")
    v = info.video
    if start < 0 or (end is not None and end < start):
        raise InputError(f"bad frame range [{start}, {end}) for {str(path)!r}")
    t0 = v.start_time
    seek = t0 + Fraction(start) / v.fps if start > 0 and not v.variable_fps else None
    counter = 0
    base: int | None = None
    for frame in decoded_frames(path, threads=threads, seek=seek, require_frames=start == 0):
        # The first frame after the (seek) start is a keyframe with a trustworthy time;
        # later frames are numbered in output order, because some containers (AVI with
        # packed B-frames) carry decode-order stamps that are not presentation times.
        if base is None:
            if frame.pts is None or v.variable_fps:
                base = 0
            else:
                base = int(round((Fraction(frame.pts) * v.time_base - t0) * v.fps))
        idx = base + counter
        if v.variable_fps and frame.pts is not None:
            rel = Fraction(frame.pts) * v.time_base - t0  # real time; the index just counts
        else:
            rel = Fraction(idx) / v.fps
        counter += 1
        if idx < start:
            continue
        if end is not None and idx >= end:
            return
        if size is not None:
            w, h = size
            if autorotate and v.rotation % 180 == 90:
                w, h = h, w
            frame = frame.reformat(width=w, height=h, format=pix_fmt, interpolation="AREA")
            image = frame.to_ndarray()
        else:
            image = frame.to_ndarray(format=pix_fmt)
        if autorotate and v.rotation:
            image = _rotate(image, v.rotation)
        yield Frame(index=idx, time=rel, image=image)


def decoded_frames(path: str | os.PathLike[str], *, threads: int = 0, seek: Fraction | None = None,
                   require_frames: bool = True) -> Iterator[av.VideoFrame]:
    """The decoder's own frames of the first video stream, in output order, FFmpeg-threaded.

    The one decode loop every reader shares: damaged packets are skipped, but a stream that
    yields no picture fails fast (:class:`CorruptMediaError`); ``seek`` (seconds) jumps to the
    keyframe at or before it; leaving early flushes the decoder before closing, because closing
    a frame-threaded decoder mid-stream can hang.
    """
    av = _av()
    container = open_input(path)
    stream = container.streams.video[0]
    finished = False
    try:
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        if seek is not None and stream.time_base is not None:
            container.seek(int(seek / Fraction(stream.time_base)), stream=stream, backward=True, any_frame=False)
        produced = 0
        bad_packets = 0
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError as e:
                bad_packets += 1
                if bad_packets > _MAX_BAD_PACKETS and produced == 0:
                    raise CorruptMediaError(f"{str(path)!r}: video data is damaged ({e})") from e
                continue
            for frame in frames:
                produced += 1
                yield frame
        finished = True
        if produced == 0 and require_frames:
            raise CorruptMediaError(f"{str(path)!r}: no decodable video frame (truncated or damaged)")
        listed = int(stream.frames or 0)
        if seek is None and _short(listed, produced):
            rate = stream.average_rate or stream.guessed_rate
            _report_short(path, listed, produced, Fraction(rate.numerator, rate.denominator) if rate else None,
                          "decode")
    finally:
        if not finished:
            try:
                for _ in stream.codec_context.decode(None):
                    pass
            except Exception:  # noqa: BLE001 - best effort; closing follows
                pass
        container.close()


def read_audio(path: str | os.PathLike[str], *, rate: int = 48000, channels: int = 1) -> np.ndarray:
    """Decode a whole (short) audio track to float32 ``(samples, channels)`` at ``rate``."""
    chunks = list(iter_audio(path, rate=rate, channels=channels))
    if not chunks:
        return np.zeros((0, channels), dtype=np.float32)
    return np.concatenate(chunks, axis=0)


def iter_audio(path: str | os.PathLike[str], *, rate: int = 48000, channels: int = 1) -> Iterator[np.ndarray]:
    """Yield float32 ``(n, channels)`` chunks of the first audio stream, resampled to ``rate``."""
    av = _av()
    layout = "mono" if channels == 1 else "stereo"
    with open_input(path) as container:
        if not container.streams.audio:
            raise UnsupportedMediaError(f"{str(path)!r} has no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout=layout, rate=rate)
        for packet in container.demux(stream):
            try:
                decoded = packet.decode()
            except av.error.InvalidDataError:
                continue
            for frame in decoded:
                for out in resampler.resample(frame):
                    yield out.to_ndarray().reshape(-1, channels)
        for out in resampler.resample(None):
            yield out.to_ndarray().reshape(-1, channels)


def resample_audio(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Resample mono float32 audio with FFmpeg's resampler (exact output length: floor(n * dst / src))."""
    data = np.asarray(samples, dtype=np.float32).reshape(-1)
    want = len(data) * dst_rate // src_rate
    if src_rate == dst_rate or not len(data):
        return data.copy()
    av = _av()
    resampler = av.AudioResampler(format="flt", layout="mono", rate=dst_rate)
    frame = av.AudioFrame.from_ndarray(data[None, :], format="flt", layout="mono")
    frame.sample_rate = src_rate
    frame.pts = 0
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    out += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    result = np.concatenate(out) if out else np.zeros(0, np.float32)
    if len(result) < want:
        result = np.concatenate([result, np.zeros(want - len(result), np.float32)])
    return result[:want]


def frames_to_timecode(frame: int, fps: Fraction) -> str:
    """``HH:MM:SS,mmm`` (SRT style) of the start of ``frame``; exact, rounded to the millisecond."""
    ms = int(round(Fraction(frame) / fps * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"
