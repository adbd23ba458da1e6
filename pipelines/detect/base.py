"""Shot-boundary detection: the result types and the detector interface.

The registry of detectors is :data:`pipelines.detect.DETECTORS`.

A boundary's ``frame`` is the first frame of the new shot. ``start``/``end`` are the first and
last frames the transition touches: for a hard cut ``(frame - 1, frame)``, for a dissolve the
mixed frames, for a fade the frames from the start of the fade-out to the end of the fade-in
(a fade-out/fade-in pair is one boundary).
"""

from __future__ import annotations

import json
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, ClassVar

log = logging.getLogger(__name__)

KINDS = ("cut", "dissolve", "fade")
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class Boundary:
    frame: int
    kind: str
    start: int
    end: int
    score: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"frame": self.frame, "kind": self.kind, "start": self.start, "end": self.end}


@dataclass(slots=True)
class Detection:
    fps: Fraction
    frames: int
    boundaries: list[Boundary]
    detector: str
    seconds: float = 0.0
    device: str = "cpu"
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        fps = f"{self.fps.numerator}/{self.fps.denominator}"
        return json.dumps({"fps": fps, "boundaries": [b.to_dict() for b in self.boundaries]}, ensure_ascii=False)

    def shots(self) -> list[tuple[int, int]]:
        """``[start, end)`` frame ranges of the shots between boundaries."""
        edges = [0] + [b.frame for b in self.boundaries] + [self.frames]
        return [(a, b) for a, b in zip(edges, edges[1:], strict=False) if b > a]


class Detector(ABC):
    """One required method: ``detect(path) -> Detection``."""

    name: ClassVar[str]

    @abstractmethod
    def detect(self, path: str | os.PathLike[str], *, progress: ProgressFn | None = None) -> Detection:
        """Find the shot boundaries of a video file."""

