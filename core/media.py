"""Media I/O on PyAV: probe, streaming decode, encode with muxed audio, frame-accurate trim/concat.

Time at this layer is integer frames and :class:`fractions.Fraction` seconds, never accumulated
floats. Video is processed as iterators with bounded look-ahead, so memory stays flat whatever
the length. Corrupt, truncated, empty or unsupported files raise :class:`CorruptMediaError` or
:class:`UnsupportedMediaError` naming the file, never hang.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import CorruptMediaError, InputError, MediaError, UnsupportedMediaError

if TYPE_CHECKING:
    import av

log = logging.getLogger(__name__)

VIDEO_CODECS = {"h264": "libx264", "h265": "libx265", "hevc": "libx265"}
# AAC bit rate for every sound track we write. FFmpeg's native AAC encoder overshoots the true peak
# of limited speech: on the sample episode mixed to a -2 dBTP ceiling, measured with FFmpeg's
# ebur128 meter, 128 kb/s mono delivered -0.9 dBTP (1.1 dB over the ceiling) and 192 kb/s -1.9
# dBTP; FFmpeg's default (~69 kb/s mono) added 2.4 dB. 192 kb/s keeps our episodes under -1 dBTP.
AUDIO_BITRATE = 192_000
# Give up on a stream that yields no picture after this many packets: a damaged file must
# fail fast instead of spinning through gigabytes of garbage.
_MAX_BAD_PACKETS = 200


def _av() -> Any:
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is a core dependency
        raise MediaError("PyAV is not installed", hint="pip install av") from e
    # PyAV's default log level (None) keeps FFmpeg's log callback out of Python: routing FFmpeg
    # logs through Python can deadlock with the decoder's own threads.
    return av


# --------------------------------------------------------------------------------------------
# probe
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class VideoStreamInfo:
    index: int
    codec: str
    width: int
    height: int
    fps: Fraction
    time_base: Fraction
    frames: int  # exact when the container says so, else duration * fps rounded
    duration: Fraction | None
    pix_fmt: str
    rotation: int  # degrees counter-clockwise to display upright (0, 90, 180, 270)
    has_b_frames: bool
    variable_fps: bool
    start_time: Fraction = Fraction(0)  # seconds: presentation time of the stream's first frame

    @property
    def display_size(self) -> tuple[int, int]:
        return (self.height, self.width) if self.rotation % 180 == 90 else (self.width, self.height)


@dataclass(frozen=True, slots=True)
class AudioStreamInfo:
    index: int
    codec: str
    sample_rate: int
    channels: int
    layout: str
    duration: Fraction | None


@dataclass(frozen=True, slots=True)
class MediaInfo:
    path: Path
    format: str
    size_bytes: int
    duration: Fraction | None
    video: VideoStreamInfo | None
    audio: AudioStreamInfo | None
    metadata: dict[str, str] = field(default_factory=dict)


def _check_file(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"media file {str(p)!r} does not exist")
    if p.is_dir():
        raise InputError(f"{str(p)!r} is a folder, not a media file")
    if p.stat().st_size == 0:
        raise CorruptMediaError(f"media file {str(p)!r} is empty (0 bytes)")
    return p


def open_input(path: str | os.PathLike[str]) -> av.container.InputContainer:
    """Open a media file for reading, mapping FFmpeg's errors to ours."""
    av = _av()
    p = _check_file(path)
    try:
        return av.open(str(p), mode="r", metadata_errors="replace")
    except av.error.InvalidDataError as e:
        raise CorruptMediaError(f"{str(p)!r} is not a readable media file or is damaged ({e})") from e
    except av.error.FFmpegError as e:
        raise MediaError(f"cannot open {str(p)!r}: {e}") from e


def _first_frame_rotation(container: Any, stream: Any) -> int:
    """Rotation comes from the display matrix, which PyAV exposes on decoded frames."""
    try:
        container.seek(0)
        for frame in container.decode(stream):
            rot = int(round(getattr(frame, "rotation", 0) or 0)) % 360
            return rot - rot % 90
    except Exception:  # noqa: BLE001 - a probe must not fail on rotation alone
        return 0
    finally:
        try:
            container.seek(0)
        except Exception:  # noqa: BLE001
            pass
    return 0


