"""Encoding: the :class:`VideoWriter` (H.264/H.265 + AAC in sync), WAV files, sizes and sample counts."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Collection, Mapping
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import InputError, MediaError
from core.files import atomic_path, part_path, storage_error, sweep_parts
from core.media.probe import _av

if TYPE_CHECKING:
    import av

log = logging.getLogger(__name__)

VIDEO_CODECS = {"h264": "libx264", "h265": "libx265", "hevc": "libx265"}
# AAC bit rate for every sound track we write. FFmpeg's native AAC encoder overshoots the true peak
# of limited speech: on the sample episode mixed to a -2 dBTP ceiling, measured with FFmpeg's
# ebur128 meter, 128 kb/s mono delivered -0.9 dBTP (1.1 dB over the ceiling) and 192 kb/s -1.9
# dBTP; FFmpeg's default (~69 kb/s mono) added 2.4 dB. 192 kb/s keeps our episodes under -1 dBTP.
AUDIO_BITRATE = 192_000
# containers that hold H.264/H.265 video and AAC sound; the muxer's name by suffix
VIDEO_CONTAINERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


def check_video_output(path: str | os.PathLike[str]) -> Path:
    """``path`` if we can write a video there (a known suffix, not a folder), else an InputError saying why.

    Run before long work, so a bad output name fails first, not after all the frames.
    """
    p = Path(path)
    if p.is_dir() or str(path).endswith(("/", os.sep)):
        raise InputError(f"output {str(p)!r} is a folder", hint=f"give a file name, e.g. {p / 'out.mp4'}")
    suffix = p.suffix.lower()
    if suffix in VIDEO_CONTAINERS:
        return p
    if not suffix:
        raise InputError(f"output {str(p)!r} has no suffix, so its format is unknown",
                         hint=f"add one: {p.name}.mp4 (or .mov, .mkv)")
    why = {".webm": "WebM holds VP8/VP9/AV1 video, and ReelForge writes H.264/H.265",
           ".avi": "AVI cannot hold this H.264 + AAC video properly",
           ".gif": "a GIF is not a video container"}.get(suffix, "it is not a video container ReelForge writes")
    raise InputError(f"cannot write video to {str(p)!r}: {why}",
                     hint=f"use {p.with_suffix('.mp4').name} (or .mov, .mkv)")


def even_size(width: int, height: int) -> tuple[int, int]:
    """The nearest even size not larger than (width, height): yuv420p needs even sides."""
    return max(2, width - width % 2), max(2, height - height % 2)


def samples_for_frames(frames: int, fps: Fraction, rate: int) -> int:
    """Exact number of audio samples covering ``frames`` video frames (floor, no drift)."""
    return math.floor(Fraction(frames) / fps * rate)


class VideoWriter:
    """Encode RGB frames (H.264/H.265, CRF, yuv420p) with an optional AAC track, in sync.

    Video frame ``i`` is shown at ``i / fps``; audio sample ``j`` plays at ``j / audio_rate``.
    Push audio with :meth:`write_audio` as you go (memory stays flat); on :meth:`close` the audio
    is padded with silence or cut to the exact video duration so the two end together.

    With ``time_base`` (e.g. the source stream's) frames may carry their own presentation time
    (``write(image, time=...)``): variable-frame-rate input keeps its timestamps instead of being
    moved onto the ``1/fps`` grid (a shift of up to a frame, 40 ms at 25 fps).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        width: int,
        height: int,
        fps: Fraction | int | str,
        *,
        codec: str = "h264",
        crf: int = 20,
        preset: str = "veryfast",
        audio_rate: int | None = None,
        audio_channels: int = 1,
        audio_bitrate: int = AUDIO_BITRATE,
        metadata: Mapping[str, str] | None = None,
        threads: int = 0,
        gop: int | None = None,
        extra_options: Mapping[str, str] | None = None,
        keyframes: Collection[int] = (),
        time_base: Fraction | None = None,
    ) -> None:
        av = _av()
        self.path = Path(path)
        if width % 2 or height % 2 or width <= 0 or height <= 0:
            raise InputError(f"video size {width}x{height} must be positive and even for yuv420p",
                             hint=f"use {even_size(width, height)[0]}x{even_size(width, height)[1]}")
        if codec not in VIDEO_CODECS:
            raise InputError(f"video codec {codec!r} is not supported", hint=f"use one of {sorted(VIDEO_CODECS)}")
        if not 0 <= crf <= 51:
            raise InputError(f"crf must be between 0 and 51, got {crf}")
        fmt = VIDEO_CONTAINERS[check_video_output(self.path).suffix.lower()]
        self.fps = Fraction(fps) if not isinstance(fps, Fraction) else fps
        self.width, self.height = width, height
        # written under a hidden part name, renamed when complete; a killed run's part file is
        # removed by the next writer of the same output
        self._tmp = part_path(self.path)
        options = {"movflags": "+faststart+use_metadata_tags"} if fmt in ("mp4", "mov") else {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            sweep_parts(self.path)
            self._container = av.open(str(self._tmp), mode="w", format=fmt, options=options)
        except OSError as e:
            raise storage_error(e, "write", self.path) from e
        for key, value in (metadata or {}).items():
            self._container.metadata[key] = value
        vopts = {"crf": str(crf), "preset": preset}
        if codec in ("h265", "hevc"):
            vopts["x265-params"] = "log-level=error"
        if codec == "h264" and keyframes:
            vopts["forced-idr"] = "1"  # a forced keyframe is an IDR: nothing after it looks back
        vopts.update(extra_options or {})
        self._video = self._container.add_stream(VIDEO_CODECS[codec], rate=self.fps, options=vopts)
        self._video.width, self._video.height = width, height
        self._video.pix_fmt = "yuv420p"
        # BT.709, limited range, tagged in the stream so players and FFmpeg decode the same colours
        cc = self._video.codec_context
        cc.colorspace, cc.color_primaries, cc.color_trc, cc.color_range = 1, 1, 1, 1
        self.time_base = Fraction(time_base) if time_base else Fraction(1) / self.fps
        cc.time_base = self.time_base
        self._last_pts = -1
        self._end = Fraction(0)  # presentation end of the last frame written, in seconds
        self._video.codec_context.thread_count = threads
        if codec in ("h265", "hevc"):
            self._video.codec_context.codec_tag = "hvc1"  # plays in QuickTime/iOS
        if gop:
            self._video.codec_context.gop_size = gop
        # frames to start a new GOP (IDR) at, e.g. where an editor will cut: the renderer can copy
        # the packets from there on instead of re-encoding up to the next regular keyframe
        self._keyframes = frozenset(int(k) for k in keyframes if k > 0)
        self.audio_rate = audio_rate
        self.audio_channels = audio_channels
        self._audio = None
        self._fifo = None
        if audio_rate:
            self._audio = self._container.add_stream("aac", rate=audio_rate)
            self._audio.codec_context.layout = "mono" if audio_channels == 1 else "stereo"
            self._audio.codec_context.sample_rate = audio_rate
            self._audio.codec_context.bit_rate = audio_bitrate
            self._fifo = av.AudioFifo()
        self.frames_written = 0
        self.samples_written = 0
        self._closed = False

    # -- video --
    def write(self, image: np.ndarray, time: Fraction | None = None) -> None:
        self.write_frame(self.prepare(image), time)

    def prepare(self, image: np.ndarray) -> av.VideoFrame:
        """Convert an RGB image to an encoder-ready yuv420p frame once, to write it many times."""
        av = _av()
        if image.shape[0] != self.height or image.shape[1] != self.width:
            raise InputError(f"frame size {image.shape[1]}x{image.shape[0]} does not match the writer's "
                             f"{self.width}x{self.height}")
        from av.video.reformatter import ColorRange, Colorspace

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        return frame.reformat(format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG)

    def write_yuv420(self, planes: np.ndarray, time: Fraction | None = None) -> None:
        """Write a frame already converted to BT.709 limited-range I420 (``H*3/2 x W`` uint8), e.g. on a GPU."""
        av = _av()
        if planes.shape != (self.height * 3 // 2, self.width):
            raise InputError(f"I420 frame of shape {planes.shape} does not match {self.width}x{self.height}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(planes), format="yuv420p")
        frame.colorspace, frame.color_range = 1, 1
        self.write_frame(frame, time)

    def write_frame(self, frame: av.VideoFrame, time: Fraction | None = None) -> None:
        """Encode one frame, shown at ``time`` seconds (default: right after the previous frame)."""
        if self._keyframes:  # set or clear each time: callers write one prepared frame many times
            frame.pict_type = _av().video.frame.PictureType.I if self.frames_written in self._keyframes \
                else _av().video.frame.PictureType.NONE
        start = self._end if time is None else Fraction(time)
        pts = max(self._last_pts + 1, round(start / self.time_base))  # never backwards
        frame.pts = pts
        frame.time_base = self.time_base
        try:
            for packet in self._video.encode(frame):
                self._container.mux(packet)
        except OSError as e:  # a full disk: name the output, not the hidden part file
            raise storage_error(e, "write", self.path) from e
        self._last_pts = pts
        self._end = pts * self.time_base + 1 / self.fps
        self.frames_written += 1

    # -- audio --
    def write_audio(self, samples: np.ndarray) -> None:
        if self._audio is None or self._fifo is None:
            raise MediaError("this writer was opened without an audio track (pass audio_rate=...)")
        av = _av()
        data = np.asarray(samples, dtype=np.float32)
        if data.ndim == 1:
            data = data[:, None]
        if data.shape[1] != self.audio_channels:
            if data.shape[1] == 1:
                data = np.repeat(data, self.audio_channels, axis=1)
            elif self.audio_channels == 1:
                data = data.mean(axis=1, keepdims=True)
            else:
                raise InputError(f"audio has {data.shape[1]} channels, writer expects {self.audio_channels}")
        if not len(data):
            return
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data.T), format="fltp",
                                           layout="mono" if self.audio_channels == 1 else "stereo")
        frame.sample_rate = self.audio_rate
        frame.pts = None
        self._fifo.write(frame)
        self._drain_audio(final=False)

    def _drain_audio(self, *, final: bool) -> None:
        assert self._audio is not None and self._fifo is not None
        size = self._audio.codec_context.frame_size or 1024
        while self._fifo.samples >= size or (final and self._fifo.samples > 0):
            frame = self._fifo.read(size if self._fifo.samples >= size else self._fifo.samples)
            frame.pts = self.samples_written
            frame.time_base = Fraction(1, self.audio_rate or 1)
            self.samples_written += frame.samples
            try:
                for packet in self._audio.encode(frame):
                    self._container.mux(packet)
            except OSError as e:
                raise storage_error(e, "write", self.path) from e

    @property
    def duration(self) -> Fraction:
        """Seconds of video written: ``frames / fps``, or up to the last timed frame's end."""
        return self._end if self.frames_written else Fraction(0)

    def close(self) -> Path:
        if self._closed:
            return self.path
        self._closed = True
        try:
            if self.frames_written == 0:
                raise MediaError(f"no frames were written to {str(self.path)!r}")
            for packet in self._video.encode():
                self._container.mux(packet)
            if self._audio is not None and self._fifo is not None:
                want = math.floor(self.duration * (self.audio_rate or 0))
                have = self.samples_written + self._fifo.samples
                if have < want:
                    self.write_audio(np.zeros((want - have, self.audio_channels), dtype=np.float32))
                elif have > want:
                    # trim the excess still in the fifo (only the unencoded tail can be cut)
                    keep = max(0, want - self.samples_written)
                    tail = self._fifo.read(self._fifo.samples)
                    if tail is not None and keep:
                        arr = tail.to_ndarray()[:, :keep]
                        self._fifo.write(_audio_frame(arr, self.audio_channels, self.audio_rate or 0))
                self._drain_audio(final=True)
                for packet in self._audio.encode():
                    self._container.mux(packet)
            self._container.close()  # writes the index (moov): a full disk can fail here too
            os.replace(self._tmp, self.path)  # never leave a half-written file under the real name
        except OSError as e:
            self._discard()
            raise storage_error(e, "write", self.path) from e
        except BaseException:
            self._discard()
            raise
        return self.path

    def abort(self) -> None:
        if not self._closed:
            self._closed = True
            self._discard()

    def _discard(self) -> None:
        discard_output(self._container, self._tmp)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def discard_output(container: Any, tmp: Path) -> None:
    """After a failed write: close ``container`` without letting its own error (a full disk again)
    hide the first one, then remove its part file ``tmp``."""
    try:
        container.close()
    except Exception as e:  # noqa: BLE001 - the error being raised matters more
        log.debug("closing %s after an error: %s", tmp, e)
    try:
        tmp.unlink(missing_ok=True)
    except OSError as e:
        log.warning("could not remove the part file %s: %s", tmp, e)


def _audio_frame(planar: np.ndarray, channels: int, rate: int) -> Any:
    av = _av()
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar.astype(np.float32)), format="fltp",
                                       layout="mono" if channels == 1 else "stereo")
    frame.sample_rate = rate
    return frame


def write_wav(path: str | os.PathLike[str], samples: np.ndarray, rate: int) -> Path:
    """Write float32 samples in [-1, 1] (``(n,)`` or ``(n, ch)``) as 16-bit PCM WAV."""
    import wave

    data = np.asarray(samples, dtype=np.float32)
    if data.ndim == 1:
        data = data[:, None]
    pcm = (np.clip(data, -1.0, 1.0) * 32767.0).round().astype("<i2")
    p = Path(path)
    with atomic_path(p) as tmp:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(data.shape[1])
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm.tobytes())
    return p
