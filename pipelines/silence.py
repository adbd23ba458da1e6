"""Silence and dead-air trimming from audio energy, with margins (like auto-editor's audio edit).

Per video frame we measure the loudness (RMS, dBFS) of the sound under it; frames above the
threshold are speech, short silences inside speech are kept (``min_silence``), and every kept
run is widened by ``margin`` so words are not clipped. The kept runs become a timeline of the
same file, rendered frame-accurately (stream copy where the cuts fall on keyframes).

Speech detection with a local Whisper model is used when one is configured
(``models.paths["whisper"]`` pointing at a faster-whisper/CTranslate2 folder and the package
installed); otherwise the energy detector runs and says so in the log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from core.errors import InputError, UnsupportedMediaError
from core.media import probe, read_audio, samples_for_frames
from core.timeline import Clip, MediaRef, Timeline, Track

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SilenceParams:
    threshold_db: float = -40.0  # frames quieter than this (RMS dBFS) are silent
    min_silence: float = 0.5  # seconds: shorter pauses are kept
    margin: float = 0.15  # seconds kept before and after each run of sound
    min_keep: float = 0.2  # seconds: shorter runs of sound (clicks) are dropped


@dataclass(slots=True)
class SilenceResult:
    path: Path
    frames_in: int
    frames_kept: int
    kept: list[tuple[int, int]]
    mode: str


def frame_loudness(samples: np.ndarray, rate: int, fps: Fraction, frames: int) -> np.ndarray:
    """RMS level in dBFS of the audio under each video frame (``-inf`` replaced by -120)."""
    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    out = np.full(frames, -120.0, np.float32)
    bounds = [samples_for_frames(f, fps, rate) for f in range(frames + 1)]
    for f in range(frames):
        seg = mono[bounds[f]:bounds[f + 1]]
        if len(seg):
            rms = float(np.sqrt(np.mean(seg.astype(np.float64) ** 2)))
            out[f] = 20 * np.log10(rms) if rms > 1e-6 else -120.0
    return out


def speech_runs(loud: np.ndarray, fps: Fraction, p: SilenceParams) -> list[tuple[int, int]]:
    """``[start, end)`` frame runs to keep."""
    n = len(loud)
    on = loud > p.threshold_db
    gap = int(round(p.min_silence * fps))
    margin = int(round(p.margin * fps))
    keep_min = max(1, int(round(p.min_keep * fps)))
    runs: list[list[int]] = []
    i = 0
    while i < n:
        if not on[i]:
            i += 1
            continue
        j = i
        while j < n and on[j]:
            j += 1
        if runs and i - runs[-1][1] < gap:
            runs[-1][1] = j  # a short pause: keep it
        else:
            runs.append([i, j])
        i = j
    runs = [r for r in runs if r[1] - r[0] >= keep_min]
    out: list[tuple[int, int]] = []
    for a, b in runs:
        a, b = max(0, a - margin), min(n, b + margin)
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def whisper_runs(path: Path, fps: Fraction, frames: int, model_dir: str) -> list[tuple[int, int]] | None:
    """Speech segments from a local faster-whisper model, or None when it is not available."""
    try:
        from faster_whisper import WhisperModel  # type: ignore[import-not-found]
    except ImportError:
        log.warning("a Whisper model is configured but faster-whisper is not installed: using audio energy")
        return None
    model = WhisperModel(model_dir, device="auto")
    segments, _ = model.transcribe(str(path), vad_filter=True)
    return [(max(0, int(s.start * fps)), min(frames, int(s.end * fps + 1))) for s in segments]


def silence_timeline(src: str | Path, p: SilenceParams | None = None, *, whisper_model: str = "") -> Timeline:
    """A timeline of ``src`` without its silences (video and audio cut alike)."""
    p = p or SilenceParams()
    src = Path(src)
    info = probe(src)
    if info.video is None:
        raise UnsupportedMediaError(f"{str(src)!r} has no video stream")
    if info.audio is None:
        raise InputError(f"{str(src)!r} has no audio track: there is no silence to find",
                         hint="silence trimming needs sound; use `reelforge cut detect` for shots")
    v = info.video
    runs = None
    if whisper_model:
        runs = whisper_runs(src, v.fps, v.frames, whisper_model)
    if runs is None:
        rate = 16000
        loud = frame_loudness(read_audio(src, rate=rate), rate, v.fps, v.frames)
        runs = speech_runs(loud, v.fps, p)
    if not runs:
        raise InputError(f"{str(src)!r} is silent everywhere at {p.threshold_db} dBFS",
                         hint="lower --threshold (e.g. -50)")
    w, h = v.display_size
    media = MediaRef(str(src), v.fps, v.frames, w, h, True, True)
    clips, t = [], 0
    for a, b in runs:
        clips.append(Clip(media, t, b - a, a))
        t += b - a
    return Timeline(src.stem, v.fps, w - w % 2, h - h % 2,
                    (Track("video", "V1", tuple(clips)), Track("audio", "A1", tuple(clips), role="dialogue")))


def cut_silence(src: str | Path, dst: str | Path, p: SilenceParams | None = None, *, label: bool = False,
                whisper_model: str = "") -> SilenceResult:
    """Cut the silences out of ``src`` into ``dst``. ``label`` burns the visible AI mark (for AI
    footage); the implicit AIGC tag is written either way when the source carries one."""
    from core.aigc import read_label
    from pipelines.render import render_timeline

    tl = silence_timeline(src, p, whisper_model=whisper_model)
    source_label = read_label(probe(src).metadata)
    res = render_timeline(tl, dst, label=label, aigc=source_label, aigc_tag=label or source_label is not None)
    kept = [(c.source_in, c.source_in + c.duration) for c in tl.tracks[0].clips]
    return SilenceResult(Path(dst), tl.tracks[0].clips[0].media.frames, res.frames, kept, res.mode)
