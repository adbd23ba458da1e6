"""Speech against subtitles, and voices against each other, measured on the delivered sound.

Speech is found with Silero VAD (MIT; the model ships inside the ``silero-vad`` wheel, nothing is
downloaded), run on the 16 kHz mono stream the audio pass hands out, 512 samples (32 ms) at a
time, with the hysteresis of Silero's own ``get_speech_timestamps`` (speech above 0.5, silence
below 0.35, pauses under 100 ms bridged, bursts under 250 ms dropped, 30 ms of padding).

``speech_coverage``: a cue must have speech under at least a quarter of its time (a line whose
voice failed, or a cue with nothing said, fails), and no stretch of speech of half a second or
more may go without a cue. ``subtitle_timing``: speech segments are given to the cue they overlap
most (one overlapping no cue goes to the nearest cue within 2 s); a cue's start must be within 0.5 s of its speech's start, its end from 0.5 s before to 1 s
after the speech's end (a subtitle may linger, not leave early).

``voice_distinct``: a voice print per speaker from the same stream, over the voiced 10 ms frames
inside that speaker's cues: the median pitch (autocorrelation, 60-450 Hz) and the average
spectral shape (24 mel bands, level removed). Two speakers share a voice when their pitch is
within 1 semitone *and* their spectral shapes within 1.6 dB RMS. Measured on our espeak voices:
one voice reading different lines stayed within 0.41 semitone and 1.21 dB; distinct variants
differed by 1.9 dB or more at close pitch (the plain Mandarin voice against variant m6, 1.36 dB,
is the one close pair, so the cast does not use m6). A speaker with under half a second of voiced
speech is not compared (the check then warns).
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipelines.qc.base import CheckResult, CueFact, Span, Status, merge_spans, overlap, skipped

log = logging.getLogger(__name__)

RATE = 16000
_WINDOW = 512  # Silero's window at 16 kHz
_THRESHOLD, _NEG_THRESHOLD = 0.5, 0.35
_MIN_SPEECH_S, _MIN_SILENCE_S, _PAD_S = 0.25, 0.10, 0.03

COVERAGE_MIN = 0.25
UNCUED_SPEECH_S = 0.5
UNCUED_JOIN_S = 0.5  # pauses shorter than this inside unsubtitled speech belong to one utterance
START_LIMIT = 0.5
ASSIGN_REACH_S = 2.0
END_LIMITS = (-0.5, 1.0)
PITCH_SAME_ST, TIMBRE_SAME_DB = 1.0, 1.6
MIN_VOICED_FRAMES = 50  # half a second of voiced 10 ms frames

_FRAME, _HOP, _NFFT, _BANDS = 640, 160, 1024, 24


def _mel_bank() -> np.ndarray:
    freqs = np.fft.rfftfreq(_NFFT, 1 / RATE)

    def mel(f: np.ndarray | float) -> Any:
        return 2595 * np.log10(1 + np.asarray(f) / 700)

    edges = 700 * (10 ** (np.linspace(mel(100.0), mel(7000.0), _BANDS + 2) / 2595) - 1)
    bank = np.zeros((_BANDS, len(freqs)), np.float32)
    for k in range(_BANDS):
        a, c, b = edges[k], edges[k + 1], edges[k + 2]
        bank[k] = np.clip(np.minimum((freqs - a) / (c - a), (b - freqs) / (b - c)), 0, None)
    return bank


@dataclass(slots=True)
class SpeechAnalysis:
    segments: list[Span]
    probs: np.ndarray  # speech probability per 32 ms window
    frame_times: np.ndarray  # centre of each 10 ms feature frame (s)
    f0: np.ndarray  # Hz, NaN where unvoiced
    shape: np.ndarray  # (frames, 24) mel spectral shape in dB, level removed
    seconds: float = 0.0
    engine: str = "silero-vad"


class SpeechTrack:
    """Consumer of the audio pass: VAD probabilities and voice features, chunk by chunk."""

    def __init__(self) -> None:
        self._model: Any = None
        self._vad_buf = np.zeros(0, np.float32)
        self._probs: list[float] = []
        self._feat_buf = np.zeros(0, np.float32)
        self._feat_start = 0  # sample index of _feat_buf[0]
        self._times: list[np.ndarray] = []
        self._f0: list[np.ndarray] = []
        self._shape: list[np.ndarray] = []
        self._samples = 0
        self._bank = _mel_bank()
        self._window = np.hanning(_FRAME).astype(np.float32)
        # the window's own autocorrelation: dividing by it undoes the taper's decay with lag
        # (Boersma 1993, as in Praat), so a low voice's period still reads as strongly periodic
        w_ac = np.fft.irfft(np.abs(np.fft.rfft(self._window, _NFFT)) ** 2, _NFFT)[:_FRAME]
        self._window_ac = (w_ac / w_ac[0]).astype(np.float32)

    def _load(self) -> Any:
        if self._model is None:
            try:
                from silero_vad import load_silero_vad
            except ImportError as e:
                from core.errors import MissingDependencyError

                raise MissingDependencyError("silero-vad", "qc") from e
            import torch

            self._torch = torch
            self._model = load_silero_vad()
        return self._model

    def __call__(self, chunk: np.ndarray, start_s: float) -> None:
        model = self._load()
        torch = self._torch
        self._samples += len(chunk)
        self._vad_buf = np.concatenate([self._vad_buf, chunk])
        n = len(self._vad_buf) // _WINDOW
        if n:
            # one 32 ms window per call: thread start-up dwarfs the work (measured: 35 ms a call on
            # 2 busy threads, 0.7 ms on one), so the model runs single-threaded
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                with torch.no_grad():
                    for k in range(n):
                        window = torch.from_numpy(np.ascontiguousarray(self._vad_buf[k * _WINDOW:(k + 1) * _WINDOW]))
                        self._probs.append(float(model(window, RATE).item()))
            finally:
                torch.set_num_threads(threads)
            self._vad_buf = self._vad_buf[n * _WINDOW:]
        self._feat_buf = np.concatenate([self._feat_buf, chunk])
        if len(self._feat_buf) >= _FRAME + 50 * _HOP:
            self._features(final=False)

    def _features(self, *, final: bool) -> None:
        buf = self._feat_buf
        if len(buf) < _FRAME:
            return
        count = (len(buf) - _FRAME) // _HOP + 1
        idx = np.arange(count) * _HOP
        frames = np.lib.stride_tricks.sliding_window_view(buf, _FRAME)[::_HOP][:count] * self._window
        power = np.abs(np.fft.rfft(frames, _NFFT)) ** 2
        ac = np.fft.irfft(power, _NFFT)[:, :_FRAME]
        lo, hi = RATE // 450, RATE // 60
        norm = ac[:, lo:hi] / (ac[:, :1] + 1e-12) / self._window_ac[lo:hi]
        best = norm.max(axis=1)
        # the first strong lag (at 85 % of the best), climbed to its peak: no octave-down errors
        first = np.argmax(norm >= 0.85 * best[:, None], axis=1)
        rows = np.arange(len(norm))
        for _ in range(8):
            nxt = np.minimum(first + 1, norm.shape[1] - 1)
            first = np.where(norm[rows, nxt] > norm[rows, first], nxt, first)
        r = norm[rows, first]
        energy = 10 * np.log10(np.mean(frames * frames, axis=1) + 1e-12)
        voiced = (r > 0.6) & (energy > -50) & (first > 0) & (first < norm.shape[1] - 1)
        f0 = np.where(voiced, RATE / (first + lo), np.nan)
        logmel = 10 * np.log10(power @ self._bank.T + 1e-10)
        self._times.append((self._feat_start + idx + _FRAME / 2) / RATE)
        self._f0.append(f0.astype(np.float32))
        self._shape.append((logmel - logmel.mean(axis=1, keepdims=True)).astype(np.float32))
        used = count * _HOP
        self._feat_buf = buf[used:]
        self._feat_start += used

    def finish(self) -> SpeechAnalysis:
        self._features(final=True)
        probs = np.asarray(self._probs, np.float32)
        return SpeechAnalysis(
            segments=speech_segments(probs, self._samples / RATE),
            probs=probs,
            frame_times=np.concatenate(self._times) if self._times else np.zeros(0),
            f0=np.concatenate(self._f0) if self._f0 else np.zeros(0, np.float32),
            shape=np.concatenate(self._shape) if self._shape else np.zeros((0, _BANDS), np.float32),
            seconds=self._samples / RATE,
        )


def speech_segments(probs: np.ndarray, seconds: float) -> list[Span]:
    """Silero's hysteresis over per-window probabilities -> speech spans in seconds."""
    step = _WINDOW / RATE
    segs: list[Span] = []
    triggered = False
    start = 0.0
    temp_end: float | None = None
    for i, p in enumerate(probs.tolist()):
        t = i * step
        if p >= _THRESHOLD:
            temp_end = None
            if not triggered:
                triggered, start = True, t
            continue
        if p < _NEG_THRESHOLD and triggered:
            if temp_end is None:
                temp_end = t
            if t - temp_end >= _MIN_SILENCE_S:
                segs.append((start, temp_end))
                triggered, temp_end = False, None
    if triggered:
        segs.append((start, len(probs) * step))
    padded = [(max(0.0, a - _PAD_S), min(seconds, b + _PAD_S)) for a, b in segs if b - a >= _MIN_SPEECH_S]
    return merge_spans(padded)


