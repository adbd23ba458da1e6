"""Frame-accurate editing: trim and concat, copying video packets where the cut allows it."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError, MediaError, UnsupportedMediaError
from core.files import part_path, storage_error, sweep_parts
from core.media.decode import iter_audio, iter_frames
from core.media.encode import (
    AUDIO_BITRATE,
    VideoWriter,
    _audio_frame,
    discard_output,
    even_size,
    samples_for_frames,
)
from core.media.probe import MediaInfo, VideoStreamInfo, _av, open_input, probe

log = logging.getLogger(__name__)


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
    tmp = part_path(dst)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        sweep_parts(dst)
        out = av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart+use_metadata_tags"})
    except OSError as e:
        raise storage_error(e, "write", dst) from e
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
        out.close()
        os.replace(tmp, dst)
    except OSError as e:
        discard_output(out, tmp)
        raise storage_error(e, "write", dst) from e
    except BaseException:
        discard_output(out, tmp)
        raise
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
