"""The review gate's store: ``review.json`` beside an episode's render.

A person approves a shot, edits its keyframe prompt, asks for a new seed or sets the shot's own
generation settings. Edits take effect on the next synth run (the shot is then pending again
until approved); an approval needs no re-render and is reflected in ``render.json`` at once.
Whether the cut waits for every approval is the ``[review] required`` setting (see
:func:`agents.cut.review_gate`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from agents.synth.schema import RENDER_FILE, EpisodeRender, ReviewStatus
from core.errors import InputError
from core.files import atomic_write_text

REVIEW_FILE = "review.json"

ReviewAction = Literal["approve", "prompt", "regenerate", "set", "reset"]
REVIEW_ACTIONS: tuple[str, ...] = get_args(ReviewAction)

# a shot's own generation settings and their types
SHOT_SETTINGS: dict[str, type] = {"seed": int, "steps": int, "guidance": float, "scheduler": str,
                                  "negative_prompt": str}


@dataclass(slots=True)
class ShotSettings:
    """Generation settings a reviewer set for one shot (None: the run's own)."""

    seed: int | None = None
    steps: int | None = None
    guidance: float | None = None
    scheduler: str | None = None
    negative_prompt: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SHOT_SETTINGS if getattr(self, k) is not None}

    @classmethod
    def from_json(cls, data: Any, where: str) -> ShotSettings:
        if not isinstance(data, dict):
            raise InputError(f"{where}: settings must be an object, got {data!r}")
        out = cls()
        for key, value in data.items():
            _set_setting(out, key, value, where)
        return out


def _set_setting(target: ShotSettings, key: str, value: Any, where: str) -> None:
    if key not in SHOT_SETTINGS:
        raise InputError(f"{where}: unknown shot setting {key!r}", hint=f"use {', '.join(SHOT_SETTINGS)}")
    typ = SHOT_SETTINGS[key]
    try:
        setattr(target, key, typ(value))
    except (TypeError, ValueError) as e:
        raise InputError(f"{where}: shot setting {key}={value!r} is not a {typ.__name__}") from e


@dataclass(slots=True)
class ReviewEntry:
    """One shot's review state."""

    status: ReviewStatus = "pending"
    prompt: str | None = None  # an edited keyframe prompt
    seed_offset: int = 0  # how many times a new seed was asked for
    settings: ShotSettings = field(default_factory=ShotSettings)

    @property
    def approved(self) -> bool:
        return self.status == "approved"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "prompt": self.prompt, "seed_offset": self.seed_offset}
        own = self.settings.to_json()
        if own:
            out["settings"] = own
        return out

    @classmethod
    def from_json(cls, data: Any, where: str) -> ReviewEntry:
        if not isinstance(data, dict):
            raise InputError(f"{where} must be an object, got {data!r}", hint="fix or delete review.json")
        status = data.get("status", "pending")
        if status not in ("pending", "approved"):
            raise InputError(f"{where}: status {status!r} is neither pending nor approved",
                             hint="fix or delete review.json")
        prompt = data.get("prompt")
        try:
            offset = int(data.get("seed_offset", 0))
        except (TypeError, ValueError) as e:
            raise InputError(f"{where}: seed_offset {data.get('seed_offset')!r} is not a whole number") from e
        return cls(status="approved" if status == "approved" else "pending",
                   prompt=str(prompt) if prompt else None, seed_offset=offset,
                   settings=ShotSettings.from_json(data.get("settings", {}), where))


def load_review(out_dir: Path) -> dict[str, ReviewEntry]:
    """Every shot's review state in an episode's synth folder (none yet: empty)."""
    path = out_dir / REVIEW_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as e:
        raise InputError(f"{str(path)!r} is not valid JSON: {e}", hint="fix or delete it (shots go back to pending)") from e
    shots = data.get("shots", {}) if isinstance(data, dict) else None
    if not isinstance(shots, dict):
        raise InputError(f"{str(path)!r} has no \"shots\" object", hint="fix or delete it (shots go back to pending)")
    return {str(k): ReviewEntry.from_json(v, f"{path.name} shot {k!r}") for k, v in shots.items()}


