"""What the synth agent writes: ``render.json`` per episode, one record per shot.

The render is plain data that crosses to the cut agent, the studio's review tab and QC. Paths in
it are relative to the episode's synth folder (``synth/epNN/``) and are opened through
:func:`core.paths.safe_join`, so an edited render cannot point outside that folder.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

from core.errors import InputError
from core.files import atomic_write_text

RENDER_VERSION = 2  # bump when the look of a shot or the timing rules change
RENDER_FILE = "render.json"
NARRATOR = "旁白"

# "auto" picks diffusers when an image model is configured, else animatic. Plug-in picture
# engines (entry points ``picture.<name>``) are chosen by their own names.
EngineChoice = Literal["auto", "animatic", "diffusers"]
PictureEngineName = Literal["animatic", "diffusers"]  # the built-in picture engines
ENGINE_CHOICES: tuple[str, ...] = get_args(EngineChoice)

# How a shot moves: a still picture, a camera move over the plate or keyframe, or frames from an
# image-to-video model. Stored in ``ShotRender.motion`` as "static", "camera:<move>" or "i2v:<pipeline>".
MotionKind = Literal["static", "camera", "i2v"]
MOTION_KINDS: tuple[str, ...] = get_args(MotionKind)

ReviewStatus = Literal["pending", "approved"]


def motion_name(kind: MotionKind, detail: str = "") -> str:
    """The ``ShotRender.motion`` text for a kind of motion (``camera:push_in``, ``i2v:SVDPipeline``)."""
    if kind == "static":
        return "static"
    if not detail:
        raise ValueError(f"motion {kind!r} needs its move or pipeline name")
    return f"{kind}:{detail}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TimedLine(_Model):
    speaker: str
    text: str
    kind: str
    start: int  # frame within the shot
    end: int  # frame one past the end of the speech
    voice: str = ""
    engine: str = ""


class ShotRender(_Model):
    id: str
    scene_id: str
    clip: str  # paths relative to the episode's synth folder
    audio: str
    keyframe: str
    frames: int
    lines: list[TimedLine]
    key: str
    notes: list[str] = []
    # optional, added by the scene-synthesis engines (readers may ignore them)
    picture: str = "animatic"  # the picture engine that made the keyframe (PictureEngineName or a plug-in's)
    motion: str = "static"  # static | camera:<move> | i2v:<pipeline> (see motion_name)
    prompt: str = ""  # the keyframe prompt actually used
    seed: int | None = None
    keyframe_record: str = ""  # JSON with every generation setting (generated keyframes)
    consistency: float | None = None
    consistency_method: str = ""
    review: ReviewStatus = "pending"
    picture_key: str = ""  # everything that shaped the picture; the sound alone can change without it

    @property
    def motion_kind(self) -> MotionKind:
        kind = self.motion.partition(":")[0]
        if kind == "camera":
            return "camera"
        if kind == "i2v":
            return "i2v"
        return "static"


class EpisodeRender(_Model):
    episode: int
    title: str
    engine: str
    tts_engine: str
    fps: str
    width: int
    height: int
    audio_rate: int
    shots: list[ShotRender]
    # optional
    cover: str = ""
    loudness_lufs: float | None = None
    peak_db: float | None = None
    music: list[str] = []
    notes: list[str] = []

    @property
    def fps_fraction(self) -> Fraction:
        return Fraction(self.fps)

    @property
    def total_frames(self) -> int:
        return sum(s.frames for s in self.shots)

    def unapproved(self) -> list[str]:
        """Shots a person has not approved yet (the review gate before the cut)."""
        return [s.id for s in self.shots if s.review != "approved"]

    def save(self, path: Path) -> Path:
        return atomic_write_text(path, json.dumps(self.model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> EpisodeRender:
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise InputError(f"{str(path)!r} does not exist", hint="run the synth stage first") from e
        except ValueError as e:
            raise InputError(f"{str(path)!r} is not a valid episode render: {e}",
                             hint="re-run the synth stage for this episode") from e