# ------------------------------------------------------------------------------------------
# checks
# ------------------------------------------------------------------------------------------
def coverage_check(cues: Sequence[CueFact], sa: SpeechAnalysis | None) -> CheckResult:
    if sa is None:
        return skipped("speech_coverage", "no audio stream")
    if not cues:
        return skipped("speech_coverage", "no subtitle cues")
    bad: list[Span] = []
    rows: list[dict[str, Any]] = []
    for n, cue in enumerate(cues, 1):
        span = (cue.start, cue.end)
        length = max(1e-6, cue.end - cue.start)
        covered = sum(overlap(span, s) for s in sa.segments) / length
        rows.append({"cue": n, "start": cue.start, "end": cue.end, "covered": round(covered, 3), "text": cue.text})
        if covered < COVERAGE_MIN:
            bad.append(span)
    # speech under no cue, a breath-length pause (a comma) inside it joined: one missing subtitle, counted once
    free = [s for s in sa.segments if not any(overlap(s, (c.start, c.end)) > 0 for c in cues)]
    uncued = [s for s in merge_spans(free, gap=UNCUED_JOIN_S) if s[1] - s[0] >= UNCUED_SPEECH_S]
    value = len(bad) + len(uncued)
    parts = []
    if bad:
        first = next(r for r in rows if r["covered"] < COVERAGE_MIN)
        parts.append(f"{len(bad)} of {len(cues)} cue(s) have speech under less than {COVERAGE_MIN:.0%} of their time "
                     f"(first: cue {first['cue']} at {first['start']:.2f}s, {first['covered']:.0%}, {first['text'][:16]!r})")
    if uncued:
        parts.append(f"{len(uncued)} stretch(es) of speech have no subtitle (first at {uncued[0][0]:.2f}s)")
    detail = "; ".join(parts) or f"every one of {len(cues)} cues has speech under it and all speech is subtitled"
    return CheckResult("speech_coverage", Status.FAIL if value else Status.PASS, value, 0,
                       merge_spans(bad + uncued)[:50], detail=detail, data={"cues": rows, "speech": sa.segments})


