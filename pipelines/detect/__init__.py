"""Shot-boundary detection: a fast CPU detector of our own and TransNetV2 (neural).

The detectors are listed in :data:`DETECTORS` (the one plug-in convention, :mod:`core.registry`);
a third-party detector registers as the entry point ``detector.<name>`` in the group
``reelforge.plugins`` and must be a :class:`Detector`. Registering imports nothing: the neural
detector's module (and torch) is imported when it is first built.
"""

from __future__ import annotations

from typing import Any

from core.registry import Registry
from pipelines.detect.base import KINDS, Boundary, Detection, Detector

DETECTORS: Registry[Detector] = Registry("detector", "shot-boundary detectors / 镜头切分")
DETECTORS.add("fast", "pipelines.detect.fast:FastDetector",
              description="our CPU detector: hard cuts, dissolves and fades at decoding speed")
DETECTORS.add("transnet", "pipelines.detect.transnet:TransNetDetector",
              description="TransNetV2 network (GPU fp16 when present) plus the fast detector's hard cuts",
              extra="scale", requires=("torch",), probe="pipelines.detect.transnet:weights_probe")


def get_detector(name: str, **kwargs: Any) -> Detector:
    """Build the detector ``name`` (``fast``, ``transnet`` or a plug-in's) with ``kwargs``."""
    return DETECTORS.create(name, **kwargs)


__all__ = ["DETECTORS", "KINDS", "Boundary", "Detection", "Detector", "get_detector"]
