"""Sound as delivered: integrated loudness, true peak, dropouts, in one streaming pass over the audio.

The meter is FFmpeg's ``ebur128`` filter (ITU-R BS.1770-4 / EBU R128, true peak by 4x
oversampling), run through PyAV on the decoded track, so the figures are the ones any FFmpeg
user can reproduce (``ffmpeg -i ep01.mp4 -af ebur128=peak=true -f null -``). It is a meter
independent of our mixer's own, which keeps the check honest. Where the true peak goes over
the limit is located with :func:`pipelines.audio.true_peak_blocks` (the same 4x oversampling the
mixer's limiter uses), per 100 ms.

A dropout is a hole in the sound: the level falls from speech or music to silence at once, stays
there for 40 ms to 2 s, and comes back at once. Measured per 1 ms: silent is a peak under -40
dBFS; "at once" is a peak above -14 dBFS within the 2 ms on *both* sides of the hole. Speech's own
pauses (between words, between lines) fade in or out: on our espeak episodes their edges reached
-19.8 dBFS at most, while holes cut into the same speech and put through AAC kept -6 and -10 dBFS
edges (measured). A hole shorter than 40 ms, or cut where the speech is quiet, goes unseen; the
episode's silent head and tail are not holes.

The audio is decoded once and never held whole: consumers (the speech checks) receive it as
16 kHz mono chunks, so memory stays flat whatever the episode's length.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.audio import true_peak_envelope
from pipelines.qc.base import CheckResult, Span, Status, graded, merge_spans, skipped
from pipelines.qc.platforms import Platform

log = logging.getLogger(__name__)

VAD_RATE = 16000
Consumer = Callable[[np.ndarray, float], None]  # (16 kHz mono float32 chunk, its start in seconds)

_WIN_S = 0.001  # dropout analysis window
_SILENT_DB = -40.0  # peak below this: inside a hole
_EDGE_DB = -14.0  # peak above this within _EDGE_WINDOWS on both sides: the hole has hard edges
_EDGE_WINDOWS = 2
_MIN_DROP_S, _MAX_DROP_S = 0.040, 2.0


@dataclass(slots=True)
class AudioMeasure:
    present: bool
    rate: int = 0
    channels: int = 0
    seconds: float = 0.0
    integrated_lufs: float = -70.0
    true_peak_db: float = -math.inf
    lra: float = 0.0
    curve: list[tuple[float, float, float]] = field(default_factory=list)  # (t, momentary, short-term)
    peak_blocks: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # per 100 ms, linear
    dropouts: list[Span] = field(default_factory=list)


class _Meter:
    """FFmpeg's ebur128 filter fed with float frames; keeps the running figures it reports."""

    def __init__(self, rate: int, layout: str) -> None:
        import av

        self.graph = av.filter.Graph()
        src = self.graph.add_abuffer(format="flt", sample_rate=rate, layout=layout, time_base=Fraction(1, rate))
        meter = self.graph.add("ebur128", "peak=true:metadata=1")
        sink = self.graph.add("abuffersink")
        src.link_to(meter)
        meter.link_to(sink)
        self.graph.configure()
        self.rate = rate
        self.last: dict[str, str] = {}
        self.curve: list[tuple[float, float, float]] = []

    def push(self, frame: Any) -> None:
        self.graph.push(frame)
        self._drain()

    def close(self) -> None:
        self.graph.push(None)
        self._drain()

    def _drain(self) -> None:
        import av

        while True:
            try:
                out = self.graph.pull()
            except (av.BlockingIOError, av.EOFError):
                return
            meta = dict(out.metadata)
            if not meta:
                continue
            self.last = meta
            t = float(out.pts or 0) / self.rate
            if not self.curve or t - self.curve[-1][0] >= 0.5:  # a point every half second is plenty to draw
                self.curve.append((round(t, 2), _num(meta.get("lavfi.r128.M")), _num(meta.get("lavfi.r128.S"))))


def _num(text: str | None) -> float:
    try:
        v = float(text) if text is not None else -math.inf
    except ValueError:
        return -math.inf
    return v if math.isfinite(v) else -120.0


