"""The SQLite store: connection settings, the write transaction that extends the chain, and
generic appends. Domain logic (invoices, claims) lives in :mod:`ledger.api`.

Durability: WAL journal, ``synchronous=FULL`` (a commit is on disk before it returns), foreign
keys on. Every write runs in ``BEGIN IMMEDIATE`` so two processes never interleave inside the
chain: the second waits (up to ``timeout`` seconds) for the first to commit.
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import random
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger import schema
from ledger.chain import ChainHead, current_head, values_hash
from ledger.errors import LedgerError

log = logging.getLogger(__name__)

_WEB_FOLDERS = {"static", "public", "www", "htdocs", "public_html", "wwwroot", "webroot"}


def now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"


_PLAIN_TYPES = {int, str, type(None)}


def _plain(table: str, column: str, value: Any) -> int | str | None:
    """Booleans become 0/1; anything but int, str and None is refused (floats above all)."""
    if type(value) is bool:
        return int(value)
    if value is None or type(value) in (int, str):
        return value  # type: ignore[no-any-return]
    raise TypeError(f"{table}.{column}: only int, str and None go into the ledger, got {type(value).__name__}")


class Writer:
    """Appends rows inside one transaction, extending the chain from its head."""

    def __init__(self, conn: sqlite3.Connection, head: ChainHead) -> None:
        self.conn = conn
        self.seq = head.seq
        self.hash = head.hash
        self.at = now_utc()
        self._next_id: dict[str, int] = {}
        self.actor = actor()
        self.checkpoint_reasons: list[str] = []  # a signed checkpoint is written after the commit

    def _take_id(self, table: str) -> int:
        if table not in self._next_id:
            row = self.conn.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}").fetchone()
            self._next_id[table] = int(row[0]) + 1
        rid = self._next_id[table]
        self._next_id[table] = rid + 1
        return rid

    def _prepare(self, table: str, values: dict[str, Any], rid: int | None = None) -> tuple[Any, ...]:
        body = schema.body_columns(table)
        if len(values) != len(body):  # same count and every column found below: nothing extra
            raise KeyError(f"{table}: expected columns {list(body)}, got {sorted(values)}")
        try:
            vals = [values[c] for c in body]
        except KeyError as e:
            raise KeyError(f"{table}.{e.args[0]} is missing") from None
        return self._prepare_values(table, vals, rid)

    def _prepare_values(self, table: str, vals: list[Any], rid: int | None = None) -> tuple[Any, ...]:
        """``vals``: the caller's columns in :func:`schema.body_columns` order."""
        if not set(map(type, vals)) <= _PLAIN_TYPES:
            vals = [_plain(table, c, v) for c, v in zip(schema.body_columns(table), vals, strict=True)]
        rid = self._take_id(table) if rid is None else rid
        row = [rid, self.seq + 1, self.at, *vals]
        digest = values_hash(self.hash, table, row)
        row.append(self.hash)
        row.append(digest)
        self.seq += 1
        self.hash = digest
        return tuple(row)

    def append(self, table: str, values: dict[str, Any], *, self_entity: bool = False) -> int:
        """Insert one row and return its id. ``self_entity``: the row starts a new entity
        (``entity_id`` = its own id)."""
        rid = self._take_id(table)
        if self_entity:
            values = {**values, "entity_id": rid}
        row = self._prepare(table, values, rid)
        cols = schema.columns(table)
        self.conn.execute(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", row)
        return rid

    def append_many(self, table: str, rows: list[dict[str, Any]]) -> list[int]:
        prepared = [self._prepare(table, r) for r in rows]
        cols = schema.columns(table)
        self.conn.executemany(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", prepared)
        return [int(r[0]) for r in prepared]

    def append_values(self, table: str, rows: list[list[Any]]) -> None:
        """Bulk append of rows given as value lists in :func:`schema.body_columns` order."""
        width = len(schema.body_columns(table))
        for r in rows:
            if len(r) != width:
                raise KeyError(f"{table}: a row has {len(r)} values, the table takes {width}")
        prepared = [self._prepare_values(table, r) for r in rows]
        cols = schema.columns(table)
        self.conn.executemany(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", prepared)

    def audit(self, action: str, detail: dict[str, Any]) -> int:
        return self.append("audit_log", {
            "actor": self.actor, "action": action,
            "detail": json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str),
        })


class Store:
    """One ledger file and its document archive."""

    def __init__(self, path: str | os.PathLike[str], *, archive_dir: str | os.PathLike[str] | None = None,
                 timeout: float = 60.0, actor: str | None = None) -> None:
        self.path = Path(path).expanduser().resolve()
        self.actor = actor  # who the audit log names for this session's writes (None: the OS login user)
        if self.path.exists() and self.path.is_dir():
            raise LedgerError(f"ledger path {str(self.path)!r} is a folder", hint="give a file name, e.g. ledger.sqlite")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.archive_dir = (Path(archive_dir).expanduser().resolve() if archive_dir
                            else self.path.parent / f"{self.path.stem}-archive")
        served = _WEB_FOLDERS.intersection(p.lower() for p in self.archive_dir.parts)
        if served:
            raise LedgerError(
                f"document archive {str(self.archive_dir)!r} is inside a folder named {sorted(served)[0]!r}, "
                "which web servers commonly publish",
                hint="keep the ledger and its archive outside any web-served folder")
        self.timeout = timeout
        self.conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None, check_same_thread=False)
        self.conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        mode = self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise LedgerError(f"could not switch {str(self.path)!r} to WAL journaling (got {mode})",
                              hint="put the ledger on a local disk, not a network share")
        self.conn.execute("PRAGMA synchronous = FULL")
        self.conn.execute("PRAGMA foreign_keys = ON")
        self._writer: Writer | None = None
        # called after a commit whose writer asked for a checkpoint (set by ledger.api.Ledger)
        self.on_checkpoint: Callable[[list[str]], object] | None = None
        self._init_schema()

    def _init_schema(self) -> None:
        have = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not set(schema.CHAINED) <= have:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in schema.ddl().split(";\n"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
                                  (str(schema.SCHEMA_VERSION),))
                self.conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('ledger_id', ?)",
                                  (uuid.uuid4().hex,))
                self.conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('created_at', ?)", (now_utc(),))
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
        version = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if version is not None and int(version[0]) == 1:
            self._migrate_from_1()
            version = (str(schema.SCHEMA_VERSION),)
        if version is None or int(version[0]) != schema.SCHEMA_VERSION:
            raise LedgerError(f"ledger {str(self.path)!r} has schema version {version and version[0]}, "
                              f"this ReelForge reads version {schema.SCHEMA_VERSION}",
                              hint="use the ReelForge version that wrote it")

    def _migrate_from_1(self) -> None:
        """Version 2 only adds tables (headcounts, releases): the rows and hashes of version 1 stay."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in schema.ddl().split(";\n"):
                if statement.strip():
                    self.conn.execute(statement)
            self.conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(schema.SCHEMA_VERSION),))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        log.info("ledger %s upgraded to schema version %d", self.path, schema.SCHEMA_VERSION)

    def ledger_id(self) -> str:
        return self.meta("ledger_id")

    def meta(self, key: str) -> str:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else ""

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def write(self) -> Iterator[Writer]:
        """A write transaction; nested calls join the outer one."""
        if self._writer is not None:
            yield self._writer
            return
        self._begin_immediate()
        writer = Writer(self.conn, current_head(self.conn))
        if self.actor:
            writer.actor = self.actor
        self._writer = writer
        try:
            yield writer
            self.conn.execute("COMMIT")
        except BaseException:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error as e:  # the connection may already have rolled back
                log.debug("rollback after error: %s", e)
            raise
        finally:
            self._writer = None
        if writer.checkpoint_reasons and self.on_checkpoint is not None:
            self.on_checkpoint(writer.checkpoint_reasons)

    def _begin_immediate(self) -> None:
        """Take the write lock. SQLite's own busy handler backs off to 100 ms sleeps, so a writer
        that commits back to back would starve another; polling every millisecond or two keeps
        concurrent writers taking turns."""
        deadline = time.monotonic() + self.timeout
        self.conn.execute("PRAGMA busy_timeout = 0")
        try:
            while True:
                try:
                    self.conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as e:
                    if "locked" not in str(e) and "busy" not in str(e):
                        raise
                    if time.monotonic() > deadline:
                        raise LedgerError(f"the ledger {str(self.path)!r} is busy: another process has held its "
                                          f"write lock for more than {self.timeout:.0f} s",
                                          hint="wait for the other import or export to finish") from e
                    time.sleep(random.uniform(0.0005, 0.002))
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")

    def in_write(self) -> bool:
        return self._writer is not None

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several queries (joins a write transaction if one is open)."""
        if self._writer is not None or self.conn.in_transaction:
            yield self.conn
            return
        self.conn.execute("BEGIN")
        try:
            yield self.conn
        finally:
            self.conn.execute("COMMIT")

    def head(self) -> ChainHead:
        if self._writer is not None:
            return ChainHead(self._writer.seq, self._writer.hash)
        return current_head(self.conn)


    def query(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, args)
        names = [d[0] for d in cur.description]
        return [_Row(names, r) for r in cur.fetchall()]


class _Row(dict):  # type: ignore[type-arg]
    """A query row addressable by column name."""

    def __init__(self, names: list[str], values: tuple[Any, ...]) -> None:
        super().__init__(zip(names, values, strict=True))
