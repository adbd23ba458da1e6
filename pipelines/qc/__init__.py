"""Delivery checks on a finished episode: sound, speech, picture, identity, format.

One module per family of checks; :func:`run_checks` decodes the video once and the audio once,
in two threads, and feeds every family from those two passes (the speech checks take 16 kHz
mono from the audio pass; the mark, text and face checks take sampled frames from the picture
pass). Nothing is read into memory whole, so memory stays flat whatever the episode's length.

The families are declared in :data:`CHECK_FAMILIES` (the one plug-in convention,
:class:`core.registry.Registry`), with the packages each needs; a family whose packages are
missing is skipped with a warning naming the extra to install (``reelforge[qc]``), never
silently. The check ids and the JSON contract are fixed (:data:`CHECK_IDS`,
:meth:`CheckResult.contract`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.registry import Registry
from pipelines.qc.base import CheckResult, CueFact, EpisodeFacts, Status, read_cues, skipped
from pipelines.qc.platforms import PLATFORMS, Platform, get_platform

log = logging.getLogger(__name__)

__all__ = ["CHECK_FAMILIES", "CHECK_IDS", "PLATFORMS", "CheckResult", "EpisodeFacts", "QCRun", "Status",
           "get_platform", "run_checks"]

CHECK_IDS = ("loudness", "true_peak", "audio_dropout", "speech_coverage", "subtitle_timing", "voice_distinct",
             "black_frames", "frozen_frames", "flicker", "label_visible", "safe_zone", "identity", "format",
             "duration", "label_metadata")

CHECK_FAMILIES: Registry[Any] = Registry("qc-check", "families of delivery checks run by `reelforge qc`")
CHECK_FAMILIES.add("loudness", "pipelines.qc.loudness:measure_audio",
                   description="loudness, true_peak, audio_dropout (FFmpeg ebur128 through PyAV)")
CHECK_FAMILIES.add("speech", "pipelines.qc.speech:SpeechTrack", extra="qc", requires=("silero_vad", "torch"),
                   description="speech_coverage, subtitle_timing, voice_distinct (Silero VAD)")
CHECK_FAMILIES.add("frames", "pipelines.qc.frames:scan_frames",
                   description="black_frames, frozen_frames, flicker, label_visible, safe_zone")
CHECK_FAMILIES.add("identity", "pipelines.qc.identity:FaceEncoder", extra="qc",
                   requires=("dlib", "face_recognition_models"),
                   description="identity (dlib face descriptors against the characters' references)")
CHECK_FAMILIES.add("format", "pipelines.qc.format:format_check",
                   description="format, duration, label_metadata (container probe)")

FAMILY_CHECKS = {"loudness": ("loudness", "true_peak", "audio_dropout"),
                 "speech": ("speech_coverage", "subtitle_timing", "voice_distinct"),
                 "frames": ("black_frames", "frozen_frames", "flicker", "label_visible", "safe_zone"),
                 "identity": ("identity",), "format": ("format", "duration", "label_metadata")}


@dataclass(slots=True)
class QCRun:
    checks: list[CheckResult]
    seconds: float
    notes: list[str] = field(default_factory=list)  # fallbacks and skipped families, for the report

    @property
    def passed(self) -> bool:
        return not any(c.status == Status.FAIL for c in self.checks)

    def by_id(self, check_id: str) -> CheckResult:
        return next(c for c in self.checks if c.id == check_id)


def _available(family: str, notes: list[str]) -> bool:
    entry = CHECK_FAMILIES.get(family)
    missing = entry.missing()
    if missing:
        msg = (f"QC checks {', '.join(FAMILY_CHECKS[family])} skipped: {', '.join(missing)} not installed "
               f"({entry.install_hint()})")
        log.warning(msg)
        notes.append(msg)
        return False
    return True


def run_checks(video: Path, srt: Path | None, facts: EpisodeFacts, platform: str | Platform = "douyin", *,
               parallel: bool = True, families: Collection[str] | None = None) -> QCRun:
    """Measure ``video`` (and its ``srt``) as delivered; every id of :data:`CHECK_IDS` gets a result.

    ``families`` (names of :data:`CHECK_FAMILIES`) limits the run; the other checks say ``skip``.
    """
    from core.media import probe
    from pipelines.qc import format as fmt
    from pipelines.qc import frames, loudness

    t0 = time.perf_counter()
    plat = platform if isinstance(platform, Platform) else get_platform(platform)
    notes: list[str] = []
    wanted = set(FAMILY_CHECKS) if families is None else set(families)
    unknown = wanted - set(FAMILY_CHECKS)
    if unknown:
        from core.errors import InputError

        raise InputError(f"unknown check families {sorted(unknown)}", hint=f"use {', '.join(FAMILY_CHECKS)}")
    info = probe(video)
    cues: list[CueFact] = []
    if srt is not None and srt.is_file():
        cues = read_cues(srt, facts.cue_speakers)
        if facts.cue_speakers and len(facts.cue_speakers) != len(cues):
            notes.append(f"the SRT has {len(cues)} cues but the render has {len(facts.cue_speakers)} lines: "
                         "speakers are not attached (voice_distinct cannot run)")
    elif srt is not None:
        notes.append(f"no subtitle file at {srt}: the speech and text checks have no cues")
    results: dict[str, CheckResult] = {}

    # -- the audio pass (with the speech consumer) -------------------------------------------
    speech_ok = "speech" in wanted and _available("speech", notes)
    identity_ok = "identity" in wanted and _available("identity", notes)

    def audio_pass() -> tuple[Any, Any]:
        if not wanted & {"loudness", "speech"}:
            return None, None
        track = None
        if speech_ok:
            from pipelines.qc.speech import SpeechTrack

            track = SpeechTrack()
        measure = loudness.measure_audio(video, [track] if track is not None else [])
        return measure, (track.finish() if track is not None and measure.present else None)

    # -- the picture pass (with the mark, text and face samplers) ------------------------------
    def picture_pass() -> tuple[Any, Any, Any, Any]:
        if info.video is None or not wanted & {"frames", "identity"}:
            return None, None, None, None
        w, h = info.video.display_size
        ms = frames.MarkSampler(w, h, facts.label_text, facts.label_position)
        ts = frames.TextSampler(cues, info.video.fps, lambda: ms.template)
        samplers: list[Any] = [ms, ts]
        times = frames.sample_times(fmt.seconds_of(info), cues)
        faces = None
        if identity_ok and facts.references:
            from pipelines.qc.identity import FaceSampler

            faces = FaceSampler(facts)
            times = sorted(set(times) | set(faces.plan(float(info.video.fps))))
            samplers.append(faces)
        stats = frames.scan_frames(video, times, samplers)
        return stats, ms, ts, faces

    if parallel:
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="qc") as pool:
            fa = pool.submit(audio_pass)
            fv = pool.submit(picture_pass)
            measure, speech = fa.result()
            stats, ms, ts, faces = fv.result()
    else:
        measure, speech = audio_pass()
        stats, ms, ts, faces = picture_pass()

    if "loudness" in wanted:
        results["loudness"] = loudness.loudness_check(measure, plat)
        results["true_peak"] = loudness.true_peak_check(measure, plat)
        results["audio_dropout"] = loudness.dropout_check(measure)
    if speech_ok:
        from pipelines.qc import speech as sp

        results["speech_coverage"] = sp.coverage_check(cues, speech)
        results["subtitle_timing"] = sp.timing_check(cues, speech)
        results["voice_distinct"] = sp.voice_check(cues, speech, facts.voices)
    elif "speech" in wanted:
        for cid in FAMILY_CHECKS["speech"]:
            results[cid] = CheckResult(cid, Status.WARN, detail="not measured: silero-vad is not installed "
                                                                 "(pip install 'reelforge[qc]')")
    if "frames" in wanted:
        if stats is None:
            for cid in FAMILY_CHECKS["frames"]:
                results[cid] = skipped(cid, "no video stream")
        else:
            results["black_frames"] = frames.black_check(stats)
            results["frozen_frames"] = frames.frozen_check(stats, facts)
            results["flicker"] = frames.flicker_check(stats, facts)
            results["label_visible"] = frames.label_visible_check(ms, facts.label_enabled)
            results["safe_zone"] = frames.safe_zone_check(plat, stats.width, stats.height, ms.template, ts)
    if identity_ok:
        from pipelines.qc.identity import identity_check

        results["identity"] = identity_check(facts, faces)
    elif "identity" in wanted:
        results["identity"] = (CheckResult("identity", Status.WARN, detail="not measured: dlib-bin and "
                                           "face-recognition-models are not installed (pip install 'reelforge[qc]')")
                               if facts.references else skipped("identity", "no character has a reference picture"))
    if "format" in wanted:
        results["format"] = fmt.format_check(video, info, plat)
        results["duration"] = fmt.duration_check(info, facts.target_seconds)
        results["label_metadata"] = fmt.label_metadata_check(info)
    return QCRun([results.get(c) or skipped(c, "not run (limited to " + ", ".join(sorted(wanted)) + ")")
                  for c in CHECK_IDS], time.perf_counter() - t0, notes)
