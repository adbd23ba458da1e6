"""Shot-boundary detection: a fast CPU detector of our own and TransNetV2 (neural)."""

from __future__ import annotations

from pipelines.detect.base import KINDS, Boundary, Detection, Detector, get_detector

__all__ = ["KINDS", "Boundary", "Detection", "Detector", "get_detector"]