def assign_speech(cues: Sequence[CueFact], segments: Sequence[Span], reach: float = ASSIGN_REACH_S) -> list[list[Span]]:
    """Each speech segment goes to the cue it overlaps most; one that overlaps none goes to the
    nearest cue within ``reach`` seconds (a subtitle moved off its speech), else stays unassigned."""
    out: list[list[Span]] = [[] for _ in cues]
    if not cues:
        return out
    for seg in segments:
        scores = [overlap(seg, (c.start, c.end)) for c in cues]
        if max(scores) > 0:
            out[int(np.argmax(scores))].append(seg)
            continue
        gaps = [max(c.start - seg[1], seg[0] - c.end) for c in cues]
        j = int(np.argmin(gaps))
        if gaps[j] <= reach:
            out[j].append(seg)
    return out


def timing_check(cues: Sequence[CueFact], sa: SpeechAnalysis | None) -> CheckResult:
    if sa is None:
        return skipped("subtitle_timing", "no audio stream")
    if not cues:
        return skipped("subtitle_timing", "no subtitle cues")
    assigned = assign_speech(cues, sa.segments)
    starts: list[float] = []
    ends: list[float] = []
    where: list[Span] = []
    rows: list[dict[str, Any]] = []
    unmeasured = 0
    for n, (cue, segs) in enumerate(zip(cues, assigned, strict=True), 1):
        if not segs:
            unmeasured += 1
            continue
        d_start = cue.start - min(a for a, _ in segs)
        d_end = cue.end - max(b for _, b in segs)
        starts.append(d_start)
        ends.append(d_end)
        rows.append({"cue": n, "start_offset": round(d_start, 3), "end_offset": round(d_end, 3)})
        if abs(d_start) > START_LIMIT or not END_LIMITS[0] <= d_end <= END_LIMITS[1]:
            where.append((cue.start, cue.end))
    if not starts:
        return CheckResult("subtitle_timing", Status.WARN, detail="no cue has speech under it to time against")
    worst_start = max(starts, key=abs)
    worst_end = max(ends, key=lambda d: d - END_LIMITS[1] if d > 0 else END_LIMITS[0] - d)
    value = {"start_median": round(statistics.median(starts), 3), "start_worst": round(worst_start, 3),
             "end_median": round(statistics.median(ends), 3), "end_worst": round(worst_end, 3)}
    limit = {"start": [-START_LIMIT, START_LIMIT], "end": list(END_LIMITS)}
    status = Status.FAIL if where else (Status.WARN if unmeasured or abs(worst_start) > 0.7 * START_LIMIT else Status.PASS)
    detail = (f"cue starts vs speech: median {value['start_median']:+.2f}s, worst {worst_start:+.2f}s; "
              f"ends: median {value['end_median']:+.2f}s, worst {worst_end:+.2f}s"
              + (f"; {len(where)} cue(s) out of step" if where else "")
              + (f"; {unmeasured} cue(s) without speech could not be timed" if unmeasured else ""))
    return CheckResult("subtitle_timing", status, value, limit, where[:50], detail=detail, data={"cues": rows})