_PROBED: dict[tuple[str, int, int, int], MediaInfo] = {}
_PROBED_LOCK = threading.Lock()


def probe(path: str | os.PathLike[str]) -> MediaInfo:
    """Describe a media file: streams, fps as a Fraction, duration, rotation, metadata.

    Remembered per file version (path, size, modification time, inode): an edit probes each of
    its clips many times, and finding the rotation decodes a frame.
    """
    p = _check_file(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    with _PROBED_LOCK:
        hit = _PROBED.get(key)
    if hit is not None:
        return dataclasses.replace(hit, path=p, metadata=dict(hit.metadata))
    info = _probe(p)
    with _PROBED_LOCK:
        if len(_PROBED) >= 512:
            _PROBED.pop(next(iter(_PROBED)))
        _PROBED[key] = info
    return dataclasses.replace(info, metadata=dict(info.metadata))


def _probe(p: Path) -> MediaInfo:
    av = _av()
    with open_input(p) as container:
        video = audio = None
        vstreams = [s for s in container.streams.video]
        astreams = [s for s in container.streams.audio]
        if not vstreams and not astreams:
            raise UnsupportedMediaError(f"{str(p)!r} has no audio or video stream")
        if vstreams:
            vs = vstreams[0]
            cc = vs.codec_context
            if cc is None or not cc.name:
                raise UnsupportedMediaError(f"{str(p)!r}: video codec is not supported by this FFmpeg build")
            rate = vs.average_rate or vs.guessed_rate or vs.base_rate
            if not rate:
                raise UnsupportedMediaError(f"{str(p)!r}: video stream has no frame rate")
            fps = Fraction(rate.numerator, rate.denominator)
            base = vs.base_rate or rate
            tb = Fraction(vs.time_base.numerator, vs.time_base.denominator) if vs.time_base else Fraction(1, 1000)
            vdur = Fraction(vs.duration) * tb if vs.duration else None
            if vdur is None and container.duration:
                vdur = Fraction(container.duration, av.time_base)
            frames = int(vs.frames) if vs.frames else (int(round(vdur * fps)) if vdur else 0)
            video = VideoStreamInfo(
                index=vs.index, codec=cc.name, width=cc.width, height=cc.height, fps=fps, time_base=tb,
                frames=frames, duration=vdur, pix_fmt=cc.pix_fmt or "", rotation=_first_frame_rotation(container, vs),
                has_b_frames=bool(cc.has_b_frames), variable_fps=Fraction(base.numerator, base.denominator) != fps,
                start_time=Fraction(vs.start_time or 0) * tb,
            )
            if cc.width <= 0 or cc.height <= 0:
                raise CorruptMediaError(f"{str(p)!r}: video stream has no picture size (damaged header?)")
        if astreams:
            a = astreams[0]
            acc = a.codec_context
            atb = Fraction(a.time_base.numerator, a.time_base.denominator) if a.time_base else None
            adur = Fraction(a.duration) * atb if (a.duration and atb) else None
            audio = AudioStreamInfo(
                index=a.index, codec=acc.name if acc else "?", sample_rate=int(acc.sample_rate or 0) if acc else 0,
                channels=int(acc.channels or 0) if acc else 0,
                layout=acc.layout.name if acc and acc.layout else "", duration=adur,
            )
        duration = Fraction(container.duration, av.time_base) if container.duration else (video.duration if video else None)
        return MediaInfo(
            path=p, format=container.format.name, size_bytes=p.stat().st_size, duration=duration,
            video=video, audio=audio, metadata={str(k): str(v) for k, v in container.metadata.items()},
        )


# --------------------------------------------------------------------------------------------
# decode
# --------------------------------------------------------------------------------------------
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


def write_wav(path: str | os.PathLike[str], samples: np.ndarray, rate: int) -> Path:
    """Write float32 samples in [-1, 1] (``(n,)`` or ``(n, ch)``) as 16-bit PCM WAV."""
    import wave

    data = np.asarray(samples, dtype=np.float32)
    if data.ndim == 1:
        data = data[:, None]
    pcm = (np.clip(data, -1.0, 1.0) * 32767.0).round().astype("<i2")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(p), "wb") as w:
        w.setnchannels(data.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return p


# --------------------------------------------------------------------------------------------
# encode
# --------------------------------------------------------------------------------------------
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
        self.fps = Fraction(fps) if not isinstance(fps, Fraction) else fps
        self.width, self.height = width, height
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.stem}.part{self.path.suffix}")
        fmt = "mp4" if self.path.suffix.lower() in {".mp4", ".m4v", ".mov"} else None
        options = {"movflags": "+faststart+use_metadata_tags"} if fmt == "mp4" else {}
        self._container = av.open(str(self._tmp), mode="w", format=fmt, options=options)
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
        cc.time_base = Fraction(1) / self.fps
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
    def write(self, image: np.ndarray) -> None:
        self.write_frame(self.prepare(image))

    def prepare(self, image: np.ndarray) -> av.VideoFrame:
        """Convert an RGB image to an encoder-ready yuv420p frame once, to write it many times."""
        av = _av()
        if image.shape[0] != self.height or image.shape[1] != self.width:
            raise InputError(f"frame size {image.shape[1]}x{image.shape[0]} does not match the writer's "
                             f"{self.width}x{self.height}")
        from av.video.reformatter import ColorRange, Colorspace

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        return frame.reformat(format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG)

    def write_yuv420(self, planes: np.ndarray) -> None:
        """Write a frame already converted to BT.709 limited-range I420 (``H*3/2 x W`` uint8), e.g. on a GPU."""
        av = _av()
        if planes.shape != (self.height * 3 // 2, self.width):
            raise InputError(f"I420 frame of shape {planes.shape} does not match {self.width}x{self.height}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(planes), format="yuv420p")
        frame.colorspace, frame.color_range = 1, 1
        self.write_frame(frame)

    def write_frame(self, frame: av.VideoFrame) -> None:
        if self._keyframes:  # set or clear each time: callers write one prepared frame many times
            frame.pict_type = _av().video.frame.PictureType.I if self.frames_written in self._keyframes \
                else _av().video.frame.PictureType.NONE
        frame.pts = self.frames_written
        frame.time_base = Fraction(1) / self.fps
        for packet in self._video.encode(frame):
            self._container.mux(packet)
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
            for packet in self._audio.encode(frame):
                self._container.mux(packet)

    @property
    def duration(self) -> Fraction:
        return Fraction(self.frames_written) / self.fps

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
                want = samples_for_frames(self.frames_written, self.fps, self.audio_rate or 0)
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
        except BaseException:
            self._container.close()
            self._tmp.unlink(missing_ok=True)
            raise
        self._container.close()
        os.replace(self._tmp, self.path)  # never leave a half-written file under the real name
        return self.path

    def abort(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self._container.close()
            finally:
                self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _audio_frame(planar: np.ndarray, channels: int, rate: int) -> Any:
    av = _av()
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar.astype(np.float32)), format="fltp",
                                       layout="mono" if channels == 1 else "stereo")
    frame.sample_rate = rate
    return frame


# --------------------------------------------------------------------------------------------
# trim and concat
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EditResult:
    path: Path
    frames: int
    mode: str  # "copy" (video packets copied) or "encode"


def _keyframe_indices(path: Path, fps: Fraction, time_base: Fraction) -> tuple[list[int], int]:
    """Frame indices of keyframes (from packets, no decoding) and the packet count."""
    keys: list[int] = []
    count = 0
    with open_input(path) as c:
        s = c.streams.video[0]
        t0 = Fraction(s.start_time or 0) * time_base
        for packet in c.demux(s):
            if packet.size == 0 or packet.pts is None:
                continue
            count += 1
            if packet.is_keyframe:
                keys.append(int(round((Fraction(packet.pts) * time_base - t0) * fps)))
    return sorted(keys), count


def x264_options(path: str | os.PathLike[str]) -> dict[str, str]:
    """The settings x264 wrote into the first packet of ``path`` (``{"crf": "20.0", "bframes": "3", ...}``).

    Empty when the video was not made by x264. Used to re-encode a few frames of a clip so that
    they join its copied packets (same codec headers).
    """
    with open_input(Path(path)) as c:
        if not c.streams.video:
            return {}
        for packet in c.demux(c.streams.video[0]):
            if not packet.size:
                continue
            data = bytes(packet)
            at = data.find(b"x264 - core")
            if at < 0:
                return {}
            text = data[at:data.find(b"\x00", at) if b"\x00" in data[at:] else None].decode("ascii", "replace")
            opts = text.split("options: ", 1)[1] if "options: " in text else ""
            return dict(kv.split("=", 1) for kv in opts.split() if "=" in kv)
    return {}


def _mux_audio_segment(writer: VideoWriter, path: Path, start: Fraction, end: Fraction) -> None:
    """Push the audio of ``path`` between ``start`` and ``end`` seconds into ``writer`` (exact samples)."""
    rate = writer.audio_rate or 48000
    first = math.floor(start * rate)
    last = math.floor(end * rate)
    info = probe(path)
    if info.audio is None:
        writer.write_audio(np.zeros((last - first, writer.audio_channels), dtype=np.float32))
        return
    pos = 0
    written = 0
    for chunk in iter_audio(path, rate=rate, channels=writer.audio_channels):
        n = len(chunk)
        lo, hi = max(first, pos), min(last, pos + n)
        if hi > lo:
            writer.write_audio(chunk[lo - pos:hi - pos])
            written += hi - lo
        pos += n
        if pos >= last:
            break
    if written < last - first:
        writer.write_audio(np.zeros((last - first - written, writer.audio_channels), dtype=np.float32))


def trim(src: str | os.PathLike[str], dst: str | os.PathLike[str], start: int, end: int, *,
         copy: str = "auto", crf: int = 18, preset: str = "veryfast",
         metadata: Mapping[str, str] | None = None) -> EditResult:
    """Cut frames ``[start, end)`` of ``src`` into ``dst``, frame-accurately.

    ``copy="auto"`` copies the video packets when ``start`` is a keyframe and the cut cannot break
    a reference (no B-frames, or ``end`` on a keyframe or at the end); otherwise it re-encodes.
    Audio is always re-encoded to the exact sample range, so picture and sound stay in sync.
    """
    src_p = Path(src)
    info = probe(src_p)
    if info.video is None:
        raise UnsupportedMediaError(f"{str(src_p)!r} has no video stream")
    v = info.video
    total = v.frames
    if not 0 <= start < end or (total and end > total):
        raise InputError(f"cannot trim frames [{start}, {end}) of {str(src_p)!r}: it has {total} frames")
    if copy not in {"auto", "always", "never"}:
        raise InputError(f"copy must be auto, always or never, got {copy!r}")
    keys, _ = _keyframe_indices(src_p, v.fps, v.time_base)
    key_set = set(keys)
    can_copy = (
        start in key_set
        and not v.rotation
        and v.codec in {"h264", "hevc"}
        and (not v.has_b_frames or end in key_set or end == total)
    )
    if copy == "always" and not can_copy:
        raise MediaError(f"cannot stream-copy frames [{start}, {end}) of {str(src_p)!r}: "
                         f"frame {start} is not a keyframe or the cut would break B-frame references",
                         hint="use copy='auto' to re-encode when needed")
    meta = dict(info.metadata) | dict(metadata or {})
    meta = {k: v2 for k, v2 in meta.items() if k not in {"major_brand", "minor_version", "compatible_brands", "encoder"}}
    dst_p = Path(dst)
    rate = info.audio.sample_rate if info.audio else None
    channels = min(info.audio.channels, 2) if info.audio else 1
    if can_copy and copy != "never":
        frames = _copy_segments(dst_p, [(src_p, start, end, src_p)], v, rate, channels, meta)
        return EditResult(dst_p, frames, "copy")
    w, h = even_size(*v.display_size)
    with VideoWriter(dst_p, w, h, v.fps, crf=crf, preset=preset, audio_rate=rate,
                     audio_channels=channels, metadata=meta) as writer:
        for fr in iter_frames(src_p, start=start, end=end):
            img = fr.image if fr.image.shape[:2] == (h, w) else fr.image[:h, :w]
            writer.write(img)
        if rate:
            _mux_audio_segment(writer, src_p, Fraction(start) / v.fps, Fraction(writer.frames_written + start) / v.fps)
    if writer.frames_written != end - start:
        log.warning("trim of %s produced %d frames, expected %d", src_p, writer.frames_written, end - start)
    return EditResult(dst_p, writer.frames_written, "encode")


def _copy_segments(dst: Path, segments: Sequence[tuple[Path, int, int, Path]], v: VideoStreamInfo,
                   audio_rate: int | None, channels: int, metadata: Mapping[str, str],
                   mix: np.ndarray | None = None) -> int:
    """Copy the video packets of each ``(path, start, end, audio_path)`` segment back to back.

    Audio is rebuilt from ``audio_path`` (often the segment itself) cut to the exact samples of
    the segment's frames, and encoded once, so it stays in sync whatever the inputs' padding.
    With ``mix`` (float32 ``(samples, channels)`` at ``audio_rate``, covering the output from its
    first frame) the sound comes from there instead, e.g. a rendered timeline's mixed tracks.
    """
    av = _av()
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.part{dst.suffix}")
    out = av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart+use_metadata_tags"})
    try:
        for key, value in metadata.items():
            out.metadata[key] = value
        first_in = open_input(segments[0][0])
        try:
            ostream = out.add_stream_from_template(first_in.streams.video[0])
        finally:
            first_in.close()
        frame_tb = Fraction(1) / v.fps
        ostream.time_base = frame_tb
        astream = None
        fifo = None
        if audio_rate:
            astream = out.add_stream("aac", rate=audio_rate)
            astream.codec_context.layout = "mono" if channels == 1 else "stereo"
            astream.codec_context.sample_rate = audio_rate
            astream.codec_context.bit_rate = AUDIO_BITRATE  # see AUDIO_BITRATE: the codec's true-peak overshoot
            fifo = av.AudioFifo()
        offset = 0  # frames already written
        samples_done = 0
        audio_pts = 0
        rate = audio_rate or 48000
        for path, start, end, audio_path in segments:
            with open_input(path) as c:
                s = c.streams.video[0]
                tb = Fraction(s.time_base) if s.time_base is not None else v.time_base
                t0 = Fraction(s.start_time or 0) * tb
                for packet in c.demux(s):
                    if packet.size == 0 or packet.pts is None:
                        continue
                    idx = int(round((Fraction(packet.pts) * tb - t0) * v.fps))
                    if idx < start or idx >= end:
                        continue
                    dts_idx = idx if packet.dts is None else int(math.floor((Fraction(packet.dts) * tb - t0) * v.fps))
                    packet.stream = ostream
                    packet.time_base = frame_tb
                    packet.pts = offset + idx - start
                    packet.dts = offset + dts_idx - start
                    packet.duration = 1  # one frame, in the new frame time base
                    out.mux(packet)
            seg_frames = end - start
            if astream is not None and fifo is not None:
                seg_start = Fraction(start) / v.fps
                want_total = samples_for_frames(offset + seg_frames, v.fps, audio_rate or 0)
                need = want_total - samples_done
                got = 0
                if mix is not None:
                    take = mix[samples_done:samples_done + need]
                    if len(take):
                        fifo.write(_audio_frame(take.T, channels, audio_rate or 0))
                    got = len(take)
                info = probe(audio_path) if mix is None else None
                if info is not None and info.audio is not None:
                    first = math.floor(seg_start * rate)
                    last = first + need
                    pos = 0
                    for chunk in iter_audio(audio_path, rate=audio_rate or 48000, channels=channels):
                        n = len(chunk)
                        lo, hi = max(first, pos), min(last, pos + n)
                        if hi > lo:
                            fifo.write(_audio_frame(chunk[lo - pos:hi - pos].T, channels, audio_rate or 0))
                            got += hi - lo
                        pos += n
                        if pos >= last:
                            break
                if got < need:
                    fifo.write(_audio_frame(np.zeros((channels, need - got), np.float32), channels, audio_rate or 0))
                samples_done += need
                size = astream.codec_context.frame_size or 1024
                while fifo.samples >= size:
                    audio_pts = _encode_fifo(out, astream, fifo, size, audio_pts)
            offset += seg_frames
        if astream is not None and fifo is not None:
            size = astream.codec_context.frame_size or 1024
            while fifo.samples > 0:
                audio_pts = _encode_fifo(out, astream, fifo, min(size, fifo.samples), audio_pts)
            for packet in astream.encode():
                out.mux(packet)
    except BaseException:
        out.close()
        tmp.unlink(missing_ok=True)
        raise
    out.close()
    os.replace(tmp, dst)
    return offset


def _encode_fifo(out: Any, astream: Any, fifo: Any, size: int, pts: int) -> int:
    """Encode ``size`` samples from the fifo at sample position ``pts``; returns the next position."""
    frame = fifo.read(size)
    frame.pts = pts
    frame.time_base = Fraction(1, astream.codec_context.sample_rate)
    for packet in astream.encode(frame):
        out.mux(packet)
    return pts + frame.samples


def video_extradata(path: str | os.PathLike[str]) -> bytes:
    """The video stream's codec headers (H.264/H.265 parameter sets): equal headers, joinable packets."""
    with open_input(path) as c:
        return bytes(c.streams.video[0].codec_context.extradata or b"")


def _copy_compatible(infos: Sequence[MediaInfo]) -> str | None:
    """None when the inputs' video can be concatenated by packet copy, else the reason why not."""
    first = infos[0].video
    assert first is not None
    extradata = None
    for info in infos:
        v = info.video
        if v is None:
            return f"{info.path.name} has no video"
        if (v.codec, v.width, v.height, v.pix_fmt, v.fps, v.rotation) != (
                first.codec, first.width, first.height, first.pix_fmt, first.fps, first.rotation):
            return f"{info.path.name} differs in codec, size, pixel format, fps or rotation"
        if v.codec not in {"h264", "hevc"}:
            return f"codec {v.codec} is not copied"
        data = video_extradata(info.path)
        if extradata is None:
            extradata = data
        elif data != extradata:
            return f"{info.path.name} was encoded with other settings (codec headers differ)"
    return None


def concat(inputs: Sequence[str | os.PathLike[str]], dst: str | os.PathLike[str], *, copy: str = "auto",
           audio_rate: int | None = None, audio_channels: int = 1, crf: int = 20, preset: str = "veryfast",
           metadata: Mapping[str, str] | None = None, size: tuple[int, int] | None = None,
           audio_from: Sequence[str | os.PathLike[str]] | None = None) -> EditResult:
    """Join whole files back to back. Video packets are copied when every input was encoded
    alike (same codec headers); otherwise everything is re-encoded. Audio is rebuilt as one
    continuous track cut to each input's exact video length, so it never drifts; ``audio_from``
    names, per input, a file to take the sound from instead (e.g. the lossless WAV of a shot)."""
    if not inputs:
        raise InputError("concat needs at least one input")
    if copy not in {"auto", "always", "never"}:
        raise InputError(f"copy must be auto, always or never, got {copy!r}")
    paths = [Path(p) for p in inputs]
    audio_paths = [Path(p) for p in audio_from] if audio_from is not None else paths
    if len(audio_paths) != len(paths):
        raise InputError(f"audio_from has {len(audio_paths)} entries for {len(paths)} inputs")
    infos = [probe(p) for p in paths]
    for info in infos:
        if info.video is None:
            raise UnsupportedMediaError(f"{str(info.path)!r} has no video stream")
    audio_infos = [probe(p) for p in audio_paths] if audio_from is not None else infos
    rate = audio_rate or next((i.audio.sample_rate for i in audio_infos if i.audio), None)
    why_not = _copy_compatible(infos) if size is None else "a size was requested"
    if why_not is None and copy != "never":
        segments = [(i.path, 0, i.video.frames, a) for i, a in zip(infos, audio_paths, strict=True) if i.video]
        frames = _copy_segments(Path(dst), segments, infos[0].video, rate, audio_channels,  # type: ignore[arg-type]
                                dict(metadata or {}))
        return EditResult(Path(dst), frames, "copy")
    if copy == "always":
        raise MediaError(f"cannot concatenate by stream copy: {why_not}", hint="use copy='auto'")
    log.info("concat re-encodes: %s", why_not)
    v0 = infos[0].video
    assert v0 is not None
    w, h = size or even_size(*v0.display_size)
    with VideoWriter(dst, w, h, v0.fps, crf=crf, preset=preset, audio_rate=rate, audio_channels=audio_channels,
                     metadata=metadata) as writer:
        for info, ainfo in zip(infos, audio_infos, strict=True):
            for fr in iter_frames(info.path, size=(w, h)):
                writer.write(fr.image)
            if rate:
                want = samples_for_frames(writer.frames_written, v0.fps, rate) - (writer.samples_written + _fifo_len(writer))
                _push_audio_exact(writer, ainfo, want)
    return EditResult(Path(dst), writer.frames_written, "encode")


def _fifo_len(writer: VideoWriter) -> int:
    return writer._fifo.samples if writer._fifo is not None else 0  # noqa: SLF001


def _push_audio_exact(writer: VideoWriter, info: MediaInfo, want: int) -> None:
    rate = writer.audio_rate or 48000
    got = 0
    if info.audio is not None:
        for chunk in iter_audio(info.path, rate=rate, channels=writer.audio_channels):
            take = min(len(chunk), want - got)
            if take > 0:
                writer.write_audio(chunk[:take])
                got += take
            if got >= want:
                break
    if got < want:
        writer.write_audio(np.zeros((want - got, writer.audio_channels), np.float32))


def frames_to_timecode(frame: int, fps: Fraction) -> str:
    """``HH:MM:SS,mmm`` (SRT style) of the start of ``frame``; exact, rounded to the millisecond."""
    ms = int(round(Fraction(frame) / fps * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def frames_to_tensor(images: Sequence[np.ndarray], device: Any = "cpu", dtype: Any = None,
                     channels_last: bool = True) -> Any:
    """Stack RGB uint8 frames into an ``N x 3 x H x W`` float tensor in [0, 1] on ``device``.

    The uint8 copy goes to the device first (4x less traffic than float), then converts there.
    """
    import torch

    batch = torch.from_numpy(np.stack(images)).to(device, non_blocking=True)
    batch = batch.permute(0, 3, 1, 2).to(dtype or torch.float32).div_(255.0)
    return batch.contiguous(memory_format=torch.channels_last) if channels_last else batch.contiguous()


def tensor_to_frames(batch: Any) -> list[np.ndarray]:
    """``N x 3 x H x W`` float tensor in [0, 1] -> RGB uint8 frames on the host (rounded, clamped)."""
    out = batch.detach().clamp(0, 1).mul(255.0).round().to(dtype=__import__("torch").uint8)
    arr = out.permute(0, 2, 3, 1).contiguous().cpu().numpy()
    return [arr[i] for i in range(arr.shape[0])]


def iter_tensors(path: str | os.PathLike[str], batch: int = 4, *, device: Any = "cpu", dtype: Any = None,
                 size: tuple[int, int] | None = None, prefetch: int = 8) -> Iterator[tuple[list[int], Any]]:
    """Decode on a background thread and yield ``(frame indices, N x 3 x H x W tensor)`` batches."""
    from core.streams import Prefetch

    frames = Prefetch(lambda: iter_frames(path, size=size), maxsize=prefetch, name="decode")
    for group in iter_batches(frames, batch):
        yield [f.index for f in group], frames_to_tensor([f.image for f in group], device, dtype)


def iter_batches(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    for fr in frames:
        batch.append(fr)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
