"""Media I/O on PyAV: probe, streaming decode, encode with muxed audio, frame-accurate trim/concat.

Time at this layer is integer frames and :class:`fractions.Fraction` seconds, never accumulated
floats. Video is processed as iterators with bounded look-ahead, so memory stays flat whatever
the length. Corrupt, truncated, empty or unsupported files raise :class:`CorruptMediaError` or
:class:`UnsupportedMediaError` naming the file, never hang.

One module per concern, every public name importable from ``core.media``:

- :mod:`core.media.probe` — :func:`probe` (streams, fps as a Fraction, rotation), :func:`open_input`
- :mod:`core.media.decode` — :func:`iter_frames`, :func:`decoded_frames`, audio reading, timecodes
- :mod:`core.media.encode` — :class:`VideoWriter`, :func:`write_wav`, sizes and sample counts
- :mod:`core.media.edit` — :func:`trim`, :func:`concat` and the packet-copy machinery
- :mod:`core.media.tensors` — frames to and from torch tensors
"""

from __future__ import annotations

from core.media.decode import (
    Frame,
    check_complete,
    decoded_frames,
    frames_to_timecode,
    iter_audio,
    iter_frames,
    one_report_per_file,
    read_audio,
    resample_audio,
    strict_media,
)
from core.media.edit import (
    EditResult,
    _copy_compatible,
    _copy_segments,
    _keyframe_indices,
    concat,
    trim,
    video_extradata,
    x264_options,
)
from core.media.encode import (
    AUDIO_BITRATE,
    VIDEO_CODECS,
    VIDEO_CONTAINERS,
    VideoWriter,
    check_video_output,
    even_size,
    samples_for_frames,
    write_wav,
)
from core.media.probe import (
    AudioStreamInfo,
    MediaInfo,
    VideoStreamInfo,
    _av,
    open_input,
    probe,
)
from core.media.tensors import frames_to_tensor, iter_batches, iter_tensors, tensor_to_frames

__all__ = [
    "AUDIO_BITRATE", "VIDEO_CODECS", "VIDEO_CONTAINERS", "AudioStreamInfo", "check_complete", "check_video_output", "strict_media", "one_report_per_file", "EditResult", "Frame", "MediaInfo", "VideoStreamInfo", "VideoWriter",
    "_av", "_copy_compatible", "_copy_segments", "_keyframe_indices", "concat", "decoded_frames", "even_size",
    "frames_to_tensor", "frames_to_timecode", "iter_audio", "iter_batches", "iter_frames", "iter_tensors",
    "open_input", "probe", "read_audio", "resample_audio", "samples_for_frames", "tensor_to_frames", "trim",
    "video_extradata", "write_wav", "x264_options",
]
