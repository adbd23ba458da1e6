"""The hash chain: canonical row content, row hashes, and ``verify``.

``row_hash = sha256(prev_hash + canonical)`` where ``canonical`` is the JSON of the row's
content columns plus ``"_table"``, keys sorted, no spaces, UTF-8 as is. Values are only
integers, text and null (SQLite STRICT tables guarantee what comes back is what went in).

A determined forger who rewrites a row *and* every hash after it produces a chain that verifies
on its own; what they cannot do is sign a checkpoint (:mod:`ledger.checkpoints`) with the user's
key. ``verify`` is given the checkpoints and checks that the chain still extends each of them: the
row at each checkpoint's position must hash to its head. ``--expect-head HASH`` still checks that
a head printed on an earlier export is a link of the chain.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import operator
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger import schema

if TYPE_CHECKING:
    from ledger.checkpoints import Checkpoint

_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def canonical(table: str, content: dict[str, Any], *, checked: bool = False) -> str:
    """The canonical JSON of a row. ``checked``: the caller already made sure every value is
    int, str or None (the writer does, once per value)."""
    if not checked:
        for key, value in content.items():
            kind = type(value)
            if kind is not int and kind is not str and value is not None:
                raise TypeError(f"{table}.{key}: only int, str and None go into the ledger, got {kind.__name__}")
    content["_table"] = table
    try:
        return _ENCODER.encode(content)
    finally:
        del content["_table"]


def row_hash(prev_hash: str, table: str, content: dict[str, Any], *, checked: bool = False) -> str:
    return hashlib.sha256((prev_hash + canonical(table, content, checked=checked)).encode("utf-8")).hexdigest()


# The same canonical JSON, built faster from a row's values in column order: the dict is made
# with its keys already sorted, so the encoder need not sort them (the output is identical).
_PLAIN = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_PLAIN_TYPES = {int, str, type(None)}


def _order(table: str) -> tuple[tuple[str, ...], Any]:
    cols = schema.content_columns(table)
    pairs = sorted([(c, i) for i, c in enumerate(cols)] + [("_table", len(cols))])
    return tuple(k for k, _ in pairs), operator.itemgetter(*(i for _, i in pairs))


_ORDER = {t: _order(t) for t in schema.CHAINED}


def canonical_values(table: str, values: Sequence[Any]) -> str:
    """Canonical JSON of a row given its content values in column order (already type-checked)."""
    keys, pick = _ORDER[table]
    return _PLAIN.encode(dict(zip(keys, pick((*values, table)), strict=True)))


def values_hash(prev_hash: str, table: str, values: Sequence[Any]) -> str:
    return hashlib.sha256((prev_hash + canonical_values(table, values)).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainHead:
    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.hash} (seq {self.seq})"


@dataclass(slots=True)
class Problem:
    table: str
    id: int | None
    seq: int | None
    what: str

    def __str__(self) -> str:
        where = f"{self.table} id={self.id}" if self.id is not None else self.table
        if self.seq is not None:
            where += f" (seq {self.seq})"
        return f"{where}: {self.what}"


@dataclass(slots=True)
class VerifyReport:
    ok: bool
    rows: int
    head: ChainHead
    problems: list[Problem] = field(default_factory=list)
    files_checked: int = 0
    expect_head: str = ""
    expect_head_seq: int | None = None
    checkpoints: int = 0  # checkpoints the chain was proved to extend (or not)

    @property
    def first_broken(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def summary(self) -> str:
        if self.ok:
            text = (f"链校验通过 chain verifies: {self.rows} rows, {self.files_checked} archived files, "
                    f"head {self.head.hash} (seq {self.head.seq})")
            if self.expect_head:
                text += f"; expected head found at seq {self.expect_head_seq}"
            if self.checkpoints:
                text += f"; extends all {self.checkpoints} signed checkpoint(s)"
            else:
                text += "; no signed checkpoint to check against (an export or a recorded claim writes one)"
            return text
        first = self.first_broken
        return (f"链校验失败 chain BROKEN: first broken link: {first}"
                + (f" ({len(self.problems) - 1} more problem(s))" if len(self.problems) > 1 else ""))


def current_head(conn: sqlite3.Connection) -> ChainHead:
    best = ChainHead(0, schema.GENESIS)
    for table in schema.CHAINED:
        row = conn.execute(f"SELECT seq, row_hash FROM {table} ORDER BY seq DESC LIMIT 1").fetchone()
        if row and row[0] > best.seq:
            best = ChainHead(int(row[0]), str(row[1]))
    return best


def _rows(conn: sqlite3.Connection, table: str) -> Iterator[tuple[int, str, tuple[Any, ...]]]:
    cols = schema.columns(table)
    cur = conn.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY seq")
    for row in cur:
        yield row[1], table, row


def _norm(sql: str) -> str:
    return " ".join(str(sql).split())


def check_triggers(conn: sqlite3.Connection) -> list[Problem]:
    """Every append-only trigger present with exactly its SQL, and no other trigger on a chained
    table (a same-named trigger that never fires, or one that rewrites rows, is not protection)."""
    out: list[Problem] = []
    present = {str(name): (str(table), _norm(sql)) for name, table, sql in conn.execute(
        "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")}
    expected: dict[str, str] = {}
    for table in schema.CHAINED:
        for name, sql in schema.trigger_sql(table).items():
            expected[name] = sql
            if name not in present:
                out.append(Problem(table, None, None, f"append-only trigger {name} is missing: the table was "
                                                      "opened by another tool and its protection removed"))
            elif present[name][1] != _norm(sql):
                out.append(Problem(table, None, None, f"append-only trigger {name} is not the ledger's: its SQL is "
                                                      f"{present[name][1][:120]!r}, so it may never fire"))
    for name, (table, sql) in sorted(present.items()):
        if name not in expected and table in schema.TABLES:
            out.append(Problem(table, None, None, f"unexpected trigger {name} on a ledger table ({sql[:120]!r}): "
                                                  "another tool added it"))
    return out


def verify(conn: sqlite3.Connection, archive_dir: Path | None = None, *, expect_head: str = "",
           checkpoints: Sequence[Checkpoint] = (), pre_problems: Sequence[Problem] = (),
           max_problems: int = 50) -> VerifyReport:
    """Recompute every link. Reports, in chain order, rows whose content no longer matches
    their hash, links that do not join, missing or duplicate positions, a chain that no longer
    extends a signed checkpoint, append-only triggers missing or changed, and archived files that
    are gone or altered. ``pre_problems`` (unreadable checkpoint sources) come first."""
    problems: list[Problem] = []

    def add(p: Problem) -> None:
        if len(problems) < max_problems:
            problems.append(p)

    for p in [*pre_problems, *check_triggers(conn)]:
        add(p)
    pending = sorted((c for c in checkpoints if c.count > 0), key=lambda c: c.count)
    good_up_to = 0  # the last position a checkpoint vouched for and the chain still matched

    names = {t: schema.columns(t) for t in schema.CHAINED}
    prev_hash = schema.GENESIS
    prev_where = "the start of the chain"
    expected_seq = 1
    rows = 0
    found_expected: int | None = None
    last = ChainHead(0, schema.GENESIS)
    merged = heapq.merge(*(_rows(conn, t) for t in schema.CHAINED), key=lambda r: r[0])
    for seq, table, row in merged:
        rows += 1
        values = row[:-2]
        stored_prev, stored_hash = row[-2], row[-1]
        rid = values[0]
        if seq < expected_seq:
            add(Problem(table, rid, seq, f"position {seq} in the chain is used twice (also by {prev_where})"))
        elif seq > expected_seq:
            missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}..{seq - 1}"
            add(Problem(table, rid, seq, f"chain position(s) {missing} are missing just before this row: "
                                         f"row(s) after {prev_where} were deleted"))
        if stored_prev != prev_hash:
            add(Problem(table, rid, seq, f"link broken: prev_hash is {str(stored_prev)[:16]}… but {prev_where} "
                                         f"has row_hash {prev_hash[:16]}…"))
        bad = [] if set(map(type, values)) <= _PLAIN_TYPES else [
            c for c, v in zip(names[table], values, strict=False)
            if v is not None and type(v) is not int and type(v) is not str]
        if bad:
            recomputed = ""
            add(Problem(table, rid, seq, f"column(s) {', '.join(bad)} hold a value of the wrong type: the row was "
                                         "edited outside the ledger"))
        else:
            recomputed = values_hash(str(stored_prev), table, values)
        if recomputed and recomputed != stored_hash:
            detail = _explain(table, dict(zip(names[table], values, strict=False)))
            add(Problem(table, rid, seq, "content no longer matches its row_hash (stored "
                                         f"{str(stored_hash)[:16]}…, recomputed {recomputed[:16]}…): the row was "
                                         f"edited outside the ledger{detail}"))
        if expect_head and stored_hash == expect_head:
            found_expected = seq
        while pending and pending[0].count <= seq:
            cp = pending.pop(0)
            if cp.count < seq:
                continue  # its position is missing: reported as a gap above
            if stored_hash != cp.head or (recomputed and recomputed != cp.head):
                add(Problem(table, rid, seq, f"the chain no longer extends the {cp.label()}: position {cp.count} "
                                             f"hashes to {str(stored_hash)[:16]}…, the checkpoint signed "
                                             f"{cp.head[:16]}…: rows in positions {good_up_to + 1}..{cp.count} were "
                                             "rewritten after it was signed"))
            else:
                good_up_to = cp.count
        prev_hash = str(stored_hash)
        prev_where = f"{table} id={rid} (seq {seq})"
        expected_seq = max(expected_seq, seq + 1)
        last = ChainHead(seq, prev_hash)

    for cp in pending:
        add(Problem("chain", None, None, f"the chain ends at position {last.seq} but the {cp.label()} vouches for "
                                         f"{cp.count} rows: rows in positions {last.seq + 1}..{cp.count} were removed"))
    files_checked = 0
    if archive_dir is not None:
        for fid, sha, stored in conn.execute("SELECT id, sha256, stored_name FROM files ORDER BY id"):
            path = archive_dir / stored
            files_checked += 1
            if not path.exists():
                add(Problem("files", fid, None, f"archived file {str(path)!r} is missing"))
                continue
            digest = _sha256_file(path)
            if digest != sha:
                add(Problem("files", fid, None, f"archived file {str(path)!r} was altered: sha256 {digest[:16]}… "
                                                f"but the ledger recorded {sha[:16]}…"))
    if expect_head and found_expected is None:
        add(Problem("chain", None, None, f"the expected head {expect_head[:16]}… is not a link of this chain: "
                                         "rows it vouched for were rewritten or removed"))
    return VerifyReport(ok=not problems, rows=rows, head=last, problems=problems, files_checked=files_checked,
                        expect_head=expect_head, expect_head_seq=found_expected, checkpoints=len(checkpoints))


def _explain(table: str, content: dict[str, Any]) -> str:
    """Cheap consistency checks that can say *which* value looks changed."""
    if table == "invoices":
        ex, tax, total = content.get("ex_tax_fen"), content.get("tax_fen"), content.get("total_fen")
        if isinstance(ex, int) and isinstance(tax, int) and isinstance(total, int) and ex + tax != total:
            return f"; total_fen {total} != ex_tax_fen {ex} + tax_fen {tax}"
    return ""


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
