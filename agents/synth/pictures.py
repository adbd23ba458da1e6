"""Picture engines: what makes each shot's picture before the compositor lays cards, subtitles
and the AI label on it.

One small abstract base class, one required method (:meth:`PictureEngine.pictures`), an optional
hook (:meth:`PictureEngine.quote`). The engines are declared in ``agents.synth.PICTURE_ENGINES``
(a :class:`core.registry.Registry`); a plug-in adds one through the ``reelforge.plugins`` entry
point ``picture.<name>``. Built in:

* ``animatic`` (CPU, always there): no model; the compositor draws a styled plate per place (the
  user's own image when one matches the place's name), the speaker's card, camera moves with
  two-layer parallax;
* ``diffusers`` (:mod:`agents.synth.keyframes`): a keyframe per shot from a local diffusers
  pipeline, character sheets, consistency scores and optional image-to-video.

A remote generation provider is a :class:`PictureEngine` too: it returns a :class:`Keyframe`
per shot (a PNG in the episode's ``keyframes/`` folder and a JSON record of how it was made),
adds its lines to the quote, charges what it spends to ``job.spent`` and appends its usage
records to ``job.usage``.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

from agents.synth.job import EpisodeJob
from agents.synth.quote import Quote
from core.files import atomic_write_text
from pipelines.consistency import ConsistencyScore


@dataclass(slots=True)
class MotionClip:
    """Frames for a shot from an image-to-video model, to be retimed onto the shot."""

    path: Path
    fps: Fraction
    key: str  # hash of what made it (keyframe, model, frames, fps, steps)
    pipeline: str  # the pipeline class, recorded in ShotRender.motion


@dataclass(slots=True)
class Keyframe:
    """A shot's generated picture and how it was made."""

    png: Path
    record: Path  # JSON: {"request_key": ..., "record": {every generation setting}, "consistency": ...}
    prompt: str
    seed: int
    digest: str  # sha256 of the PNG: part of the shot's cache key
    consistency: ConsistencyScore | None = None
    motion: MotionClip | None = None

    def store_consistency(self, score: ConsistencyScore) -> None:
        """Keep the score on the keyframe and in its record file."""
        self.consistency = score
        stored = json.loads(self.record.read_text(encoding="utf-8"))
        stored["consistency"] = consistency_json(score)
        atomic_write_text(self.record, json.dumps(stored, ensure_ascii=False, indent=2))


def consistency_json(score: ConsistencyScore) -> dict[str, Any]:
    return {"score": score.score, "method": score.method, "per": score.per_character}


def consistency_from_json(data: Any) -> ConsistencyScore | None:
    if not isinstance(data, dict) or "score" not in data:
        return None
    return ConsistencyScore(float(data["score"]), str(data.get("method", "")),
                            {str(k): float(v) for k, v in dict(data.get("per", {})).items()})


class PictureEngine(ABC):
    """Makes the pictures of an episode's shots. One required method."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    def device(self, job: EpisodeJob) -> str:
        """Where the pictures are made (for the quote and the usage records)."""
        return "cpu"

    def quote(self, job: EpisodeJob) -> Quote:
        """What making the pictures will take and cost, before anything is made (no generation)."""
        return Quote(episode=job.episode.number, engine=self.name, device=self.device(job))

    @abstractmethod
    def pictures(self, job: EpisodeJob) -> dict[str, Keyframe]:
        """A keyframe per shot id, made or reused; shots left out get the animatic plate."""


class AnimaticEngine(PictureEngine):
    """No model: the compositor draws each shot's plate (see :mod:`agents.synth.shots`)."""

    name = "animatic"
    description = "styled plates per place (or your own backgrounds), character cards and camera moves; CPU"

    def pictures(self, job: EpisodeJob) -> dict[str, Keyframe]:
        return {}
