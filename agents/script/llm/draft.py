"""The levels of an LLM adaptation as data: what each reply must hold, and the editable :class:`Draft`.

Each level of :mod:`agents.script.llm.engine` is a pydantic model that a reply must validate as
(lenient about casing and synonyms, strict about what is missing). The :class:`Draft` keeps every
level as JSON, next to the screenplay: a person can edit any level, delete it (or use
:func:`clear_level`) and re-run to generate just that level again. ``filled`` marks the parts the
model could not produce that were filled from the offline engine's analysis.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.errors import InputError
from core.screenplay import CameraMove, ShotSize

LEVELS = ("summaries", "logline", "characters", "outline", "scenes", "lines")

# --- level data -----------------------------------------------------------------------------


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ChunkSummary(_Loose):
    summary: str = Field(min_length=1)
    characters: list[str] = Field(default_factory=list)
    events: list[str] = Field(default_factory=list)


class LoglinePlan(_Loose):
    title: str = Field(min_length=1)
    logline: str = Field(min_length=1)
    genre: str = ""


class CharacterPlan(_Loose):
    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    description: str = ""
    appearance: str = ""
    voice: str = ""
    role: str = "supporting"

    @field_validator("role")
    @classmethod
    def _role(cls, v: str) -> str:
        v = (v or "").strip().lower()
        return v if v in ("lead", "supporting", "extra") else "supporting"


class CastPlan(_Loose):
    characters: list[CharacterPlan] = Field(min_length=1)


class EpisodePlan(_Loose):
    number: int = Field(ge=1)
    title: str = ""
    synopsis: str = ""
    hook: str = ""
    cliffhanger: str = ""
    paywall: bool = False


class OutlineBatch(_Loose):
    episodes: list[EpisodePlan] = Field(min_length=1)


class ScenePlan(_Loose):
    int_ext: str = "INT"
    place: str = ""
    time_of_day: str = "day"
    characters: list[str] = Field(default_factory=list)
    summary: str = ""
    source_quote: str = ""

    @field_validator("int_ext")
    @classmethod
    def _ie(cls, v: str) -> str:
        v = (v or "").upper().replace(".", "").strip()
        if "INT" in v and "EXT" in v:
            return "INT/EXT"
        if v.startswith("EXT") or v in ("外", "外景"):
            return "EXT"
        return "INT"

    @field_validator("time_of_day")
    @classmethod
    def _tod(cls, v: str) -> str:
        v = (v or "").strip().lower()
        table = {"日": "day", "夜": "night", "晨": "dawn", "昏": "dusk", "黄昏": "dusk", "清晨": "dawn"}
        v = table.get(v, v)
        return v if v in ("day", "night", "dawn", "dusk", "unspecified") else "day"


class ScenesPlan(_Loose):
    scenes: list[ScenePlan] = Field(min_length=1)


class LinePlan(_Loose):
    speaker: str = ""
    text: str = Field(min_length=1)
    kind: str = "dialogue"

    @field_validator("kind")
    @classmethod
    def _kind(cls, v: str) -> str:
        v = (v or "").strip().lower().replace(".", "").replace("-", "")
        table = {"voiceover": "vo", "offscreen": "os", "narrator": "narration", "旁白": "narration",
                 "对白": "dialogue", "画外音": "os", "内心独白": "vo"}
        v = table.get(v, v)
        return v if v in ("dialogue", "os", "vo", "narration") else "dialogue"


class ShotPlan(_Loose):
    size: str = "MS"
    camera: str = "static"
    visual_prompt: str = ""
    characters: list[str] = Field(default_factory=list)
    sfx: list[str] = Field(default_factory=list)
    lines: list[LinePlan] = Field(default_factory=list)

    @field_validator("size")
    @classmethod
    def _size(cls, v: str) -> str:
        v = (v or "").strip().upper()
        return v if v in {s.value for s in ShotSize} else "MS"

    @field_validator("camera")
    @classmethod
    def _camera(cls, v: str) -> str:
        v = (v or "").strip().lower().replace(" ", "_").replace("-", "_")
        return v if v in {c.value for c in CameraMove} else "static"


class ShotsPlan(_Loose):
    shots: list[ShotPlan] = Field(min_length=1)


class Draft(BaseModel):
    """Every level of an LLM adaptation; saved as JSON next to the screenplay and editable."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    source_sha256: str
    language: str = "zh"
    episode_seconds: float = 90.0
    ranges: list[tuple[int, int]] = Field(default_factory=list)  # source range of each episode
    summaries: list[ChunkSummary] = Field(default_factory=list)
    chunk_count: int = 0
    logline: LoglinePlan | None = None
    cast: CastPlan | None = None
    outline: list[EpisodePlan] = Field(default_factory=list)
    scenes: dict[str, ScenesPlan] = Field(default_factory=dict)  # episode number -> scenes
    shots: dict[str, ShotsPlan] = Field(default_factory=dict)  # "episode:scene" -> shots
    # parts the model could not write, filled from the offline analysis: "characters", "outline:3",
    # "scenes:2", "lines:2:1", "summaries:0", "logline" -> what filled them ("offline")
    filled: dict[str, str] = Field(default_factory=dict)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Draft:
        from core.screenplay import format_validation_error

        try:
            return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise InputError(f"draft {str(path)!r} does not exist") from e
        except ValueError as e:
            detail = format_validation_error(e) if hasattr(e, "errors") else str(e)  # type: ignore[arg-type]
            raise InputError(f"draft {str(path)!r} is not valid:\n{detail}",
                             hint="fix it by hand or delete it to start over") from e


def clear_level(draft: Draft, level: str, episode: int | None = None) -> None:
    """Forget one level (for one episode, where the level is per episode) so it is generated again."""
    if level not in LEVELS:
        raise InputError(f"unknown level {level!r}", hint=f"use one of {', '.join(LEVELS)}")
    for key in [k for k in draft.filled if fill_key_matches(k, level, episode)]:
        draft.filled.pop(key)
    if level == "summaries":
        draft.summaries, draft.chunk_count = [], 0
    elif level == "logline":
        draft.logline = None
    elif level == "characters":
        draft.cast = None
    elif level == "outline":
        if episode is None:
            draft.outline = []
        else:
            draft.outline = [e for e in draft.outline if e.number != episode]
    elif level == "scenes":
        if episode is None:
            draft.scenes = {}
        else:
            draft.scenes.pop(str(episode), None)
    elif level == "lines":
        if episode is None:
            draft.shots = {}
        else:
            for key in [k for k in draft.shots if k.split(":")[0] == str(episode)]:
                draft.shots.pop(key)



def fill_key(level: str, *parts: int) -> str:
    """The key of one filled part: ``fill_key("lines", 2, 1) == "lines:2:1"``."""
    return ":".join([level, *(str(p) for p in parts)])


def fill_key_matches(key: str, level: str, episode: int | None = None) -> bool:
    name, _sep, rest = key.partition(":")
    if name != level:
        return False
    return episode is None or level not in ("outline", "scenes", "lines") or rest.split(":")[0] == str(episode)
