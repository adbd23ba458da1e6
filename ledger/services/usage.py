"""Usage import: a project's ``usage.sqlite`` (written by every agent run through core.usage)
priced from the ledger's price book and appended in bulk. Idempotent by (run id, event id).

Usage estimates are for reconciliation only; claims are computed from invoices.
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from core.usage import UNITS
from ledger import schema
from ledger.errors import FieldError, LedgerError
from ledger.models import CHINA_TZ, UsageImport
from ledger.pricebook import default_price_book_path
from ledger.services.master import MasterData
from ledger.services.prices import PriceService
from ledger.store import Store

log = logging.getLogger(__name__)

_U_COLUMNS = schema.body_columns("usage_events")
_U_COMPANY, _U_PROJECT, _U_RUN, _U_EVENT = (_U_COLUMNS.index(c) for c in ("company_id", "project_id", "run_id",
                                                                          "event_id"))
_U_EXAMPLE, _U_AMOUNT = _U_COLUMNS.index("price_example"), _U_COLUMNS.index("amount_micro")
# a text column behind a single quote when it starts like a formula (see ledger.export.writers)
_QUOTED = ("CASE WHEN substr({col}, 1, 1) IN ('=', '+', '-', '@', char(9), char(13)) THEN '''' || {col} "
           "ELSE {col} END")
_SOURCE_COLUMNS = ("run_id", "event_id", "created_at", "stage", "engine", "model", "device", "unit", "quantity",
                   "seconds", "tokens_in", "tokens_out", "tokens_cached", "vendor", "licence", "detail")


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector during a bulk load: the hundred thousand short lists it
    builds hold no cycles, and repeated full collections over them cost a fifth of the time."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def china_day(stamp: str, cache: dict[str, date], field: str) -> date:
    """The China (UTC+8) calendar date of an ISO timestamp; naive timestamps are taken as UTC.
    UTC stamps (what core.usage writes) take a fast path that only looks at the date and hour."""
    if len(stamp) >= 19 and stamp.endswith("+00:00") and stamp[10] == "T":
        key = stamp[:10] + ("+" if stamp[11:13] >= "16" else "")
        day = cache.get(key)
        if day is None:
            try:
                day = date.fromisoformat(stamp[:10]) + (timedelta(days=1) if key.endswith("+") else timedelta(0))
            except ValueError as err:
                raise FieldError(field, stamp, "is not an ISO timestamp") from err
            cache[key] = day
        return day
    try:
        at = datetime.fromisoformat(stamp)
    except ValueError as err:
        raise FieldError(field, stamp, "is not an ISO timestamp") from err
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(CHINA_TZ).date()


def _read_source(src: Path, project_dir: str | os.PathLike[str]) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
    try:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(usage_events)")]
        if not cols:
            raise FieldError("PROJECT", str(project_dir), "usage.sqlite has no usage_events table")
        return conn.execute(f"SELECT {', '.join(_SOURCE_COLUMNS)} FROM usage_events ORDER BY rowid").fetchall()
    except sqlite3.DatabaseError as e:
        raise FieldError("PROJECT", str(project_dir),
                         f"usage.sqlite is not a usage store this ledger reads ({e})") from e
    finally:
        conn.close()


class UsageService:
    """Import, append and summarise usage events."""

    def __init__(self, store: Store, master: MasterData, prices: PriceService) -> None:
        self.store = store
        self.master = master
        self.prices = prices

    def import_project(self, project_dir: str | os.PathLike[str], *, project: str | None = None,
                       company: str | int | None = None, allow_unpriced: bool = False) -> UsageImport:
        """Bring a project's ``usage.sqlite`` into the ledger, pricing each event from the price
        book. Idempotent: events already imported (same run id and event id) are skipped."""
        with _gc_paused():
            return self._import(project_dir, project=project, company=company, allow_unpriced=allow_unpriced)

    def _import(self, project_dir: str | os.PathLike[str], *, project: str | None,
                company: str | int | None, allow_unpriced: bool) -> UsageImport:
        folder = Path(project_dir).expanduser().resolve()
        src = folder / "usage.sqlite"
        if not src.is_file():
            raise FieldError("PROJECT", str(project_dir), "has no usage.sqlite",
                             hint="give the folder of a ReelForge project (it holds usage.sqlite)")
        name = project or folder.name
        events = _read_source(src, project_dir)
        result = UsageImport(source=str(src), project=name)
        already = self._existing_keys(sorted({str(e[0]) for e in events}))
        if already:  # skip what is in the ledger before pricing it (checked again under the write lock)
            fresh_events = [e for e in events if (str(e[0]), str(e[1])) not in already]
            result.skipped = len(events) - len(fresh_events)
            events = fresh_events
        if not self.prices.entries():
            added, _ = self.prices.import_toml(None)
            result.prices_loaded = added
            log.info("the ledger had no prices: loaded %d entries from %s", added, default_price_book_path())
        prepared, missing = self._price(events, str(src))
        result.missing_prices = [f"{k} ({v} events)" for k, v in sorted(missing.items())]
        if missing and not allow_unpriced:
            raise LedgerError(
                f"{sum(missing.values())} usage event(s) have no price in the ledger's price book: "
                + "; ".join(result.missing_prices[:10]) + (" …" if len(missing) > 10 else ""),
                hint="add the prices (ledger price add / price import FILE.toml) and import again, "
                     "or pass --allow-unpriced to import them without an estimate")
        with self.store.write() as w:
            c = self.master.company(company)
            p, created = self.master.ensure_project(name, c.id, created_by=f"import-usage from {folder}")
            if created:
                log.warning("project %r was not in the ledger: created it with no work type or source IP "
                            "(set them with `project update` before a measure 6 claim)", name)
            seen = self._existing_keys(sorted({r[_U_RUN] for r in prepared}))
            fresh = []
            for r in prepared:
                key = (r[_U_RUN], r[_U_EVENT])
                if key in seen:
                    result.skipped += 1
                    continue
                seen.add(key)
                r[_U_COMPANY] = c.id
                r[_U_PROJECT] = p.id
                fresh.append(r)
            for i in range(0, len(fresh), 5000):
                w.append_values("usage_events", fresh[i:i + 5000])
            result.imported = len(fresh)
            result.unpriced = sum(1 for r in fresh if r[_U_AMOUNT] is None)
            result.example_priced = sum(1 for r in fresh if r[_U_EXAMPLE])
            result.estimated_micro = sum(r[_U_AMOUNT] or 0 for r in fresh)
            w.audit("usage.import", {"source": str(src), "project": name, "imported": result.imported,
                                     "skipped": result.skipped, "unpriced": result.unpriced,
                                     "example_priced": result.example_priced,
                                     "estimated_micro": result.estimated_micro})
        if result.example_priced:
            log.warning("%d imported event(s) were priced from example entries of the price book: the estimates "
                        "are placeholders until those prices are edited", result.example_priced)
        return result

    def _price(self, events: list[tuple[Any, ...]], source: str) -> tuple[list[list[Any]], dict[str, int]]:
        """Rows in :func:`schema.body_columns` order (company and project left to the caller) and the
        count of events per missing price."""
        book = self.prices.book()
        prepared: list[list[Any]] = []
        missing: dict[str, int] = {}
        days: dict[str, date] = {}
        snapshots: dict[int, tuple[str | None, int | None, int]] = {}
        for n, (run_id, event_id, created_at, stage, engine, model, device, unit, qty_text, sec_text, t_in, t_out,
                t_cached, vendor, licence, detail) in enumerate(events, 1):
            # text columns are stored as text whatever another tool put there, so hashes stay stable
            qty_text, sec_text, stage, engine, model = str(qty_text), str(sec_text), str(stage), str(engine), str(model)
            device, vendor, licence, detail, unit = str(device), str(vendor), str(licence), str(detail), str(unit)
            if unit not in UNITS:
                raise FieldError(f"usage event {event_id!r} (row {n}) unit", unit,
                                 f"unknown unit; known: {', '.join(UNITS)}")
            try:
                quantity = Decimal(qty_text)
                seconds = Decimal(sec_text)
                if not quantity.is_finite() or quantity < 0 or not seconds.is_finite():
                    raise InvalidOperation
            except (InvalidOperation, TypeError, ValueError) as err:
                raise FieldError(f"usage event {event_id!r} (row {n}) quantity/seconds", f"{qty_text}/{sec_text}",
                                 "must be non-negative decimal numbers") from err
            day = china_day(str(created_at), days, f"usage event {event_id!r} (row {n}) created_at")
            entry = book.lookup(model, engine, unit, day)
            if entry is None:
                missing_key = f"model {model!r} / engine {engine!r} / unit {unit} on {day}"
                missing[missing_key] = missing.get(missing_key, 0) + 1
                snap: tuple[str | None, int | None, int] = (None, None, 0)
            else:
                snap = snapshots.get(id(entry)) or snapshots.setdefault(
                    id(entry), (format(entry.price, "f"), entry.per, int(entry.example)))
            prepared.append([
                0, None, source, str(run_id), str(event_id), str(created_at), day.isoformat(), stage, engine,
                model, device, vendor, unit, qty_text, sec_text, int(t_in), int(t_out), int(t_cached), licence,
                detail, entry.id if entry else None, snap[0], snap[1], snap[2],
                entry.amount_micro(quantity) if entry else None,
            ])
        return prepared, missing

    def _existing_keys(self, run_ids: list[str]) -> set[tuple[str, str]]:
        seen: set[tuple[str, str]] = set()
        for i in range(0, len(run_ids), 500):
            chunk = run_ids[i:i + 500]
            q = f"SELECT run_id, event_id FROM usage_events WHERE run_id IN ({', '.join('?' * len(chunk))})"
            seen.update((str(a), str(b)) for a, b in self.store.conn.execute(q, chunk))
        return seen

    def add_rows(self, rows: list[dict[str, Any]], *, company: str | int | None = None, batch: int = 5000) -> int:
        """Append already-priced usage rows (column names as in the table, without company_id).
        For callers that bring their own source, and for the benchmark."""
        with _gc_paused(), self.store.write() as w:
            c = self.master.company(company)
            for i in range(0, len(rows), batch):
                w.append_many("usage_events", [{**r, "company_id": c.id} for r in rows[i:i + batch]])
            w.audit("usage.add", {"rows": len(rows)})
        return len(rows)

    def project_has_usage(self, project_id: int) -> bool:
        row = self.store.conn.execute("SELECT 1 FROM usage_events WHERE project_id = ? LIMIT 1", (project_id,))
        return row.fetchone() is not None

    def summary(self, year: int, company: str | int | None = None,
                project: str | int | None = None) -> list[dict[str, Any]]:
        """Usage of a year grouped by day, project, stage, engine, model, device, vendor, unit and price."""
        c = self.master.company(company)
        names = {p.id: p.name for p in self.master.projects()}
        sql = ("SELECT u.event_date AS day, u.project_id AS project, u.stage, u.engine, u.model, u.device, "
               "u.vendor, u.unit, u.unit_price, u.price_per, u.price_example, u.quantity, u.amount_micro "
               "FROM usage_events u WHERE u.company_id = ? AND u.event_date BETWEEN ? AND ?")
        args: list[Any] = [c.id, f"{year:04d}-01-01", f"{year:04d}-12-31"]
        if project not in (None, ""):
            assert project is not None
            sql += " AND u.project_id = ?"
            args.append(self.master.project(project, c.id).id)
        # integers are summed by SQLite; the decimal quantities exactly, in Python, per group
        grouped = ("SELECT day, project, stage, engine, model, device, vendor, unit, unit_price, price_per, "
                   "price_example, GROUP_CONCAT(quantity), COUNT(*), SUM(amount_micro IS NULL), "
                   "COALESCE(SUM(amount_micro), 0) FROM (" + sql + ") GROUP BY day, project, stage, engine, model, "
                   "device, vendor, unit, unit_price, price_per, price_example ORDER BY day, project, stage, engine, "
                   "model, unit")
        out = []
        for r in self.store.conn.execute(grouped, args):
            out.append({"day": r[0], "project": names.get(r[1], ""), "stage": r[2], "engine": r[3], "model": r[4],
                        "device": r[5], "vendor": r[6], "unit": r[7], "unit_price": r[8], "price_per": r[9],
                        "price_example": bool(r[10]), "quantity": sum(map(Decimal, r[11].split(",")), Decimal(0)),
                        "events": int(r[12]), "unpriced": int(r[13]), "amount_micro": int(r[14])})
        return out

    def event_rows(self, year: int, company: str | int | None = None, *,
                   formula_safe: bool = False) -> Iterable[tuple[Any, ...]]:
        """Every usage event of a year, header first, as plain tuples (streamed from SQLite).
        ``formula_safe``: text that a spreadsheet would read as a formula (starting with ``=``,
        ``+``, ``-``, ``@``, tab or CR) comes with a leading single quote, added by SQLite."""
        c = self.master.company(company)
        cols = ("id", "event_date", "event_at", "run_id", "event_id", "project_id", "stage", "engine", "model",
                "device", "vendor", "unit", "quantity", "seconds", "tokens_in", "tokens_out", "tokens_cached",
                "licence", "unit_price", "price_per", "price_example", "amount_micro", "row_hash")
        text = {"run_id", "event_id", "stage", "engine", "model", "device", "vendor", "licence", "quantity", "seconds"}
        exprs = [_QUOTED.format(col=col) if formula_safe and col in text else col for col in cols]
        cursor = self.store.conn.execute(
            f"SELECT {', '.join(exprs)} FROM usage_events WHERE company_id = ? AND event_date BETWEEN ? AND ? "
            "ORDER BY seq", (c.id, f"{year:04d}-01-01", f"{year:04d}-12-31"))
        return itertools.chain([cols], cursor)  # no Python frame per row