class _Dropouts:
    """Per 1 ms window: the peak (dB, loudest channel); the holes are found at the end."""

    def __init__(self, rate: int) -> None:
        self.win = max(1, int(rate * _WIN_S))
        self.carry = np.zeros(0, np.float32)
        self.peak: list[np.ndarray] = []

    def feed(self, mono_max: np.ndarray) -> None:
        data = np.concatenate([self.carry, mono_max])
        n = len(data) // self.win * self.win
        self.carry = data[n:]
        if n:
            self.peak.append(data[:n].reshape(-1, self.win).max(axis=1))

    def spans(self) -> list[Span]:
        if not self.peak:
            return []
        peak_db = 20 * np.log10(np.maximum(np.concatenate(self.peak), 1e-9))
        silent = peak_db < _SILENT_DB
        # runs of silent windows: starts and ends from the edges of the boolean mask
        edges = np.diff(np.r_[0, silent.astype(np.int8), 0])
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        k, n = _EDGE_WINDOWS, len(silent)
        out: list[Span] = []
        for i, j in zip(starts.tolist(), ends.tolist(), strict=True):
            length = (j - i) * _WIN_S
            if i < k or j + k > n or not _MIN_DROP_S <= length <= _MAX_DROP_S:
                continue
            if peak_db[i - k:i].max() > _EDGE_DB and peak_db[j:j + k].max() > _EDGE_DB:
                out.append((round(i * _WIN_S, 3), round(j * _WIN_S, 3)))
        return out