@dataclass(slots=True)
class VoicePrint:
    speaker: str
    frames: int
    pitch_st: float  # median F0 in semitones re 1 Hz
    shape: np.ndarray = field(default_factory=lambda: np.zeros(_BANDS, np.float32))


def voice_prints(cues: Sequence[CueFact], sa: SpeechAnalysis) -> dict[str, VoicePrint]:
    by_speaker: dict[str, list[np.ndarray]] = {}
    t = sa.frame_times
    speech = np.zeros(len(t), bool)
    for a, b in sa.segments:
        speech |= (t >= a) & (t < b)
    voiced = ~np.isnan(sa.f0) & speech
    for cue in cues:
        if not cue.speaker:
            continue
        mask = voiced & (t >= cue.start) & (t < cue.end)
        by_speaker.setdefault(cue.speaker, []).append(np.flatnonzero(mask))
    prints = {}
    for who, parts in by_speaker.items():
        idx = np.concatenate(parts) if parts else np.zeros(0, int)
        if not len(idx):
            prints[who] = VoicePrint(who, 0, math.nan)
            continue
        prints[who] = VoicePrint(who, len(idx), float(12 * np.log2(np.median(sa.f0[idx]))), sa.shape[idx].mean(axis=0))
    return prints


def voice_check(cues: Sequence[CueFact], sa: SpeechAnalysis | None, declared: dict[str, str] | None = None) -> CheckResult:
    if sa is None:
        return skipped("voice_distinct", "no audio stream")
    if not any(c.speaker for c in cues):
        return skipped("voice_distinct", "the cues' speakers are unknown (no render.json beside the project)")
    prints = voice_prints(cues, sa)
    names = sorted(prints)
    if len(names) < 2:
        return CheckResult("voice_distinct", Status.PASS, 0, 0, detail=f"one speaker only ({names[0] if names else '-'})")
    thin = [n for n in names if prints[n].frames < MIN_VOICED_FRAMES]
    pairs: list[dict[str, Any]] = []
    same: list[tuple[str, str, float, float]] = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            pa, pb = prints[a], prints[b]
            if a in thin or b in thin:
                continue
            d_pitch = abs(pa.pitch_st - pb.pitch_st)
            d_shape = float(np.sqrt(np.mean((pa.shape - pb.shape) ** 2)))
            pairs.append({"a": a, "b": b, "pitch_st": round(d_pitch, 2), "timbre_db": round(d_shape, 2)})
            if d_pitch < PITCH_SAME_ST and d_shape < TIMBRE_SAME_DB:
                same.append((a, b, d_pitch, d_shape))
    where: list[Span] = []
    for a, b, _, _ in same:
        where += [(c.start, c.end) for c in cues if c.speaker in (a, b)]
    closest = min(pairs, key=lambda p: (p["pitch_st"] >= PITCH_SAME_ST, p["timbre_db"]), default=None)
    value = len(same)
    if same:
        detail = "; ".join(f"{a} and {b} sound alike (pitch {dp:.2f} st apart, spectrum {ds:.2f} dB)"
                           for a, b, dp, ds in same)
        if declared:
            detail += " — voices used: " + ", ".join(f"{n}={declared.get(n, '?')}" for n in sorted({x for s in same for x in s[:2]}))
        status = Status.FAIL
    else:
        detail = f"{len(names)} speakers, all distinct"
        if closest:
            detail += f" (closest: {closest['a']} / {closest['b']}, {closest['pitch_st']} st, {closest['timbre_db']} dB)"
        status = Status.PASS
    if thin:
        detail += f"; too little voiced speech to compare: {', '.join(thin)}"
        if status == Status.PASS:
            status = Status.WARN
    return CheckResult("voice_distinct", status, value, 0, merge_spans(where)[:50], detail=detail,
                       data={"pairs": pairs, "limits": {"pitch_st": PITCH_SAME_ST, "timbre_db": TIMBRE_SAME_DB},
                             "speakers": {n: {"voiced_s": prints[n].frames / 100,
                                              "pitch_hz": round(2 ** (prints[n].pitch_st / 12), 1)
                                              if prints[n].frames else None} for n in names}})
