"""The task journal: every paid request, written into the project before anything waits on it.

``PROJECT/providers/journal.sqlite`` (SQLite, WAL, ``synchronous=FULL``) holds one row per
(job, attempt): the provider, the request hash, our idempotency key, the provider's task id,
the state, result URLs, the downloaded files (content hashes) and the provider's usage report.
The order of writes is what makes a kill at any moment safe:

1. a row in state ``submitting`` (with the idempotency key) is committed *before* the create call;
2. the task id is committed the moment the provider returns it, *before* the first poll;
3. results are downloaded as soon as the provider says they are ready (URLs expire), hashed and
   moved into ``PROJECT/providers/files/`` (content-addressed), then the row says ``done``.

A run started again reads the journal: ``done`` rows are reused (nothing is sent), rows with a
task id are polled again, a ``submitting`` row is looked up by its idempotency key where the
API has one (Kling, ComfyUI) and otherwise reported as ``unknown`` (the call may have been
billed) before it is sent again. No key or token is ever stored here.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.paths import safe_join
from pipelines.providers.base import Output, Task

JOURNAL_VERSION = 1
FOLDER = "providers"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    job TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    kind TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    task_id TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    provider_status TEXT NOT NULL DEFAULT '',
    outputs TEXT NOT NULL DEFAULT '[]',
    files TEXT NOT NULL DEFAULT '[]',
    hashes TEXT NOT NULL DEFAULT '[]',
    report TEXT NOT NULL DEFAULT '{}',
    error TEXT NOT NULL DEFAULT '',
    submitted_at REAL NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL DEFAULT 0,
    usage_recorded INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (job, attempt)
);
CREATE INDEX IF NOT EXISTS tasks_status ON tasks(status);
"""

_COLUMNS = ("job", "attempt", "provider", "model", "kind", "request_hash", "idempotency_key", "task_id", "status",
            "provider_status", "outputs", "files", "hashes", "report", "error", "submitted_at", "updated_at")


def _row_to_task(row: sqlite3.Row) -> Task:
    outputs = [Output(url=o.get("url", ""), suffix=o.get("suffix", ".bin"), via_api=bool(o.get("via_api")))
               for o in json.loads(row["outputs"])]
    return Task(job=row["job"], provider=row["provider"], model=row["model"], kind=row["kind"],
                request_hash=row["request_hash"], idempotency_key=row["idempotency_key"], attempt=row["attempt"],
                task_id=row["task_id"], status=row["status"], provider_status=row["provider_status"],
                outputs=outputs, files=json.loads(row["files"]), hashes=json.loads(row["hashes"]),
                report=json.loads(row["report"]), error=row["error"], submitted_at=row["submitted_at"],
                updated_at=row["updated_at"])


class Journal:
    """The project's task journal (thread-safe: one connection behind a lock)."""

    def __init__(self, project: str | os.PathLike[str]) -> None:
        self.root = Path(project)
        self.folder = self.root / FOLDER
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / "journal.sqlite"
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        with self._conn:
            self._conn.executescript(_SCHEMA)
            self._conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES('version', ?)", (str(JOURNAL_VERSION),))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- rows ----------------------------------------------------------------------------------
    def save(self, task: Task) -> None:
        """Insert or update ``task``; committed (and synced to disk) when this returns."""
        task.updated_at = time.time()
        values: dict[str, Any] = {
            "job": task.job, "attempt": task.attempt, "provider": task.provider, "model": task.model,
            "kind": task.kind, "request_hash": task.request_hash, "idempotency_key": task.idempotency_key,
            "task_id": task.task_id, "status": task.status, "provider_status": task.provider_status,
            "outputs": json.dumps([o.to_json() for o in task.outputs], ensure_ascii=False),
            "files": json.dumps(task.files), "hashes": json.dumps(task.hashes),
            "report": json.dumps(task.report, ensure_ascii=False, sort_keys=True, default=str),
            "error": task.error, "submitted_at": task.submitted_at, "updated_at": task.updated_at,
        }
        cols = ", ".join(_COLUMNS)
        marks = ", ".join("?" for _ in _COLUMNS)
        updates = ", ".join(f"{c}=excluded.{c}" for c in _COLUMNS[2:])
        with self._lock, self._conn:
            self._conn.execute(f"INSERT INTO tasks({cols}) VALUES({marks}) ON CONFLICT(job, attempt) DO UPDATE SET "
                               f"{updates}", [values[c] for c in _COLUMNS])

    def latest(self, job: str) -> Task | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM tasks WHERE job = ? ORDER BY attempt DESC LIMIT 1",
                                     (job,)).fetchone()
        return _row_to_task(row) if row else None

    def attempts(self, job: str) -> list[Task]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM tasks WHERE job = ? ORDER BY attempt", (job,)).fetchall()
        return [_row_to_task(r) for r in rows]

    def tasks(self, *statuses: str) -> Iterator[Task]:
        sql = "SELECT * FROM tasks"
        args: tuple[str, ...] = ()
        if statuses:
            sql += f" WHERE status IN ({', '.join('?' for _ in statuses)})"
            args = statuses
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY submitted_at, job, attempt", args).fetchall()
        for r in rows:
            yield _row_to_task(r)

    def usage_recorded(self, job: str, attempt: int) -> bool:
        with self._lock:
            row = self._conn.execute("SELECT usage_recorded FROM tasks WHERE job = ? AND attempt = ?",
                                     (job, attempt)).fetchone()
        return bool(row and row[0])

    def mark_usage_recorded(self, job: str, attempt: int) -> None:
        with self._lock, self._conn:
            self._conn.execute("UPDATE tasks SET usage_recorded = 1 WHERE job = ? AND attempt = ?", (job, attempt))

    # -- files ---------------------------------------------------------------------------------
    def store(self, tmp: Path, sha256: str, suffix: str) -> str:
        """Move a downloaded file to its content address; the path relative to the project."""
        suffix = suffix if suffix.startswith(".") and suffix[1:].isalnum() and len(suffix) <= 6 else ".bin"
        rel = f"{FOLDER}/files/{sha256[:2]}/{sha256}{suffix}"
        dest = safe_join(self.root, rel)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            tmp.unlink(missing_ok=True)
        else:
            os.replace(tmp, dest)
        return rel

    def tmp_dir(self) -> Path:
        path = self.folder / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def file(self, rel: str) -> Path:
        return safe_join(self.root, rel)