class _PeakBlocks:
    """True peak per 100 ms block, computed as the audio streams past with filter context kept."""

    HALO = 32  # samples of context either side: more than the interpolator's reach

    def __init__(self, rate: int, channels: int) -> None:
        self.hop = max(1, rate // 10)
        self.buf = np.zeros((channels, 0), np.float32)
        self.ctx = 0  # leading samples of buf that are context only
        self.blocks: list[np.ndarray] = []

    def feed(self, arr: np.ndarray) -> None:
        self.buf = np.concatenate([self.buf, arr], axis=1)
        if self.buf.shape[1] - self.ctx >= 50 * self.hop:
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        avail = self.buf.shape[1] - self.ctx - (0 if final else self.HALO)
        n = avail if final else avail // self.hop * self.hop
        if n <= 0:
            return
        seg = self.buf[:, : self.ctx + n + (0 if final else self.HALO)]
        env = np.max(np.stack([true_peak_envelope(ch)[self.ctx:self.ctx + n] for ch in seg]), axis=0)
        padded = np.zeros(-(-n // self.hop) * self.hop, np.float32)
        padded[:n] = env
        self.blocks.append(padded.reshape(-1, self.hop).max(axis=1))
        keep = self.ctx + n - self.HALO
        self.buf = self.buf[:, keep:]
        self.ctx = self.HALO

    def finish(self) -> np.ndarray:
        self._flush(final=True)
        return np.concatenate(self.blocks) if self.blocks else np.zeros(0, np.float32)


def measure_audio(path: Path, consumers: list[Consumer] | None = None) -> AudioMeasure:
    """Decode the first audio stream once: meter it, find over-peaks and holes, feed the consumers."""
    import av

    from core.media import open_input

    consumers = consumers or []
    with open_input(path) as container:
        if not container.streams.audio:
            return AudioMeasure(present=False)
        stream = container.streams.audio[0]
        rate = int(stream.codec_context.sample_rate or 48000)
        channels = 1 if int(stream.codec_context.channels or 1) == 1 else 2
        layout = "mono" if channels == 1 else "stereo"
        to_flt = av.AudioResampler(format="flt", layout=layout, rate=rate)
        to_vad = av.AudioResampler(format="flt", layout="mono", rate=VAD_RATE)
        meter = _Meter(rate, layout)
        holes = _Dropouts(rate)
        peaks = _PeakBlocks(rate, channels)
        samples = 0
        vad_pos = 0

        def take(frame: Any) -> None:
            nonlocal samples, vad_pos
            for out in to_flt.resample(frame):
                arr = out.to_ndarray().reshape(-1, channels).T.astype(np.float32)
                meter.push(_float_frame(arr, layout, rate, samples))
                samples += arr.shape[1]
                holes.feed(np.abs(arr).max(axis=0))
                peaks.feed(arr)
            for out in to_vad.resample(frame):
                chunk = out.to_ndarray().reshape(-1).astype(np.float32)
                for fn in consumers:
                    fn(chunk, vad_pos / VAD_RATE)
                vad_pos += len(chunk)

        for packet in container.demux(stream):
            try:
                decoded = packet.decode()
            except av.error.InvalidDataError:
                continue
            for frame in decoded:
                frame.pts = None  # the resamplers count samples themselves
                take(frame)
        take(None)
        meter.close()
    last = meter.last
    tp = _num(last.get("lavfi.r128.true_peak"))
    return AudioMeasure(present=True, rate=rate, channels=channels, seconds=samples / rate,
                        integrated_lufs=_num(last.get("lavfi.r128.I")),
                        true_peak_db=20 * math.log10(tp) if tp > 0 else -math.inf,
                        lra=_num(last.get("lavfi.r128.LRA")), curve=meter.curve,
                        peak_blocks=peaks.finish(), dropouts=holes.spans())


def _float_frame(arr: np.ndarray, layout: str, rate: int, pts: int) -> Any:
    import av

    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(arr.T.reshape(1, -1)), format="flt", layout=layout)
    frame.sample_rate = rate
    frame.pts = pts
    return frame


# ------------------------------------------------------------------------------------------
# the checks
# ------------------------------------------------------------------------------------------
def loudness_check(m: AudioMeasure, platform: Platform) -> CheckResult:
    if not m.present:
        return CheckResult("loudness", Status.FAIL, detail="the file has no audio stream")
    lo, hi = platform.loudness_lufs - platform.loudness_tolerance, platform.loudness_lufs + platform.loudness_tolerance
    value = round(m.integrated_lufs, 1)
    if value <= -70:
        return CheckResult("loudness", Status.FAIL, value, [lo, hi], detail="the sound is silent (below the -70 LUFS gate)")
    status = max(graded(value, hi, warn_margin=0.2), graded(value, lo, warn_margin=0.2, higher_is_worse=False),
                 key=_severity)
    detail = (f"integrated {value} LUFS against {platform.title}'s {platform.loudness_lufs:g} LUFS "
              f"(±{platform.loudness_tolerance:g} LU); loudness range {m.lra:.1f} LU")
    return CheckResult("loudness", status, value, [lo, hi], detail=detail,
                       data={"curve": m.curve, "target": platform.loudness_lufs})


def true_peak_check(m: AudioMeasure, platform: Platform) -> CheckResult:
    if not m.present:
        return skipped("true_peak", "no audio stream")
    limit = platform.true_peak_dbtp
    value = round(m.true_peak_db, 2) if math.isfinite(m.true_peak_db) else -120.0
    status = graded(value, limit, warn_margin=0.2)
    where: list[Span] = []
    if len(m.peak_blocks):
        lin = 10 ** (min(limit, value - 0.2) / 20) if status == Status.FAIL else 10 ** (limit / 20)
        idx = np.flatnonzero(m.peak_blocks > lin)
        where = merge_spans(((i / 10, (i + 1) / 10) for i in idx.tolist()), gap=0.3)
    over = f"; {len(where)} place(s) over the limit" if where else ""
    return CheckResult("true_peak", status, value, limit, where[:50],
                       detail=f"true peak {value} dBTP (4x oversampled), limit {limit:g} dBTP{over}")


def dropout_check(m: AudioMeasure) -> CheckResult:
    if not m.present:
        return skipped("audio_dropout", "no audio stream")
    n = len(m.dropouts)
    detail = ("no hole in the sound" if not n else
              f"{n} hole(s) where the sound cuts to silence and back at once "
              f"(longest {max(b - a for a, b in m.dropouts):.2f} s)")
    return CheckResult("audio_dropout", Status.FAIL if n else Status.PASS, n, 0, m.dropouts[:50], detail=detail)


_ORDER = {Status.PASS: 0, Status.SKIP: 0, Status.WARN: 1, Status.FAIL: 2}


def _severity(status: str) -> int:
    return _ORDER.get(Status(status), 0)
