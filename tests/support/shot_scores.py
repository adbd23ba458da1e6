"""Scoring shot detection against labelled boundaries: precision, recall, F1 at a frame tolerance.

A detected boundary matches a labelled one when its ``frame`` is within ``tolerance`` frames of
the label's frame for a hard cut, or inside the label's ``[start, end]`` span widened by
``tolerance`` for a gradual transition (where "the first frame of the new shot" is a matter of
taste). Matching is one-to-one, nearest first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pipelines.detect.base import Boundary


@dataclass(frozen=True, slots=True)
class Score:
    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def __add__(self, other: Score) -> Score:
        return Score(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)


def _hits(pred: int, gt: Boundary, tol: int) -> bool:
    if gt.kind == "cut":
        return abs(pred - gt.frame) <= tol
    return gt.start - tol <= pred <= gt.end + tol


def score(pred: list[int] | list[Boundary], truth: list[Boundary], tolerance: int = 0) -> Score:
    frames = sorted(p.frame if isinstance(p, Boundary) else int(p) for p in pred)
    used = [False] * len(frames)
    tp = 0
    for gt in sorted(truth, key=lambda b: b.frame):
        best, best_d = -1, None
        for i, f in enumerate(frames):
            if used[i] or not _hits(f, gt, tolerance):
                continue
            d = abs(f - gt.frame)
            if best_d is None or d < best_d:
                best, best_d = i, d
        if best >= 0:
            used[best] = True
            tp += 1
    return Score(tp, len(frames) - tp, len(truth) - tp)


def load_truth(path: str | Path) -> tuple[int, list[Boundary]]:
    """Labels as JSON: ``{"frames": N, "boundaries": [{"frame", "kind", "start", "end"}]}``."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return int(data.get("frames", 0)), [Boundary(int(b["frame"]), b["kind"], int(b["start"]), int(b["end"]))
                                        for b in data["boundaries"]]
