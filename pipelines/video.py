"""Streaming frame processing: decode thread -> compute -> encode thread, bounded queues.

``process_video`` keeps the sound (re-encoded to AAC, cut to the exact samples of the frames
written), the implicit AIGC label of the input, and memory flat whatever the length.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from core.aigc import AIGC_KEY
from core.errors import InputError
from core.media import Frame, VideoWriter, iter_audio, iter_frames, probe, samples_for_frames
from core.streams import Prefetch

log = logging.getLogger(__name__)

BatchFn = Callable[[list[np.ndarray]], list[np.ndarray]]
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class VideoJob:
    frames: int
    fps: Fraction
    size: tuple[int, int]
    audio: bool


class _EncoderThread:
    """Owns a VideoWriter on its own thread; frames and audio arrive through a bounded queue."""

    def __init__(self, writer: VideoWriter, maxsize: int = 8) -> None:
        self.writer = writer
        self.queue: queue.Queue[tuple[str, object] | None] = queue.Queue(maxsize=maxsize)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="encode", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                item = self.queue.get()
                if item is None:
                    return
                kind, payload = item
                # a picture comes alone, or as (picture, presentation time) for variable frame rates
                picture, time = payload if isinstance(payload, tuple) else (payload, None)
                if kind == "video":
                    self.writer.write(picture, time)  # type: ignore[arg-type]
                elif kind == "i420":
                    self.writer.write_yuv420(picture, time)  # type: ignore[arg-type]
                else:
                    self.writer.write_audio(payload)  # type: ignore[arg-type]
        except BaseException as e:  # noqa: BLE001 - re-raised on the caller's thread
            self.error = e
            while True:  # unblock the producer
                try:
                    if self.queue.get(timeout=0.1) is None:
                        return
                except queue.Empty:
                    return

    def put(self, kind: str, payload: object) -> None:
        if self.error is not None:
            raise self.error
        while True:
            try:
                self.queue.put((kind, payload), timeout=0.2)
                return
            except queue.Full:
                if self.error is not None:
                    raise self.error from None
                if not self.thread.is_alive():
                    raise RuntimeError("encoder thread stopped") from None

    def finish(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


class AudioFeeder:
    """Feeds the source's sound to an encoder just ahead of the pictures, so both stay in step
    and the muxer never buffers more than a batch of either."""

    def __init__(self, src: Path, rate: int | None, channels: int, encoder: _EncoderThread) -> None:
        self.rate = rate
        self.channels = channels
        self.encoder = encoder
        self.chunks = _audio_chunks(src, rate, channels) if rate else None
        self.pending = np.zeros((0, channels), np.float32)
        self.sent = 0

    def advance(self, frames: int, fps: Fraction) -> None:
        """Send the samples that cover the first ``frames`` output frames at ``fps``."""
        if self.rate:
            self.advance_to_sample(samples_for_frames(frames, fps, self.rate))

    def advance_to(self, seconds: Fraction) -> None:
        """Send the samples up to ``seconds`` of output (variable-frame-rate video)."""
        if self.rate:
            self.advance_to_sample(int(seconds * self.rate))

    def advance_to_sample(self, want: int) -> None:
        if self.chunks is None or not self.rate:
            return
        while self.sent + len(self.pending) < want:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.pending = np.concatenate([self.pending, chunk])
        take = min(len(self.pending), want - self.sent)
        if take > 0:
            self.encoder.put("audio", self.pending[:take])
            self.pending = self.pending[take:]
            self.sent += take


def _audio_chunks(path: Path, rate: int, channels: int) -> Iterator[np.ndarray]:
    try:
        yield from iter_audio(path, rate=rate, channels=channels)
    except Exception as e:  # noqa: BLE001 - a damaged audio track must not kill the picture
        log.warning("audio of %s could not be decoded (%s): the output's sound is padded with silence", path, e)


def process_video(
    src: str | Path,
    dst: str | Path,
    fn: BatchFn,
    *,
    out_size: tuple[int, int],
    batch: int = 1,
    crf: int = 18,
    preset: str = "veryfast",
    codec: str = "h264",
    metadata: Mapping[str, str] | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    decode_size: tuple[int, int] | None = None,
    prefetch: int = 8,
    output: str = "rgb",
    threads: int = 0,
) -> VideoJob:
    """Apply ``fn`` to batches of RGB frames of ``src`` and encode the results to ``dst``.

    ``output="i420"`` when ``fn`` returns BT.709 I420 planes (``H*3/2 x W``) it converted itself.
    Variable-frame-rate input keeps each frame's source timestamp (MP4, MOV and MKV store them).
    """
    if output not in {"rgb", "i420"}:
        raise InputError(f"output must be rgb or i420, got {output!r}")
    src = Path(src)
    info = probe(src)
    if info.video is None:
        raise InputError(f"{str(src)!r} has no video stream")
    v = info.video
    w, h = out_size
    meta = {k: val for k, val in info.metadata.items() if k.upper() == AIGC_KEY or k in {"title", "comment"}}
    meta.update(metadata or {})
    rate = info.audio.sample_rate if info.audio else None
    channels = min(2, info.audio.channels) if info.audio else 1
    vfr = v.variable_fps
    writer = VideoWriter(dst, w, h, v.fps, codec=codec, crf=crf, preset=preset, audio_rate=rate,
                         audio_channels=channels, metadata=meta, threads=threads,
                         time_base=v.time_base if vfr else None)
    want_shape = (h * 3 // 2, w) if output == "i420" else (h, w)
    encoder = _EncoderThread(writer)
    audio = AudioFeeder(src, rate, channels, encoder)
    done = 0
    total = v.frames
    decoder: Prefetch[Frame] = Prefetch(lambda: iter_frames(src, size=decode_size), maxsize=prefetch, name="decode")
    try:
        pending: list[np.ndarray] = []
        times: list[Fraction] = []

        def flush(images: list[np.ndarray], at: list[Fraction]) -> None:
            nonlocal done
            outputs = fn(images)
            if len(outputs) != len(images):
                raise RuntimeError(f"frame function returned {len(outputs)} frames for {len(images)}")
            for img, t in zip(outputs, at, strict=True):
                if img.shape[:2] != want_shape:
                    raise RuntimeError(f"frame function returned shape {img.shape}, expected {want_shape} ({output})")
                encoder.put("video" if output == "rgb" else "i420", (img, t if vfr else None))
            done += len(outputs)
            if vfr:
                audio.advance_to(at[-1] + 1 / v.fps)
            else:
                audio.advance(done, v.fps)
            if progress is not None:
                progress(done, total)

        for frame in decoder:
            if cancel is not None and cancel.is_set():
                raise KeyboardInterrupt
            pending.append(frame.image)
            times.append(frame.time)
            if len(pending) >= batch:
                flush(pending, times)
                pending, times = [], []
        if pending:
            flush(pending, times)
        encoder.finish()
        writer.close()  # pads or cuts the audio to the exact video length
    except BaseException:
        decoder.close()
        try:
            encoder.finish()
        except BaseException:  # noqa: BLE001 - the original error matters more
            pass
        writer.abort()
        raise
    return VideoJob(frames=done, fps=v.fps, size=(w, h), audio=rate is not None)
