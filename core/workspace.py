"""Project workspace: one folder per drama, every stage's inputs and outputs, and a manifest.

Layout (fixed, so tools and people find things)::

    PROJECT/
      project.json          settings the project was made with
      manifest.json         per stage: input/output content hashes, params, status
      source/               the novel as given (original bytes)
      screenplay.json       script stage output (UTF-8, Chinese as is) - editable
      synth/epNN/           per-shot clips, audio and the episode timeline
      out/epNN.mp4 .srt     cut stage output
      enhance/              enhanced renders
      usage.sqlite          usage records of every run
      logs/                 one log file per run

A stage is *fresh* when its recorded input hashes and parameters equal the current ones and
its outputs exist: it is skipped on the next run. An output edited by hand after its stage
finished is kept (never overwritten); the stages that read it see a changed input and re-run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import ReelForgeError, WorkspaceError
from core.files import atomic_write_text, pid_alive, storage_error, sweep_parts

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def params_hash(params: Mapping[str, Any]) -> str:
    return sha256_text(json.dumps(params, sort_keys=True, ensure_ascii=False, default=str))


def _write_json_atomic(path: Path, data: Any) -> None:
    # a temporary file renamed over the real one, removed again when the disk is full
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True, slots=True)
class StageState:
    fresh: bool
    reason: str  # why it must (re)run, or "up to date"
    edited_outputs: tuple[str, ...] = ()


class Workspace:
    """A project folder. Cheap to construct; creates the folder on ``create()``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()

    # --- fixed paths ----------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @property
    def project_file(self) -> Path:
        return self.root / "project.json"

    @property
    def screenplay_path(self) -> Path:
        return self.root / "screenplay.json"

    @property
    def usage_db(self) -> Path:
        return self.root / "usage.sqlite"

    @property
    def source_dir(self) -> Path:
        return self.root / "source"

    @property
    def out_dir(self) -> Path:
        return self.root / "out"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def synth_dir(self, episode: int) -> Path:
        return self.root / "synth" / f"ep{episode:02d}"

    def episode_video(self, episode: int) -> Path:
        return self.out_dir / f"ep{episode:02d}.mp4"

    def episode_srt(self, episode: int) -> Path:
        return self.out_dir / f"ep{episode:02d}.srt"

    def enhanced_video(self, episode: int, scale: int) -> Path:
        return self.root / "enhance" / f"ep{episode:02d}_x{scale}.mp4"

    def rel(self, path: str | os.PathLike[str]) -> str:
        p = Path(path).resolve()
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            return str(p)

    def abs(self, rel: str) -> Path:
        p = Path(rel)
        return p if p.is_absolute() else self.root / p

    # --- life cycle -----------------------------------------------------------------------
    def exists(self) -> bool:
        return self.project_file.exists()

    def create(self, settings: Mapping[str, Any] | None = None, *, adopt: bool = False,
               ignore: Iterable[str | os.PathLike[str]] = ()) -> Workspace:
        """Make the folder a project (or update its settings).

        An existing folder that holds files but no ``project.json`` is refused unless ``adopt``:
        a project writes and replaces files under fixed names, and those must not be the user's.
        ``ignore`` names files that do not count (the novel being imported, placed there first).
        When adopted, the files already there are listed in ``project.json`` and are never
        deleted or overwritten (:meth:`foreign`).
        """
        if self.root.exists() and not self.root.is_dir():
            raise WorkspaceError(f"project path {str(self.root)!r} exists and is not a folder")
        adopted: list[str] = []
        if not self.project_file.exists() and self.root.is_dir():
            skip = {Path(p).resolve() for p in ignore}
            present = sorted(self.rel(p) for p in _walk_files(self.root, limit=10_000) if p.resolve() not in skip)
            if present and not adopt:
                shown = ", ".join(present[:5]) + (f" and {len(present) - 5} more" if len(present) > 5 else "")
                raise WorkspaceError(
                    f"folder {str(self.root)!r} is not empty and is not a ReelForge project (it holds {shown})",
                    hint="choose a new or empty folder for the project, or pass --adopt to make this folder one "
                         "(files already there are kept and never overwritten)")
            adopted = present
        try:
            for sub in ("source", "out", "logs", "synth"):
                (self.root / sub).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise storage_error(e, "create the project folder", self.root) from e
        if not self.project_file.exists():
            data: dict[str, Any] = {
                "format": "reelforge-project",
                "version": MANIFEST_VERSION,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "settings": dict(settings or {}),
            }
            if adopted:
                data["adopted_files"] = adopted
                log.warning("folder %s made a project: its %d files are kept and never overwritten",
                            self.root, len(adopted))
            _write_json_atomic(self.project_file, data)
        elif settings:
            data = self.project()
            data.setdefault("settings", {}).update(settings)
            _write_json_atomic(self.project_file, data)
        if not self.manifest_path.exists():
            _write_json_atomic(self.manifest_path, {"version": MANIFEST_VERSION, "stages": {}})
        self._sweep_temp()
        return self

    def _sweep_temp(self) -> None:
        """Remove temporary files a killed run left in the project folder (``.NAME.PID.tmp``)."""
        sweep_parts(self.manifest_path)

    def foreign(self, paths: Iterable[str | os.PathLike[str]]) -> list[str]:
        """Of ``paths`` (files or folders), the files that were here before the project: never ours to replace."""
        adopted = self.project().get("adopted_files", []) if self.project_file.exists() else []
        if not adopted:
            return []
        out = []
        for item in paths:
            rel = self.rel(item)
            out += [a for a in adopted if a == rel or a.startswith(rel.rstrip("/") + "/")]
        return sorted(set(out))

    def source_record(self) -> dict[str, str]:
        """The novel this project imported into ``source/`` (name and sha256), if recorded."""
        rec = self.project().get("source", {}) if self.project_file.exists() else {}
        return dict(rec) if isinstance(rec, dict) else {}

    def set_source_record(self, name: str, sha256: str) -> None:
        data = self.project()
        data["source"] = {"name": name, "sha256": sha256}
        _write_json_atomic(self.project_file, data)

    def require(self) -> Workspace:
        if not self.exists():
            raise WorkspaceError(
                f"{str(self.root)!r} is not a ReelForge project (no project.json)",
                hint="create one with `reelforge make NOVEL --project DIR` or `reelforge script NOVEL --project DIR`",
            )
        return self

    def project(self) -> dict[str, Any]:
        try:
            return json.loads(self.project_file.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise WorkspaceError(f"{str(self.project_file)!r} is missing") from e
        except json.JSONDecodeError as e:
            raise WorkspaceError(f"{str(self.project_file)!r} is not valid JSON: {e}") from e

    def settings(self) -> dict[str, Any]:
        return dict(self.project().get("settings", {}))

    # --- manifest -------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"version": MANIFEST_VERSION, "stages": {}}
        except json.JSONDecodeError as e:
            raise WorkspaceError(
                f"manifest {str(self.manifest_path)!r} is damaged: {e}",
                hint="delete manifest.json to re-run every stage; outputs are kept",
            ) from e
        data.setdefault("stages", {})
        return data

    def _hash_inputs(self, inputs: Iterable[str | os.PathLike[str]],
                     read: Mapping[str, str] | None = None) -> dict[str, str]:
        """sha256 of each input; an input in ``read`` (see :meth:`read_input`) keeps the hash of the
        bytes the stage read, not of the file as it is now."""
        known = {self.rel(k): v for k, v in (read or {}).items()}
        out: dict[str, str] = {}
        for item in inputs:
            path = Path(item)
            rel = self.rel(path)
            if rel in known:
                out[rel] = known[rel]
                continue
            if not path.exists():
                raise WorkspaceError(f"input {str(path)!r} of a stage does not exist")
            out[rel] = sha256_file(path)
        return out

    def read_input(self, path: str | os.PathLike[str]) -> tuple[bytes, str]:
        """The bytes of a stage input and their sha256, read once: a stage records the hash of what it
        read, so an edit made while it runs is seen by the next run instead of being marked done."""
        data = Path(path).read_bytes()
        return data, hashlib.sha256(data).hexdigest()

    def stage_state(self, stage: str, inputs: Iterable[str | os.PathLike[str]],
                    params: Mapping[str, Any], read: Mapping[str, str] | None = None) -> StageState:
        rec = self.manifest()["stages"].get(stage)
        if not rec or rec.get("status") != "done":
            return StageState(False, "never finished" if not rec else f"last run {rec.get('status')}")
        if rec.get("params") != params_hash(params):
            return StageState(False, "settings changed")
        current = self._hash_inputs(inputs, read)
        if rec.get("inputs") != current:
            changed = sorted(k for k in set(current) | set(rec.get("inputs", {}))
                             if current.get(k) != rec.get("inputs", {}).get(k))
            return StageState(False, f"inputs changed: {', '.join(changed)}")
        edited = []
        for rel, digest in rec.get("outputs", {}).items():
            path = self.abs(rel)
            if not path.exists():
                return StageState(False, f"output {rel} is missing")
            if sha256_file(path) != digest:
                edited.append(rel)
        return StageState(True, "up to date", tuple(edited))

    def mark_running(self, stage: str, run_id: str) -> None:
        data = self.manifest()
        rec = data["stages"].get(stage, {})
        rec.update({"status": "running", "run_id": run_id, "started_at": datetime.now(UTC).isoformat(timespec="seconds")})
        data["stages"][stage] = rec
        _write_json_atomic(self.manifest_path, data)

    def mark_done(self, stage: str, run_id: str, inputs: Iterable[str | os.PathLike[str]],
                  params: Mapping[str, Any], outputs: Iterable[str | os.PathLike[str]],
                  report: Mapping[str, Any] | None = None, read: Mapping[str, str] | None = None) -> None:
        """Record a finished stage; ``read`` holds the hashes of inputs as the stage read them."""
        data = self.manifest()
        data["stages"][stage] = {
            "status": "done",
            "run_id": run_id,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "params": params_hash(params),
            "inputs": self._hash_inputs(inputs, read),
            "outputs": {self.rel(p): sha256_file(p) for p in outputs},
            "report": dict(report or {}),
        }
        _write_json_atomic(self.manifest_path, data)

    def mark_failed(self, stage: str, run_id: str, error: str) -> None:
        """Record a failure; best effort, because it runs while another error (a full disk) is raised."""
        try:
            data = self.manifest()
            rec = data["stages"].get(stage, {})
            rec.update({"status": "failed", "run_id": run_id, "error": error})
            data["stages"][stage] = rec
            _write_json_atomic(self.manifest_path, data)
        except (OSError, ReelForgeError) as e:
            # the stage stays "running" in the manifest; a later run re-runs it all the same
            log.warning("could not record the failure of %s in the manifest: %s", stage, e)

    def invalidate(self, stage: str) -> None:
        """Force ``stage`` to re-run next time (outputs stay on disk)."""
        data = self.manifest()
        if stage in data["stages"]:
            data["stages"][stage]["status"] = "invalidated"
            _write_json_atomic(self.manifest_path, data)

    # --- one writer at a time -------------------------------------------------------------
    def lock(self) -> ProjectLock:
        return ProjectLock(self.root / ".lock")


class ProjectLock:
    """A lock file holding the writer's pid; a lock left by a dead process is taken over."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> ProjectLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text().strip() or "0")
                except (ValueError, FileNotFoundError):
                    pid = 0
                if pid and _alive(pid) and pid != os.getpid():
                    raise WorkspaceError(
                        f"project {str(self.path.parent)!r} is in use by process {pid}",
                        hint="wait for that run to finish, or stop it",
                    ) from None
                log.warning("removing stale project lock left by process %s", pid or "?")
                self.path.unlink(missing_ok=True)
                time.sleep(0.01)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            return self
        raise WorkspaceError(f"could not lock project {str(self.path.parent)!r}")

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)


_OS_LITTER = {".DS_Store", "Thumbs.db", "desktop.ini"}


def _walk_files(root: Path, limit: int) -> list[Path]:
    """Files under ``root`` (hidden ones too), at most ``limit``: enough to say it is not empty."""
    out: list[Path] = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            if name in _OS_LITTER:
                continue
            out.append(Path(dirpath) / name)
            if len(out) >= limit:
                return out
    return out


def _alive(pid: int) -> bool:
    return pid_alive(pid)
