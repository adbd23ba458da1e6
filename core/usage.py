"""Usage records: what ran, with which engine and model, on which device, for how long.

Every agent run appends records to ``PROJECT/usage.sqlite``. The ledger
(``reelforge ledger import-usage PROJECT``) prices and imports them idempotently by
``(run_id, event_id)``. Quantities are exact decimal strings, never floats.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

USAGE_SCHEMA_VERSION = 1

# Units a record may carry. The ledger's price book prices these.
UNITS = (
    "cpu_second",  # wall seconds of local CPU work
    "gpu_second",  # wall seconds of local GPU work
    "input_token",
    "output_token",
    "cached_token",
    "image",
    "video_second",
    "audio_second",
    "api_call",
    "character",  # characters sent to a TTS service
    "use",  # a licensed asset used (font, voice): quantity 1, for the licence trail
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    command TEXT NOT NULL DEFAULT '',
    host TEXT NOT NULL DEFAULT '',
    version TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS usage_events (
    event_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(run_id),
    created_at TEXT NOT NULL,
    stage TEXT NOT NULL,
    engine TEXT NOT NULL,
    model TEXT NOT NULL DEFAULT '',
    device TEXT NOT NULL DEFAULT 'cpu',
    unit TEXT NOT NULL,
    quantity TEXT NOT NULL,
    seconds TEXT NOT NULL DEFAULT '0',
    tokens_in INTEGER NOT NULL DEFAULT 0,
    tokens_out INTEGER NOT NULL DEFAULT 0,
    tokens_cached INTEGER NOT NULL DEFAULT 0,
    vendor TEXT NOT NULL DEFAULT '',
    licence TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS usage_events_run ON usage_events(run_id);
"""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _dec(value: Decimal | int | str) -> str:
    if isinstance(value, float):  # floats would drift; refuse them loudly
        raise TypeError(f"usage quantities must be Decimal, int or str, got float {value!r}")
    return str(Decimal(value))


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One usage event. ``quantity`` is in ``unit``; ``seconds`` is wall time spent."""

    stage: str
    engine: str
    unit: str
    quantity: Decimal
    model: str = ""
    device: str = "cpu"
    seconds: Decimal = Decimal(0)
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0
    vendor: str = ""  # who gets paid; empty for local work
    licence: str = ""  # licence of the model, voice or font used
    detail: dict[str, Any] = field(default_factory=dict)
    event_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"unknown usage unit {self.unit!r}; known: {', '.join(UNITS)}")
        for name in ("quantity", "seconds"):
            value = getattr(self, name)
            if isinstance(value, float):
                raise TypeError(f"{name} must be Decimal, got float {value!r}")
            if not isinstance(value, Decimal):
                object.__setattr__(self, name, Decimal(value))


def seconds_since(start: float, end: float) -> Decimal:
    """Wall-clock seconds as an exact Decimal rounded to milliseconds (from ``time.perf_counter``)."""
    return Decimal(int(round((end - start) * 1000))) / 1000


class UsageStore:
    """Append-only writer/reader for a project's ``usage.sqlite``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        with self._conn:
            self._conn.executescript(_SCHEMA)
            self._conn.execute(
                "INSERT OR IGNORE INTO meta(key, value) VALUES('schema_version', ?)", (str(USAGE_SCHEMA_VERSION),)
            )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> UsageStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start_run(self, command: str = "", run_id: str | None = None, version: str = "") -> str:
        rid = run_id or datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]
        with self._conn:
            self._conn.execute(
                "INSERT OR IGNORE INTO runs(run_id, started_at, command, host, version) VALUES(?,?,?,?,?)",
                (rid, _now(), command, socket.gethostname(), version),
            )
        return rid

    def add(self, run_id: str, records: Iterable[UsageRecord]) -> int:
        rows = [
            (r.event_id, run_id, _now(), r.stage, r.engine, r.model, r.device, r.unit, _dec(r.quantity),
             _dec(r.seconds), r.tokens_in, r.tokens_out, r.tokens_cached, r.vendor, r.licence,
             json.dumps(r.detail, ensure_ascii=False, sort_keys=True))
            for r in records
        ]
        with self._conn:
            self._conn.executemany(
                "INSERT INTO usage_events(event_id, run_id, created_at, stage, engine, model, device, unit,"
                " quantity, seconds, tokens_in, tokens_out, tokens_cached, vendor, licence, detail)"
                " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
        return len(rows)

    def events(self, run_id: str | None = None) -> Iterator[dict[str, Any]]:
        sql = "SELECT * FROM usage_events"
        args: tuple[str, ...] = ()
        if run_id:
            sql += " WHERE run_id = ?"
            args = (run_id,)
        cur = self._conn.execute(sql + " ORDER BY rowid", args)
        names = [d[0] for d in cur.description]
        for row in cur:
            item = dict(zip(names, row, strict=True))
            item["quantity"] = Decimal(item["quantity"])
            item["seconds"] = Decimal(item["seconds"])
            item["detail"] = json.loads(item["detail"])
            yield item

    def runs(self) -> list[dict[str, Any]]:
        cur = self._conn.execute("SELECT run_id, started_at, command, host, version FROM runs ORDER BY started_at")
        return [dict(zip(("run_id", "started_at", "command", "host", "version"), row, strict=True)) for row in cur]
