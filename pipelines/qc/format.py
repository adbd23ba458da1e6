"""The container as delivered: picture format against the platform, length against the episode, the implicit label.

``format``: display size (rotation applied, so a vertical video stored sideways reads as what a
viewer sees), aspect, frame rate, codecs, video bitrate and length against the platform preset.
Wrong aspect, a size under the platform's minimum, a frame rate outside 24-60, a codec the
platform does not take or a length over its maximum fail; a size under the recommended one, a
low bitrate, a variable frame rate or an unusual audio codec warn.

``duration``: the delivered length against the episode's target from the screenplay: more than
15 % off fails, more than 10 % warns.

``label_metadata``: the implicit label of GB 45438-2025 is read back with the same parser every
ReelForge writer is checked with (:func:`core.aigc.read_label`): the ``AIGC`` container tag must
be JSON with the seven fields, ``Label`` set, a producer and a content id.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path
from typing import Any

from core.aigc import AIGC_KEY, AIGCLabel, read_label
from core.media import MediaInfo
from pipelines.qc.base import CheckResult, Status, skipped
from pipelines.qc.platforms import Platform

DURATION_FAIL, DURATION_WARN = 0.15, 0.10


def _aspect(w: int, h: int) -> str:
    g = math.gcd(w, h) or 1
    return f"{w // g}:{h // g}"


def video_kbps(path: Path, info: MediaInfo) -> float | None:
    """The video stream's bitrate (from the container, else the packets' sizes over the duration)."""
    from core.media import open_input

    with open_input(path) as c:
        if not c.streams.video:
            return None
        s = c.streams.video[0]
        if s.bit_rate:
            return float(s.bit_rate) / 1000
        total = sum(p.size for p in c.demux(s) if p.size)
    dur = float(info.video.duration or info.duration or 0) if info.video else 0.0
    return total * 8 / dur / 1000 if dur > 0 else None


def format_check(path: Path, info: MediaInfo, platform: Platform) -> CheckResult:
    v, a = info.video, info.audio
    if v is None:
        return CheckResult("format", Status.FAIL, detail="the file has no video stream")
    w, h = v.display_size
    kbps = video_kbps(path, info)
    seconds = float(info.duration or v.duration or 0)
    value: dict[str, Any] = {"size": f"{w}x{h}", "aspect": _aspect(w, h), "fps": round(float(v.fps), 3),
                             "video_codec": v.codec, "video_kbps": round(kbps, 1) if kbps is not None else None,
                             "audio_codec": a.codec if a else None, "audio_rate": a.sample_rate if a else None,
                             "seconds": round(seconds, 3), "rotation": v.rotation}
    limit: dict[str, Any] = {"aspects": [f"{x}:{y}" for x, y in platform.aspects], "min_size": "{}x{}".format(*platform.min_size),
             "size": "{}x{}".format(*platform.size), "fps": list(platform.fps), "video_codecs": list(platform.video_codecs),
             "max_seconds": platform.max_seconds, "min_video_kbps": platform.min_video_kbps}
    fails, warns = [], []
    if not any(abs(w * y - h * x) <= 0.01 * h * x for x, y in platform.aspects):
        fails.append(f"aspect {_aspect(w, h)} ({w}x{h}) is not {' or '.join(limit['aspects'])}"
                     + (f" (the video is rotated {v.rotation}°)" if v.rotation else ""))
    short, long_ = sorted((w, h))
    min_short, min_long = sorted(platform.min_size)
    rec_short, rec_long = sorted(platform.size)
    if short < min_short or long_ < min_long:
        fails.append(f"{w}x{h} is under {platform.title}'s minimum {limit['min_size']}")
    elif short < rec_short or long_ < rec_long:
        warns.append(f"{w}x{h} is under the recommended {limit['size']} (the platform upscales it)")
    if not platform.fps[0] <= float(v.fps) <= platform.fps[1]:
        fails.append(f"{float(v.fps):g} fps is outside {platform.fps[0]:g}-{platform.fps[1]:g}")
    if v.variable_fps:
        warns.append("variable frame rate")
    if v.codec not in platform.video_codecs:
        fails.append(f"video codec {v.codec} is not one of {', '.join(platform.video_codecs)}")
    if a is None:
        warns.append("no audio stream")
    elif a.codec not in platform.audio_codecs:
        warns.append(f"audio codec {a.codec} (the platform re-encodes it to {platform.audio_codecs[0]})")
    if seconds > platform.max_seconds:
        fails.append(f"{seconds:.0f}s is over the platform's {platform.max_seconds:.0f}s")
    if kbps is not None and kbps < platform.min_video_kbps:
        warns.append(f"video bitrate {kbps:.0f} kb/s is under {platform.min_video_kbps} kb/s: fine for still cards, "
                     "but detailed pictures will lose quality in the platform's re-encode")
    status = Status.FAIL if fails else Status.WARN if warns else Status.PASS
    detail = "; ".join(fails + warns) or (f"{w}x{h} {_aspect(w, h)}, {float(v.fps):g} fps, {v.codec}"
                                           f"{f' {kbps:.0f} kb/s' if kbps else ''}, {a.codec if a else 'no audio'}: "
                                           f"fits {platform.title}")
    return CheckResult("format", status, value, limit, detail=detail)


def duration_check(info: MediaInfo, target: float | None) -> CheckResult:
    seconds = float(info.duration or (info.video.duration if info.video else 0) or 0)
    if not target:
        return skipped("duration", "the episode's target length is unknown (no screenplay)")
    off = (seconds - target) / target
    lo, hi = round(target * (1 - DURATION_FAIL), 3), round(target * (1 + DURATION_FAIL), 3)
    status = Status.FAIL if abs(off) > DURATION_FAIL else Status.WARN if abs(off) > DURATION_WARN else Status.PASS
    return CheckResult("duration", status, round(seconds, 3), [lo, hi],
                       detail=f"{seconds:.1f}s against a target of {target:g}s ({off:+.0%})")


def label_metadata_check(info: MediaInfo) -> CheckResult:
    raw = next((v for k, v in info.metadata.items() if k.upper() == AIGC_KEY), None)
    if raw is None:
        return CheckResult("label_metadata", Status.FAIL, None, "AIGC tag",
                           detail="the implicit AIGC label (container tag 'AIGC') is missing")
    label = read_label(info.metadata)
    if label is None:
        return CheckResult("label_metadata", Status.FAIL, raw[:200], "AIGC tag",
                           detail="the AIGC tag is not JSON with a 'Label' field")
    try:
        fields = set(json.loads(raw))
    except (TypeError, ValueError):
        fields = set()
    problems = []
    missing = sorted(set(AIGCLabel.__dataclass_fields__) - fields)
    if missing:
        problems.append(f"fields missing: {', '.join(missing)}")
    if not label.Label.strip():
        problems.append("'Label' is empty")
    if not label.ContentProducer.strip():
        problems.append("'ContentProducer' is empty")
    if not label.ProduceID.strip():
        problems.append("'ProduceID' is empty")
    status = Status.FAIL if problems else Status.PASS
    detail = "; ".join(problems) or (f"AIGC label present: Label={label.Label}, producer {label.ContentProducer!r}, "
                                     f"id {label.ProduceID[:12]}…")
    return CheckResult("label_metadata", status, asdict(label), "AIGC tag with the 7 GB 45438 fields", detail=detail)


def seconds_of(info: MediaInfo) -> float:
    d = info.duration or (info.video.duration if info.video else None) or Fraction(0)
    return float(d)
