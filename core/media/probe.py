"""Probing media files: streams, exact frame rates and durations, rotation; the opener every reader uses."""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import CorruptMediaError, InputError, MediaError, UnsupportedMediaError

if TYPE_CHECKING:
    import av

log = logging.getLogger(__name__)

def _av() -> Any:
    try:
        import av
    except ImportError as e:  # pragma: no cover - av is a core dependency
        raise MediaError("PyAV is not installed", hint="pip install av") from e
    # PyAV's default log level (None) keeps FFmpeg's log callback out of Python: routing FFmpeg
    # logs through Python can deadlock with the decoder's own threads.
    return av



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
