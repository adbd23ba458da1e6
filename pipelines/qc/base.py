"""Plain data shared by the QC check families: what a check says, and what it is told about the episode.

A check result is the JSON contract of ``reelforge qc --json``: ``id``, ``status`` (pass, warn,
fail, skip), ``value`` and ``limit`` (numbers, or small lists/dicts of numbers), ``where`` (time
spans in seconds) and ``detail`` (one sentence a person can act on). ``data`` holds what the
HTML report draws (curves, per-cue tables); it goes to ``report.json`` but not to ``--json``.

What a check may know beyond the two delivered files comes in :class:`EpisodeFacts`: the cues'
speakers, the shots' spans and characters, the characters' reference pictures, the episode's
target length. Everything is optional, so the checks also run on a video made elsewhere; a check
whose facts are missing says ``skip`` and why.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


Span = tuple[float, float]


@dataclass(slots=True)
class CheckResult:
    id: str
    status: str
    value: Any = None
    limit: Any = None
    where: list[Span] = field(default_factory=list)
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def contract(self) -> dict[str, Any]:
        """The check as ``--json`` prints it (the fixed keys only)."""
        return {"id": self.id, "status": self.status, "value": _jsonable(self.value), "limit": _jsonable(self.limit),
                "where": [[round(a, 3), round(b, 3)] for a, b in self.where], "detail": self.detail}

    def to_json(self) -> dict[str, Any]:
        out = self.contract()
        if self.data:
            out["data"] = _jsonable(self.data)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CheckResult:
        return cls(id=str(data["id"]), status=str(data["status"]), value=data.get("value"), limit=data.get("limit"),
                   where=[(float(a), float(b)) for a, b in data.get("where", [])], detail=str(data.get("detail", "")),
                   data=dict(data.get("data", {})))


def skipped(check_id: str, why: str) -> CheckResult:
    return CheckResult(check_id, Status.SKIP, detail=why)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "-inf" if value < 0 else "inf"
        return round(value, 4)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item"):  # numpy scalars
        return _jsonable(value.item())
    return value


def graded(value: float, limit: float, *, warn_margin: float, higher_is_worse: bool = True) -> str:
    """pass / warn (within ``warn_margin`` of the limit) / fail (past it)."""
    excess = value - limit if higher_is_worse else limit - value
    if excess > 0:
        return Status.FAIL
    if excess > -warn_margin:
        return Status.WARN
    return Status.PASS


def merge_spans(spans: Iterable[Span], gap: float = 0.0) -> list[Span]:
    """Sorted, with spans closer than ``gap`` joined."""
    out: list[Span] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + gap:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def overlap(a: Span, b: Span) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


@dataclass(frozen=True, slots=True)
class CueFact:
    """One subtitle cue: times in seconds (from the SRT as delivered), text, speaker (from the render)."""

    start: float
    end: float
    text: str
    speaker: str = ""


@dataclass(frozen=True, slots=True)
class ShotFact:
    """One shot of the episode: its span, who speaks in it, who is in it, how it moves."""

    id: str
    start: float
    end: float
    speakers: tuple[str, ...] = ()
    characters: tuple[str, ...] = ()
    moving: bool | None = None  # None: unknown (a video made elsewhere)
    keyframe: str = ""  # the still the shot was made from, when there is one


@dataclass(slots=True)
class EpisodeFacts:
    """What the project knows about the episode; every field may be empty."""

    episode: int = 0
    target_seconds: float | None = None
    shots: list[ShotFact] = field(default_factory=list)
    references: dict[str, list[Path]] = field(default_factory=dict)  # character -> face pictures
    voices: dict[str, str] = field(default_factory=dict)  # speaker -> the voice the render used
    cue_speakers: list[str] = field(default_factory=list)  # the speaker of each subtitle cue, in order
    label_text: str = "AI生成"
    label_position: str = "top-right"
    label_enabled: bool = True
    narrator: str = "旁白"

    def shot_at(self, t: float) -> ShotFact | None:
        for s in self.shots:
            if s.start <= t < s.end:
                return s
        return None

    def cut_times(self) -> list[float]:
        return [s.start for s in self.shots[1:]]


def parse_srt_time(text: str) -> float:
    """``HH:MM:SS,mmm`` (or with a dot) to seconds."""
    hms, _, ms = text.strip().replace(".", ",").partition(",")
    parts = [int(p) for p in hms.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    h, m, s = parts
    return h * 3600 + m * 60 + s + (int(ms.ljust(3, "0")[:3]) / 1000 if ms else 0.0)


def read_cues(path: Path, speakers: Sequence[str] = ()) -> list[CueFact]:
    """Cues of an SRT file as delivered; ``speakers`` (in cue order, from the render) are attached when
    the counts agree, else left empty."""
    from pipelines.subtitles import parse_srt

    rows = parse_srt(path.read_text(encoding="utf-8-sig"))
    names = list(speakers) if len(speakers) == len(rows) else [""] * len(rows)
    return [CueFact(parse_srt_time(a), parse_srt_time(b), text, who) for (a, b, text), who in zip(rows, names, strict=True)]