def save_review(out_dir: Path, shots: dict[str, ReviewEntry]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / REVIEW_FILE
    data = {"shots": {k: v.to_json() for k, v in shots.items()}}
    return atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def review_shot(out_dir: Path, shot_id: str, action: str, prompt: str | None = None,
                settings: dict[str, Any] | None = None) -> ReviewEntry:
    """The review gate: ``approve``, ``prompt`` (edit the keyframe prompt), ``regenerate`` (new seed),
    ``set`` (this shot's own seed, steps, guidance, scheduler or negative prompt) or ``reset``.
    Edits take effect on the next synth run; the shot is then pending again until approved."""
    if action not in REVIEW_ACTIONS:
        raise InputError(f"unknown review action {action!r}", hint=", ".join(REVIEW_ACTIONS))
    render_path = out_dir / RENDER_FILE
    render = EpisodeRender.load(render_path) if render_path.exists() else None
    if render is not None and shot_id not in {s.id for s in render.shots}:
        raise InputError(f"shot {shot_id!r} is not in episode {render.episode}",
                         hint=f"shots: {', '.join(s.id for s in render.shots)}")
    shots = load_review(out_dir)
    entry = shots.setdefault(shot_id, ReviewEntry())
    if action == "approve":
        entry.status = "approved"
    elif action == "prompt":
        if not prompt or not prompt.strip():
            raise InputError("an edited prompt must not be empty")
        entry.status, entry.prompt = "pending", prompt.strip()
    elif action == "regenerate":
        entry.status, entry.seed_offset = "pending", entry.seed_offset + 1
    elif action == "set":
        own = ShotSettings(**{k: getattr(entry.settings, k) for k in SHOT_SETTINGS})
        for key, value in (settings or {}).items():
            _set_setting(own, key, value, f"shot {shot_id}")
        entry.status, entry.settings, entry.seed_offset = "pending", own, 0
    else:
        entry.status, entry.prompt, entry.seed_offset, entry.settings = "pending", None, 0, ShotSettings()
    save_review(out_dir, shots)
    if render is not None:  # approval needs no re-render: reflect it in render.json now
        for s in render.shots:
            if s.id == shot_id:
                s.review = entry.status
        render.save(render_path)
    return entry


# --- character reference sheets (series-wide, in synth/characters/sheets.json) -----------------
SHEETS_FILE = "sheets.json"
SHEET_ACTIONS = ("approve", "regenerate")


def load_sheets(sheet_dir: Path) -> dict[str, dict[str, Any]]:
    """The character sheets' review records: name -> {status, by, provider, task_id, sha256, round}."""
    path = sheet_dir / SHEETS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as e:
        raise InputError(f"{str(path)!r} is not valid JSON: {e}",
                         hint="fix or delete it (the sheets are then reviewed again)") from e
    if not isinstance(data, dict):
        raise InputError(f"{str(path)!r} must hold an object of characters")
    return {str(k): v for k, v in data.items() if isinstance(v, dict)}


def save_sheets(sheet_dir: Path, sheets: dict[str, dict[str, Any]]) -> Path:
    sheet_dir.mkdir(parents=True, exist_ok=True)
    path = sheet_dir / SHEETS_FILE
    tmp = sheet_dir / (SHEETS_FILE + ".tmp")
    tmp.write_text(json.dumps(sheets, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def pending_sheets(sheet_dir: Path) -> list[str]:
    """Characters whose sheet is made but not approved."""
    return [name for name, rec in load_sheets(sheet_dir).items() if rec.get("status") == "pending"]


def review_sheet(sheet_dir: Path, name: str, action: str, png: Path | None = None) -> dict[str, Any]:
    """``approve`` a character's reference sheet, or ``regenerate`` it (the picture is removed and
    the next run makes a new one with a new seed, pending review again)."""
    if action not in SHEET_ACTIONS:
        raise InputError(f"unknown sheet review action {action!r}", hint=", ".join(SHEET_ACTIONS))
    sheets = load_sheets(sheet_dir)
    if name not in sheets:
        raise InputError(f"no character sheet for {name!r}",
                         hint=f"sheets: {', '.join(sheets) or 'none yet (run synth with --image PROVIDER:MODEL)'}")
    rec = sheets[name]
    if action == "approve":
        if rec.get("status") == "regenerate":
            raise InputError(f"the sheet of {name!r} is waiting to be made again", hint="run synth first")
        rec.update(status="approved", by="reviewer")
    else:
        rec.update(status="regenerate", by="", round=int(rec.get("round", 0)) + 1)
        if png is not None:
            png.unlink(missing_ok=True)
    save_sheets(sheet_dir, sheets)
    return rec
