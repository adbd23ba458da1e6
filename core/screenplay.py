"""The typed screenplay: Series -> Episode -> Scene -> Shot -> Line.

Plain data that crosses every boundary of the chain (script agent writes it, the synth and cut
agents read it, a person may edit the JSON in between). JSON field names are fixed:
``characters`` (``name``, ``aliases``), ``episodes``, ``scenes``, ``shots``, ``lines``
(``speaker``, ``text``, ``kind``). JSON is UTF-8 with Chinese written as is.

Ids become file names (``synth/ep01/shots/<shot id>.mp4``), so every shot and scene id is checked
at load with :func:`core.paths.check_name` (a safe single path component), and ids that would
name the same file twice in one episode (``k01`` twice, or ``K01`` and ``k01`` on a
case-insensitive disk) are refused by name.

Source spans are character offsets into the novel text as decoded by
``agents.script`` (BOM removed, line endings normalised to ``\\n``), so every line can be traced
back: ``novel_text[span.start:span.end]`` contains the line's text.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.errors import InputError
from core.files import atomic_write_text, storage_error
from core.paths import check_name

SCHEMA_VERSION = 1


def _safe_id(value: str, field: str) -> str:
    """``value`` if it can be a file name, else a ValueError pydantic reports with its JSON path."""
    try:
        return check_name(value, field)
    except InputError as e:
        raise ValueError(f"{e.message} ({e.hint})") from None


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_enum_values=True)


class LineKind(StrEnum):
    DIALOGUE = "dialogue"
    OS = "os"  # off-screen (画外音, character present in the scene but not seen)
    VO = "vo"  # voice-over (旁白式内心独白)
    NARRATION = "narration"


class ShotSize(StrEnum):
    EXTREME_WIDE = "ELS"
    WIDE = "LS"
    MEDIUM = "MS"
    MEDIUM_CLOSE = "MCU"
    CLOSE = "CU"
    EXTREME_CLOSE = "ECU"


class CameraMove(StrEnum):
    STATIC = "static"
    PUSH_IN = "push_in"
    PULL_OUT = "pull_out"
    PAN_LEFT = "pan_left"
    PAN_RIGHT = "pan_right"
    TILT_UP = "tilt_up"
    TILT_DOWN = "tilt_down"
    HANDHELD = "handheld"


class SourceSpan(_Model):
    chapter: int = Field(ge=0, description="1-based chapter index; 0 for text before the first chapter")
    start: int = Field(ge=0, description="offset of the first character in the decoded novel")
    end: int = Field(ge=0, description="offset one past the last character")

    @model_validator(mode="after")
    def _ordered(self) -> SourceSpan:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self


class Character(_Model):
    name: str = Field(min_length=1)
    aliases: list[str] = Field(default_factory=list)
    description: str = ""
    appearance: str = ""
    voice: str = ""  # a voice id for the TTS engine; empty -> engine default for this character
    role: str = "supporting"  # lead | supporting | extra
    mentions: int = 0


class Location(_Model):
    name: str = Field(min_length=1)
    description: str = ""
    int_ext: str = "INT"


class Line(_Model):
    speaker: str = ""  # empty or "旁白" for narration
    text: str = Field(min_length=1, max_length=1000)
    kind: LineKind = LineKind.DIALOGUE
    source: SourceSpan | None = None
    emotion: str = ""


class Shot(_Model):
    id: str = Field(min_length=1)
    size: ShotSize = ShotSize.MEDIUM
    camera: CameraMove = CameraMove.STATIC
    visual_prompt: str = ""
    seconds: float = Field(default=3.0, gt=0, le=600, description="planned length; synthesis sets the final one")
    lines: list[Line] = Field(default_factory=list)
    sfx: list[str] = Field(default_factory=list)
    characters: list[str] = Field(default_factory=list)
    source: SourceSpan | None = None

    @field_validator("id")
    @classmethod
    def _id_is_a_file_name(cls, value: str) -> str:
        return _safe_id(value, "shot id")


class Scene(_Model):
    id: str = Field(min_length=1)
    int_ext: str = "INT"  # INT | EXT | INT/EXT
    place: str = ""
    time_of_day: str = "day"  # day | night | dawn | dusk | unspecified
    characters: list[str] = Field(default_factory=list)
    summary: str = ""
    shots: list[Shot] = Field(default_factory=list)
    source: SourceSpan | None = None

    @field_validator("id")
    @classmethod
    def _id_is_a_file_name(cls, value: str) -> str:
        return _safe_id(value, "scene id")


class Episode(_Model):
    number: int = Field(ge=1, le=9999)
    title: str = ""
    target_seconds: float = Field(default=90.0, gt=0, le=7200)
    hook: str = ""  # opening hook
    cliffhanger: str = ""  # closing cliffhanger
    paywall: bool = False  # 付费卡点: the episode ends on a pay point
    scenes: list[Scene] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_shot_ids(self) -> Episode:
        # each shot's files are named by its id in one folder per episode; compare case-folded,
        # because "K01" and "k01" are one file on macOS and Windows disks
        seen: dict[str, str] = {}
        dups: list[str] = []
        for shot in self.shots():
            key = shot.id.casefold()
            if key in seen and shot.id not in dups:
                dups.append(shot.id if seen[key] == shot.id else f"{seen[key]}/{shot.id}")
            seen.setdefault(key, shot.id)
        if dups:
            raise ValueError(f"episode {self.number} has duplicate shot ids: {', '.join(dups)}; "
                             "each shot needs its own id")
        return self

    def shots(self) -> list[Shot]:
        return [shot for scene in self.scenes for shot in scene.shots]


class SourceInfo(_Model):
    path: str = ""
    sha256: str = ""
    encoding: str = ""
    chapters: list[str] = Field(default_factory=list)  # chapter titles in order


class Series(_Model):
    schema_version: int = SCHEMA_VERSION
    title: str = Field(min_length=1)
    logline: str = ""
    genre: str = ""
    language: str = "zh"
    characters: list[Character] = Field(default_factory=list)
    locations: list[Location] = Field(default_factory=list)
    episodes: list[Episode] = Field(default_factory=list)
    source: SourceInfo = Field(default_factory=SourceInfo)
    engine: str = ""  # which script engine wrote it

    @model_validator(mode="after")
    def _unique_episode_numbers(self) -> Series:
        numbers = [ep.number for ep in self.episodes]
        dups = sorted({n for n in numbers if numbers.count(n) > 1})
        if dups:
            raise ValueError(f"duplicate episode numbers: {', '.join(map(str, dups))}; each episode needs its own")
        return self

    def episode(self, number: int) -> Episode:
        for ep in self.episodes:
            if ep.number == number:
                return ep
        raise InputError(
            f"episode {number} is not in the screenplay",
            hint=f"episodes present: {[e.number for e in self.episodes]}",
        )

    def character(self, name: str) -> Character | None:
        for ch in self.characters:
            if ch.name == name or name in ch.aliases:
                return ch
        return None

    # --- JSON -----------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n"

    def save(self, path: str | Path) -> Path:
        # atomic: a killed run or a full disk never leaves half a screenplay
        return atomic_write_text(path, self.to_json())

    @classmethod
    def from_json(cls, text: str, *, origin: str = "screenplay") -> Series:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"{origin} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from e
        return cls.from_data(data, origin=origin)

    @classmethod
    def from_data(cls, data: Any, *, origin: str = "screenplay") -> Series:
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise InputError(f"{origin} is not a valid screenplay:\n{format_validation_error(e)}") from e

    @classmethod
    def load(cls, path: str | Path) -> Series:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError as e:
            raise InputError(f"screenplay {str(path)!r} does not exist", hint="run `reelforge script` first") from e
        except UnicodeDecodeError as e:
            raise InputError(f"screenplay {str(path)!r} is not UTF-8 text") from e
        except OSError as e:
            raise storage_error(e, "read", path) from e
        return cls.from_json(text, origin=str(path))


def format_validation_error(err: ValidationError, limit: int = 12) -> str:
    """One line per problem, each with the JSON path to the bad value (``episodes[0].scenes[2].id``)."""
    rows = []
    for item in err.errors()[:limit]:
        path = ""
        for part in item["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        rows.append(f"  {path or '<root>'}: {item['msg']} (got {item.get('input')!r:.60})")
    more = len(err.errors()) - limit
    if more > 0:
        rows.append(f"  ... and {more} more")
    return "\n".join(rows)


def json_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`Series`, for editors and LLM structured output."""
    return Series.model_json_schema()
