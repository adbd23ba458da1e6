"""The ledger's Python API. The CLI and the Gradio tab are thin faces over :class:`Ledger`.

    from ledger import Ledger
    with Ledger("studio.ledger.sqlite") as lg:
        lg.add_company("影锻文化", "91350100M000100Y43", headcount=3)
        lg.add_vendor("深度求索", "91330100716105852F")
        lg.add_invoice("深度求索", "25110000000000000001", "2025-03-01", "100.00", "6.00", "106.00")
        lg.add_payment("25110000000000000001", "2025-03-05", "106.00", bank_ref="B0001")
        print(lg.compute_claim(5, 2025).claim_fen)
"""

from __future__ import annotations

import dataclasses
import gc
import itertools
import json
import logging
import os
import re
import shutil
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from core.usage import UNITS
from ledger import claims as claims_mod
from ledger import schema
from ledger.chain import ChainHead, VerifyReport
from ledger.claims import ActiveClaim, BestPlan, ClaimResult, InvoiceView, PaymentView
from ledger.errors import (
    ClaimConflictError,
    DuplicateError,
    FieldError,
    LedgerError,
    NotFoundError,
)
from ledger.models import (
    DIGITAL_TYPES,
    INVOICE_TYPES,
    ArchivedFile,
    Company,
    Contract,
    Invoice,
    Payment,
    Project,
    ReconRow,
    UsageImport,
    Vendor,
)
from ledger.money import (
    format_fen,
    parse_rate,
    parse_yuan,
    rate_str,
)
from ledger.policy import CATEGORIES, CATEGORY_ALIASES, SOURCE_KINDS, WORK_TYPES, PolicySettings
from ledger.pricebook import PriceBook, PriceEntry, default_price_book_path, load_price_toml
from ledger.store import Store, Writer
from ledger.validate import (
    STANDARD_VAT_RATES,
    check_amounts,
    parse_date,
    validate_invoice_id,
    validate_uscc,
)

log = logging.getLogger(__name__)

CHINA_TZ = timezone(timedelta(hours=8))
_SAFE_EXT = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


_U_COLUMNS = schema.body_columns("usage_events")
_U_COMPANY, _U_PROJECT, _U_RUN, _U_EVENT = (_U_COLUMNS.index(c) for c in ("company_id", "project_id", "run_id",
                                                                          "event_id"))
_U_EXAMPLE, _U_AMOUNT = _U_COLUMNS.index("price_example"), _U_COLUMNS.index("amount_micro")
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


def _china_day(stamp: str, cache: dict[str, date], field: str) -> date:
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


@dataclass(frozen=True, slots=True)
class RecordedClaim:
    id: int
    company_id: int
    measure: int
    year: int
    project_id: int | None
    project_name: str
    claim_fen: int
    base_fen: int
    created_at: str
    active: bool
    withdrawn_by: int | None
    lines: int


def _text(value: object, field: str, *, required: bool = True, limit: int = 500) -> str:
    s = "" if value is None else str(value).strip()
    if required and not s:
        raise FieldError(field, value, "must not be empty")
    if len(s) > limit:
        raise FieldError(field, s[:40] + "…", f"is longer than {limit} characters")
    return s


def _category(value: str) -> str:
    key = (value or "ai_tech").strip()
    key = CATEGORY_ALIASES.get(key, key)
    if key not in CATEGORIES:
        raise FieldError("category (费用类别)", value,
                         f"unknown category; known: {', '.join(f'{k} ({v})' for k, v in CATEGORIES.items())}")
    return key


class Ledger:
    """A company's AI-spend ledger in one SQLite file, with its document archive beside it."""

    def __init__(self, path: str | os.PathLike[str], *, archive_dir: str | os.PathLike[str] | None = None,
                 timeout: float = 60.0) -> None:
        self.store = Store(path, archive_dir=archive_dir, timeout=timeout)
        self.path = self.store.path
        self.archive_dir = self.store.archive_dir

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- chain ------------------------------------------------------------------------------
    def chain_head(self) -> ChainHead:
        return self.store.head()

    def verify(self, expect_head: str = "") -> VerifyReport:
        return self.store.verify(expect_head=expect_head.strip().lower())

    def audit(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT id, seq, created_at, actor, action, detail FROM audit_log "
                                "ORDER BY id DESC LIMIT ?", (int(limit),))
        for r in rows:
            r["detail"] = json.loads(r["detail"])
        return rows

    # --- settings ---------------------------------------------------------------------------
    def settings(self) -> PolicySettings:
        rows = self.store.query("SELECT key, value FROM settings ORDER BY id")
        values = {r["key"]: r["value"] for r in rows}
        return PolicySettings().with_values(values) if values else PolicySettings()

    def set_setting(self, key: str, value: str, note: str = "") -> PolicySettings:
        key = key.strip()
        parsed = PolicySettings.parse_value(key, value)
        with self.store.write() as w:
            current = self.settings()
            updated = dataclasses.replace(current, **{key: parsed})
            updated.check()
            text = updated.text_value(key)
            w.append("settings", {"key": key, "value": text, "note": note})
            w.audit("settings.set", {"key": key, "value": text, "previous": current.text_value(key)})
        return updated

    # --- companies --------------------------------------------------------------------------
    def _current(self, table: str) -> list[dict[str, Any]]:
        return self.store.query(
            f"SELECT * FROM {table} WHERE id IN (SELECT MAX(id) FROM {table} GROUP BY entity_id) ORDER BY entity_id")

    @staticmethod
    def _company(r: dict[str, Any]) -> Company:
        return Company(r["entity_id"], r["id"], r["name"], r["uscc"], r["headcount"], r["note"])

    def companies(self) -> list[Company]:
        return [self._company(r) for r in self._current("companies")]

    def company(self, ref: str | int | None = None) -> Company:
        """By entity id, name or credit code; ``None`` means the only company in the ledger."""
        items = self.companies()
        if ref is None or ref == "":
            if len(items) == 1:
                return items[0]
            if not items:
                raise NotFoundError("the ledger has no company yet",
                                    hint="add one: ledger company add --name N --uscc CODE --headcount N")
            raise NotFoundError(f"the ledger holds {len(items)} companies; say which one",
                                hint="pass --company NAME_OR_USCC")
        for c in items:
            if str(ref) in (str(c.id), c.name, c.uscc, c.uscc.lower()):
                return c
        raise NotFoundError(f"company {ref!r} is not in the ledger",
                            hint=f"known: {', '.join(c.name for c in items) or '(none)'}")

    def add_company(self, name: str, uscc: str, headcount: int, note: str = "") -> Company:
        name = _text(name, "name (企业名称)")
        code = validate_uscc(uscc)
        headcount = self._headcount(headcount)
        with self.store.write() as w:
            for c in self.companies():
                if c.uscc == code:
                    raise DuplicateError(f"company with credit code {code} is already in the ledger as {c.name!r}",
                                         hint="change it with `company update`")
            cid = w.append("companies", {"name": name, "uscc": code, "headcount": headcount, "note": note},
                           self_entity=True)
            w.audit("company.add", {"id": cid, "name": name, "uscc": code, "headcount": headcount})
        return self.company(cid)

    @staticmethod
    def _headcount(value: object) -> int:
        try:
            number = int(str(value).strip())
        except ValueError as e:
            raise FieldError("headcount (员工人数)", value, "must be a whole number of staff") from e
        if number < 0 or number > 10_000_000:
            raise FieldError("headcount (员工人数)", value, "must be between 0 and 10,000,000")
        return number

    def update_company(self, ref: str | int | None, *, name: str | None = None, headcount: int | None = None,
                       note: str | None = None) -> Company:
        with self.store.write() as w:
            c = self.company(ref)
            values = {"entity_id": c.id, "uscc": c.uscc,
                      "name": _text(name, "name (企业名称)") if name is not None else c.name,
                      "headcount": self._headcount(headcount) if headcount is not None else c.headcount,
                      "note": note if note is not None else c.note}
            vid = w.append("companies", values)
            w.audit("company.update", {"id": c.id, "version": vid, "from": {"name": c.name, "headcount": c.headcount},
                                       "to": {"name": values["name"], "headcount": values["headcount"]}})
        return self.company(c.id)

    # --- vendors ----------------------------------------------------------------------------
    @staticmethod
    def _vendor(r: dict[str, Any]) -> Vendor:
        return Vendor(r["entity_id"], r["id"], r["name"], r["uscc"], bool(r["related_party"]),
                      tuple(json.loads(r["aliases"])), r["note"])

    def vendors(self) -> list[Vendor]:
        return [self._vendor(r) for r in self._current("vendors")]

    def vendor(self, ref: str | int) -> Vendor:
        items = self.vendors()
        key = str(ref).strip()
        for v in items:
            if key in (str(v.id), v.name, v.uscc) or key.upper() == v.uscc:
                return v
        for v in items:
            if key.lower() in (a.lower() for a in v.aliases):
                return v
        raise NotFoundError(f"vendor {ref!r} is not in the ledger",
                            hint="add it: ledger vendor add --name N --uscc CODE")

    def add_vendor(self, name: str, uscc: str, *, related_party: bool = False, aliases: Iterable[str] = (),
                   note: str = "") -> Vendor:
        name = _text(name, "name (供应商名称)")
        code = validate_uscc(uscc)
        alias_list = sorted({a.strip() for a in aliases if a and a.strip()})
        with self.store.write() as w:
            for v in self.vendors():
                if v.uscc == code:
                    raise DuplicateError(f"vendor with credit code {code} is already in the ledger as {v.name!r}",
                                         hint="change it with `vendor update`")
            vid = w.append("vendors", {"name": name, "uscc": code, "related_party": bool(related_party),
                                       "aliases": json.dumps(alias_list, ensure_ascii=False), "note": note},
                           self_entity=True)
            w.audit("vendor.add", {"id": vid, "name": name, "uscc": code, "related_party": bool(related_party)})
        return self.vendor(vid)

    def update_vendor(self, ref: str | int, *, name: str | None = None, related_party: bool | None = None,
                      aliases: Iterable[str] | None = None, note: str | None = None) -> Vendor:
        with self.store.write() as w:
            v = self.vendor(ref)
            values = {"entity_id": v.id, "uscc": v.uscc,
                      "name": _text(name, "name (供应商名称)") if name is not None else v.name,
                      "related_party": v.related_party if related_party is None else bool(related_party),
                      "aliases": json.dumps(sorted({a.strip() for a in aliases if a.strip()}) if aliases is not None
                                            else list(v.aliases), ensure_ascii=False),
                      "note": note if note is not None else v.note}
            vid = w.append("vendors", values)
            w.audit("vendor.update", {"id": v.id, "version": vid, "related_party": values["related_party"],
                                      "name": values["name"]})
        return self.vendor(v.id)

    # --- projects ---------------------------------------------------------------------------
    @staticmethod
    def _project(r: dict[str, Any]) -> Project:
        return Project(r["entity_id"], r["id"], r["company_id"], r["name"], r["work_type"], r["source_ip"],
                       r["source_kind"], bool(r["yizhuang"]), r["note"])

    def projects(self, company: str | int | None = None) -> list[Project]:
        items = [self._project(r) for r in self._current("projects")]
        if company is not None:
            cid = self.company(company).id
            items = [p for p in items if p.company_id == cid]
        return items

    def project(self, ref: str | int, company: str | int | None = None) -> Project:
        items = self.projects()
        if company is not None or len(self.companies()) > 1:
            cid = self.company(company).id
            items = [p for p in items if p.company_id == cid]
        for p in items:
            if str(ref).strip() in (str(p.id), p.name):
                return p
        raise NotFoundError(f"project {ref!r} is not in the ledger",
                            hint="add it: ledger project add --name N --work-type micro_drama ...")

    @staticmethod
    def _work_type(value: str) -> str:
        v = (value or "").strip()
        if v not in WORK_TYPES:
            raise FieldError("work_type (作品类型)", value, f"unknown; known: {', '.join(k for k in WORK_TYPES if k)}")
        return v

    @staticmethod
    def _source_kind(value: str) -> str:
        v = (value or "").strip()
        if v not in SOURCE_KINDS:
            raise FieldError("source_kind (IP来源)", value, f"unknown; known: {', '.join(k for k in SOURCE_KINDS if k)}")
        return v

    def add_project(self, name: str, *, company: str | int | None = None, work_type: str = "",
                    source_ip: str = "", source_kind: str = "", yizhuang: bool = False, note: str = "") -> Project:
        name = _text(name, "name (项目名称)")
        values = {"name": name, "work_type": self._work_type(work_type), "source_ip": _text(source_ip, "source_ip",
                  required=False), "source_kind": self._source_kind(source_kind), "yizhuang": bool(yizhuang),
                  "note": note}
        with self.store.write() as w:
            c = self.company(company)
            if any(p.name == name and p.company_id == c.id for p in self.projects()):
                raise DuplicateError(f"project {name!r} already exists for {c.name}", hint="change it with `project update`")
            pid = w.append("projects", {**values, "company_id": c.id}, self_entity=True)
            w.audit("project.add", {"id": pid, **{k: v for k, v in values.items() if k != "note"}})
        return self.project(pid)

    def update_project(self, ref: str | int, *, company: str | int | None = None, name: str | None = None,
                       work_type: str | None = None, source_ip: str | None = None, source_kind: str | None = None,
                       yizhuang: bool | None = None, note: str | None = None) -> Project:
        with self.store.write() as w:
            p = self.project(ref, company)
            values = {"entity_id": p.id, "company_id": p.company_id,
                      "name": _text(name, "name (项目名称)") if name is not None else p.name,
                      "work_type": self._work_type(work_type) if work_type is not None else p.work_type,
                      "source_ip": source_ip.strip() if source_ip is not None else p.source_ip,
                      "source_kind": self._source_kind(source_kind) if source_kind is not None else p.source_kind,
                      "yizhuang": p.yizhuang if yizhuang is None else bool(yizhuang),
                      "note": note if note is not None else p.note}
            vid = w.append("projects", values)
            w.audit("project.update", {"id": p.id, "version": vid,
                                       **{k: v for k, v in values.items() if k not in ("note",)}})
        return self.project(p.id)

    # --- prices -----------------------------------------------------------------------------
    @staticmethod
    def _price(r: dict[str, Any]) -> PriceEntry:
        return PriceEntry(
            model=r["model"], unit=r["unit"], price=Decimal(r["price"]), per=r["per"],
            valid_from=date.fromisoformat(r["valid_from"]),
            valid_to=date.fromisoformat(r["valid_to"]) if r["valid_to"] else None, currency=r["currency"],
            vendor=r["vendor"], source=r["source"], taken=r["taken"], example=bool(r["example"]), note=r["note"],
            id=r["id"])

    def prices(self) -> list[PriceEntry]:
        return [self._price(r) for r in self.store.query("SELECT * FROM prices ORDER BY id")]

    def price_book(self) -> PriceBook:
        return PriceBook(self.prices())

    def _append_price(self, w: Writer, e: PriceEntry) -> int:
        return w.append("prices", {
            "model": e.model, "unit": e.unit, "price": format(e.price, "f"), "per": e.per, "currency": e.currency,
            "valid_from": e.valid_from.isoformat(), "valid_to": e.valid_to.isoformat() if e.valid_to else None,
            "vendor": e.vendor, "source": e.source, "taken": e.taken, "example": e.example, "note": e.note})

    def add_price(self, entry: PriceEntry) -> PriceEntry:
        with self.store.write() as w:
            if entry.key() in {p.key() for p in self.prices()}:
                raise DuplicateError(f"the price book already has {entry.model}/{entry.unit} at {entry.price} per "
                                     f"{entry.per} from {entry.valid_from}")
            pid = self._append_price(w, entry)
            w.audit("price.add", {"id": pid, "model": entry.model, "unit": entry.unit, "price": str(entry.price),
                                  "per": entry.per, "valid_from": entry.valid_from.isoformat()})
        return next(p for p in self.prices() if p.id == pid)

    def import_prices(self, path: str | os.PathLike[str] | None = None) -> tuple[int, int]:
        """Load a price-book TOML; entries already present are skipped. Returns (added, skipped)."""
        file = Path(path) if path else default_price_book_path()
        entries = load_price_toml(file)
        with self.store.write() as w:
            have = {p.key() for p in self.prices()}
            added = 0
            for e in entries:
                if e.key() in have:
                    continue
                self._append_price(w, e)
                have.add(e.key())
                added += 1
            w.audit("price.import", {"file": str(file), "added": added, "skipped": len(entries) - added})
        return added, len(entries) - added

    # --- documents --------------------------------------------------------------------------
    def _archive(self, w: Writer, path: str | os.PathLike[str] | None) -> int | None:
        if path is None or str(path) == "":
            return None
        src = Path(path).expanduser()
        if not src.is_file():
            raise FieldError("file (存档文件)", str(path), "does not exist or is not a file")
        from core.workspace import sha256_file

        digest = sha256_file(src)
        row = self.store.conn.execute("SELECT id FROM files WHERE sha256 = ?", (digest,)).fetchone()
        if row:
            return int(row[0])
        ext = src.suffix.lower() if _SAFE_EXT.match(src.suffix) else ""
        stored = f"{digest[:2]}/{digest}{ext}"
        dest = self.archive_dir / stored
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists():
            tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
            shutil.copyfile(src, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            if sha256_file(tmp) != digest:
                tmp.unlink(missing_ok=True)
                raise LedgerError(f"file {str(src)!r} changed while it was being archived", hint="try again")
            os.replace(tmp, dest)
            os.chmod(dest, 0o444)
        fid = w.append("files", {"sha256": digest, "size": src.stat().st_size, "original_name": src.name,
                                 "stored_name": stored})
        return fid

    def file(self, file_id: int) -> ArchivedFile:
        rows = self.store.query("SELECT * FROM files WHERE id = ?", (file_id,))
        if not rows:
            raise NotFoundError(f"archived file #{file_id} is not in the ledger")
        r = rows[0]
        return ArchivedFile(r["id"], r["sha256"], r["size"], r["original_name"], r["stored_name"])

    def _reversed_ids(self, table: str) -> set[int]:
        return {int(r[0]) for r in self.store.conn.execute(f"SELECT reverses FROM {table} WHERE reverses IS NOT NULL")}

    def add_contract(self, vendor: str | int, number: str, sign_date: str | date, total: str | int | Decimal, *,
                     project: str | int | None = None, company: str | int | None = None,
                     file: str | os.PathLike[str] | None = None, note: str = "") -> Contract:
        number = _text(number, "number (合同编号)", limit=100)
        day = parse_date(sign_date, "date (签订日期)")
        total_fen = parse_yuan(total, "total (合同金额)", allow_zero=False)
        with self.store.write() as w:
            c = self.company(company)
            v = self.vendor(vendor)
            p = self.project(project, c.id) if project not in (None, "") else None
            voided = self._reversed_ids("contracts")
            dup = self.store.query("SELECT id FROM contracts WHERE vendor_id = ? AND number = ? AND reverses IS NULL",
                                   (v.id, number))
            if any(r["id"] not in voided for r in dup):
                raise DuplicateError(f"contract {number!r} with {v.name} is already in the ledger")
            fid = self._archive(w, file)
            cid = w.append("contracts", {"company_id": c.id, "vendor_id": v.id, "project_id": p.id if p else None,
                                         "number": number, "sign_date": day.isoformat(), "total_fen": total_fen,
                                         "file_id": fid, "note": note, "reverses": None, "reason": ""})
            w.audit("contract.add", {"id": cid, "number": number, "vendor": v.name, "total_fen": total_fen})
        return self.contract(number, vendor=v.id)

    def contract(self, number: str, vendor: str | int | None = None) -> Contract:
        voided = self._reversed_ids("contracts")
        rows = self.store.query("SELECT * FROM contracts WHERE number = ? AND reverses IS NULL ORDER BY id", (number,))
        rows = [r for r in rows if r["id"] not in voided]
        if vendor is not None:
            vid = self.vendor(vendor).id
            rows = [r for r in rows if r["vendor_id"] == vid]
        if not rows:
            raise NotFoundError(f"contract {number!r} is not in the ledger", hint="add it: ledger contract add ...")
        if len(rows) > 1:
            raise NotFoundError(f"contract number {number!r} exists for several vendors", hint="name the vendor")
        r = rows[0]
        return Contract(r["id"], r["company_id"], r["vendor_id"], r["project_id"], r["number"],
                        date.fromisoformat(r["sign_date"]), r["total_fen"], r["file_id"], r["note"])

    @staticmethod
    def _tax_rate(text: str | None, ex_tax_fen: int, tax_fen: int) -> tuple[str, list[str]]:
        """Normalise the tax rate; infer a standard rate when none is given. Returns (rate, flags)."""
        flags: list[str] = []
        if text is None or str(text).strip() == "":
            for r in STANDARD_VAT_RATES:
                expected = int((Decimal(ex_tax_fen) * Decimal(r)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
                if abs(expected - tax_fen) <= 1 and (tax_fen > 0 or r == "0"):
                    return rate_str(Decimal(r)), flags
            return "", flags
        s = str(text).strip()
        if s in ("免税", "exempt", "不征税", "not_taxable"):
            label = "免税" if s in ("免税", "exempt") else "不征税"
            if tax_fen != 0:
                flags.append(f"税率为{label}但税额不为零 rate {label} but tax is not zero")
            return label, flags
        rate = parse_rate(s, "tax_rate (税率)")
        if rate_str(rate) not in {rate_str(Decimal(r)) for r in STANDARD_VAT_RATES}:
            flags.append(f"非常见增值税税率 uncommon VAT rate {s}")
        expected = int((Decimal(ex_tax_fen) * rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        if abs(expected - tax_fen) > 1:
            flags.append(f"税额与税率不符 tax {format_fen(tax_fen)} does not match {s} of {format_fen(ex_tax_fen)} "
                         f"(expected about {format_fen(expected)})")
        return rate_str(rate), flags

    @staticmethod
    def _invoice(r: dict[str, Any], voided: set[int], flags: tuple[str, ...] = ()) -> Invoice:
        return Invoice(r["id"], r["company_id"], r["vendor_id"], r["project_id"], r["category"], r["invoice_type"],
                       r["code"], r["number"], date.fromisoformat(r["issue_date"]), r["ex_tax_fen"], r["tax_fen"],
                       r["total_fen"], r["tax_rate"], r["contract_id"], r["file_id"], r["note"],
                       r["id"] in voided, flags)

    def _find_invoice(self, number: str, code: str = "") -> dict[str, Any]:
        voided = self._reversed_ids("invoices")
        rows = self.store.query("SELECT * FROM invoices WHERE number = ? AND code = ? AND reverses IS NULL",
                                (str(number).strip(), str(code or "").strip()))
        rows = [r for r in rows if r["id"] not in voided]
        if not rows:
            raise NotFoundError(f"invoice {((code + ' ') if code else '') + str(number)!r} is not in the ledger "
                                "(or it was voided)", hint="check the number; older invoices also need --code")
        return rows[0]

    def invoice(self, number: str, code: str = "") -> Invoice:
        return self._invoice(self._find_invoice(number, code), self._reversed_ids("invoices"))

    def add_invoice(self, vendor: str | int, number: str, issue_date: str | date, ex_tax: str | int | Decimal,
                    tax: str | int | Decimal, total: str | int | Decimal, *, code: str = "",
                    invoice_type: str | None = None, tax_rate: str | None = None, category: str = "ai_tech",
                    project: str | int | None = None, contract: str | None = None,
                    company: str | int | None = None, file: str | os.PathLike[str] | None = None,
                    note: str = "") -> Invoice:
        """Enter an invoice. Amounts are yuan as decimal strings. Refused: malformed numbers and dates,
        amounts that do not add up, duplicates. Flagged (returned in ``flags``, also logged): dates
        outside the policy window, related-party vendors, a tax that does not match the rate."""
        day = parse_date(issue_date, "date (开票日期)")
        ident = validate_invoice_id(number, code, day)
        ex_fen = parse_yuan(ex_tax, "ex_tax (金额(不含税))")
        tax_fen = parse_yuan(tax, "tax (税额)")
        total_fen = parse_yuan(total, "total (价税合计)", allow_zero=False)
        check_amounts(ex_fen, tax_fen, total_fen)
        cat = _category(category)
        if invoice_type:
            itype = invoice_type.strip()
            itype = next((k for k, v in INVOICE_TYPES.items() if v == itype), itype)
            if itype not in INVOICE_TYPES:
                raise FieldError("type (发票类型)", invoice_type, f"unknown; known: {', '.join(INVOICE_TYPES)}")
            if (itype in DIGITAL_TYPES) != (ident.kind == "digital"):
                raise FieldError("type (发票类型)", invoice_type,
                                 "does not fit the number: 数电票 have a 20-digit number and no code, "
                                 "older invoices a code and an 8-digit number")
        else:
            itype = "digital" if ident.kind == "digital" else "legacy"
        rate_text, flags = self._tax_rate(tax_rate, ex_fen, tax_fen)
        with self.store.write() as w:
            c = self.company(company)
            v = self.vendor(vendor)
            p = self.project(project, c.id) if project not in (None, "") else None
            k = self.contract(contract, vendor=v.id).id if contract else None
            try:
                existing = self._find_invoice(ident.number, ident.code)
            except NotFoundError:
                existing = None
            if existing is not None:
                raise DuplicateError(
                    f"invoice {(ident.code + ' ') if ident.code else ''}{ident.number} is already in the ledger "
                    f"(id {existing['id']}, dated {existing['issue_date']}, total {format_fen(existing['total_fen'])})",
                    hint="an invoice is entered once; to correct it, void it and enter it again")
            settings = self.settings()
            if not settings.in_window(day):
                flags.append(f"开票日期不在政策期内 dated outside the policy window (ends {settings.window_end}); "
                             "it will not count towards a claim")
            if v.related_party:
                flags.append("关联方供应商 related-party vendor: " + ("excluded from claims by default (setting "
                             "related_party)" if settings.related_party == "exclude" else "counted, needs review"))
            fid = self._archive(w, file)
            iid = w.append("invoices", {
                "company_id": c.id, "vendor_id": v.id, "project_id": p.id if p else None, "category": cat,
                "invoice_type": INVOICE_TYPES[itype], "code": ident.code, "number": ident.number,
                "issue_date": day.isoformat(), "ex_tax_fen": ex_fen, "tax_fen": tax_fen, "total_fen": total_fen,
                "tax_rate": rate_text, "contract_id": k, "file_id": fid, "note": note, "reverses": None,
                "reason": ""})
            w.audit("invoice.add", {"id": iid, "number": ident.number, "code": ident.code, "vendor": v.name,
                                    "date": day.isoformat(), "total_fen": total_fen, "flags": flags})
        for f in flags:
            log.warning("invoice %s: %s", ident.number, f)
        row = self.store.query("SELECT * FROM invoices WHERE id = ?", (iid,))[0]
        return self._invoice(row, set(), tuple(flags))

    def _active_claim_ids_holding(self, invoice_id: int) -> list[int]:
        active = {c.id for c in self._active_claims()}
        rows = self.store.conn.execute("SELECT claim_id FROM claim_lines WHERE invoice_id = ?", (invoice_id,))
        return sorted({int(r[0]) for r in rows} & active)

    def void_invoice(self, number: str, reason: str, code: str = "") -> Invoice:
        """Correct an invoice entered by mistake: a reversal row with negated amounts."""
        reason = _text(reason, "reason (作废原因)")
        with self.store.write() as w:
            r = self._find_invoice(number, code)
            holding = self._active_claim_ids_holding(r["id"])
            if holding:
                raise ClaimConflictError(f"invoice {number} is in active claim(s) {', '.join(f'#{i}' for i in holding)}",
                                         hint="withdraw the claim first")
            voided_pay = self._reversed_ids("payments")
            pays = [p for p in self.store.query("SELECT id FROM payments WHERE invoice_id = ? AND reverses IS NULL",
                                                (r["id"],)) if p["id"] not in voided_pay]
            if pays:
                raise LedgerError(f"invoice {number} has {len(pays)} payment(s) recorded",
                                  hint="void them first: ledger payment void ID --reason ...")
            values = {k: r[k] for k in ("company_id", "vendor_id", "project_id", "category", "invoice_type", "code",
                                        "number", "issue_date", "tax_rate", "contract_id", "file_id", "note")}
            values.update({"ex_tax_fen": -r["ex_tax_fen"], "tax_fen": -r["tax_fen"], "total_fen": -r["total_fen"],
                           "reverses": r["id"], "reason": reason})
            rid = w.append("invoices", values)
            w.audit("invoice.void", {"id": r["id"], "reversal": rid, "number": number, "reason": reason})
        row = self.store.query("SELECT * FROM invoices WHERE id = ?", (r["id"],))[0]
        return self._invoice(row, {r["id"]})

    def invoices(self, year: int | None = None, company: str | int | None = None,
                 include_voided: bool = False) -> list[Invoice]:
        sql = "SELECT * FROM invoices WHERE reverses IS NULL"
        args: list[Any] = []
        if company is not None:
            sql += " AND company_id = ?"
            args.append(self.company(company).id)
        if year is not None:
            sql += " AND issue_date >= ? AND issue_date <= ?"
            args += [f"{year:04d}-01-01", f"{year:04d}-12-31"]
        voided = self._reversed_ids("invoices")
        out = [self._invoice(r, voided) for r in self.store.query(sql + " ORDER BY issue_date, id", args)]
        return out if include_voided else [i for i in out if not i.voided]

    def add_payment(self, invoice: str, pay_date: str | date, amount: str | int | Decimal, bank_ref: str, *,
                    code: str = "", file: str | os.PathLike[str] | None = None, note: str = "") -> Payment:
        """Record a payment (proof of payment) against an invoice; overpayment is refused."""
        day = parse_date(pay_date, "date (付款日期)")
        amount_fen = parse_yuan(amount, "amount (付款金额)", allow_zero=False)
        ref = _text(bank_ref, "bank_ref (银行流水号)", limit=100)
        with self.store.write() as w:
            inv = self._find_invoice(invoice, code)
            paid = self._paid(inv["id"])
            if paid + amount_fen > inv["total_fen"]:
                raise FieldError("amount (付款金额)", format_fen(amount_fen, grouping=False),
                                 f"would overpay invoice {invoice}: total {format_fen(inv['total_fen'])}, "
                                 f"already paid {format_fen(paid)}",
                                 hint="record only the part of the transfer that pays this invoice")
            fid = self._archive(w, file)
            pid = w.append("payments", {"company_id": inv["company_id"], "invoice_id": inv["id"],
                                        "pay_date": day.isoformat(), "amount_fen": amount_fen, "bank_ref": ref,
                                        "file_id": fid, "note": note, "reverses": None, "reason": ""})
            w.audit("payment.add", {"id": pid, "invoice": invoice, "amount_fen": amount_fen, "bank_ref": ref})
        return self.payment(pid)

    def _paid(self, invoice_id: int) -> int:
        row = self.store.conn.execute("SELECT COALESCE(SUM(amount_fen), 0) FROM payments WHERE invoice_id = ?",
                                      (invoice_id,)).fetchone()
        return int(row[0])

    def payment(self, payment_id: int) -> Payment:
        rows = self.store.query("SELECT * FROM payments WHERE id = ? AND reverses IS NULL", (int(payment_id),))
        if not rows:
            raise NotFoundError(f"payment #{payment_id} is not in the ledger")
        r = rows[0]
        return Payment(r["id"], r["company_id"], r["invoice_id"], date.fromisoformat(r["pay_date"]), r["amount_fen"],
                       r["bank_ref"], r["file_id"], r["note"], r["id"] in self._reversed_ids("payments"))

    def payments(self, invoice: str | None = None, code: str = "") -> list[Payment]:
        sql, args = "SELECT id FROM payments WHERE reverses IS NULL", []
        if invoice:
            sql += " AND invoice_id = ?"
            args.append(self._find_invoice(invoice, code)["id"])
        return [self.payment(r["id"]) for r in self.store.query(sql + " ORDER BY id", args)]

    def void_payment(self, payment_id: int, reason: str) -> Payment:
        reason = _text(reason, "reason (作废原因)")
        with self.store.write() as w:
            p = self.payment(payment_id)
            if p.voided:
                raise LedgerError(f"payment #{payment_id} is already voided")
            holding = self._active_claim_ids_holding(p.invoice_id)
            if holding:
                raise ClaimConflictError(f"payment #{payment_id} backs an invoice in active claim(s) "
                                         f"{', '.join(f'#{i}' for i in holding)}", hint="withdraw the claim first")
            rid = w.append("payments", {"company_id": p.company_id, "invoice_id": p.invoice_id,
                                        "pay_date": p.pay_date.isoformat(), "amount_fen": -p.amount_fen,
                                        "bank_ref": p.bank_ref, "file_id": p.file_id, "note": p.note,
                                        "reverses": p.id, "reason": reason})
            w.audit("payment.void", {"id": p.id, "reversal": rid, "reason": reason})
        return self.payment(payment_id)

    # --- usage ------------------------------------------------------------------------------
    def import_usage(self, project_dir: str | os.PathLike[str], *, project: str | None = None,
                     company: str | int | None = None, allow_unpriced: bool = False) -> UsageImport:
        """Bring a project's ``usage.sqlite`` into the ledger, pricing each event from the price
        book. Idempotent: events already imported (same run id and event id) are skipped."""
        with _gc_paused():
            return self._import_usage(project_dir, project=project, company=company, allow_unpriced=allow_unpriced)

    def _import_usage(self, project_dir: str | os.PathLike[str], *, project: str | None,
                      company: str | int | None, allow_unpriced: bool) -> UsageImport:
        folder = Path(project_dir).expanduser().resolve()
        src = folder / "usage.sqlite"
        if not src.is_file():
            raise FieldError("PROJECT", str(project_dir), "has no usage.sqlite",
                             hint="give the folder of a ReelForge project (it holds usage.sqlite)")
        name = project or folder.name
        conn = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=30)
        try:
            cols = [r[1] for r in conn.execute("PRAGMA table_info(usage_events)")]
            if not cols:
                raise FieldError("PROJECT", str(project_dir), "usage.sqlite has no usage_events table")
            cur = conn.execute(f"SELECT {', '.join(_SOURCE_COLUMNS)} FROM usage_events ORDER BY rowid")
            events = cur.fetchall()
        except sqlite3.OperationalError as e:
            raise FieldError("PROJECT", str(project_dir), f"usage.sqlite is not a usage store this ledger reads ({e})") from e
        finally:
            conn.close()
        result = UsageImport(source=str(src), project=name)
        already = self._existing_usage_keys(sorted({str(e[0]) for e in events}))
        if already:  # skip what is in the ledger before pricing it (checked again under the write lock)
            fresh_events = [e for e in events if (str(e[0]), str(e[1])) not in already]
            result.skipped = len(events) - len(fresh_events)
            events = fresh_events
        if not self.prices():
            added, _ = self.import_prices(None)
            result.prices_loaded = added
            log.info("the ledger had no prices: loaded %d entries from %s", added, default_price_book_path())
        book = self.price_book()
        prepared: list[list[Any]] = []
        missing: dict[str, int] = {}
        source = str(src)
        days: dict[str, date] = {}
        snapshots: dict[int, tuple[str | None, int | None, int]] = {}
        for n, (run_id, event_id, created_at, stage, engine, model, device, unit, qty_text, sec_text, t_in, t_out,
                t_cached, vendor, licence, detail) in enumerate(events, 1):
            # text columns are stored as text whatever another tool put there, so hashes stay stable
            qty_text, sec_text, stage, engine, model = str(qty_text), str(sec_text), str(stage), str(engine), str(model)
            device, vendor, licence, detail, unit = str(device), str(vendor), str(licence), str(detail), str(unit)
            if unit not in UNITS:
                raise FieldError(f"usage event {event_id!r} (row {n}) unit", unit, f"unknown unit; known: {', '.join(UNITS)}")
            try:
                quantity = Decimal(qty_text)
                seconds = Decimal(sec_text)
                if not quantity.is_finite() or quantity < 0 or not seconds.is_finite():
                    raise InvalidOperation
            except (InvalidOperation, TypeError, ValueError) as err:
                raise FieldError(f"usage event {event_id!r} (row {n}) quantity/seconds", f"{qty_text}/{sec_text}",
                                 "must be non-negative decimal numbers") from err
            day = _china_day(str(created_at), days, f"usage event {event_id!r} (row {n}) created_at")
            entry = book.lookup(model, engine, unit, day)
            if entry is None:
                missing_key = f"model {model!r} / engine {engine!r} / unit {unit} on {day}"
                missing[missing_key] = missing.get(missing_key, 0) + 1
                snap: tuple[str | None, int | None, int] = (None, None, 0)
            else:
                snap = snapshots.get(id(entry)) or snapshots.setdefault(
                    id(entry), (format(entry.price, "f"), entry.per, int(entry.example)))
            # in schema.body_columns("usage_events") order; company and project are set below
            prepared.append([
                0, None, source, str(run_id), str(event_id), str(created_at), day.isoformat(), stage, engine,
                model, device, vendor, unit, qty_text, sec_text, int(t_in), int(t_out), int(t_cached), licence,
                detail, entry.id if entry else None, snap[0], snap[1], snap[2],
                entry.amount_micro(quantity) if entry else None,
            ])
        result.missing_prices = [f"{k} ({v} events)" for k, v in sorted(missing.items())]
        if missing and not allow_unpriced:
            raise LedgerError(
                f"{sum(missing.values())} usage event(s) have no price in the ledger's price book: "
                + "; ".join(result.missing_prices[:10]) + (" …" if len(missing) > 10 else ""),
                hint="add the prices (ledger price add / price import FILE.toml) and import again, "
                     "or pass --allow-unpriced to import them without an estimate")
        with self.store.write() as w:
            c = self.company(company)
            try:
                p = self.project(name, c.id)
            except NotFoundError:
                pid = w.append("projects", {"company_id": c.id, "name": name, "work_type": "", "source_ip": "",
                                            "source_kind": "", "yizhuang": False,
                                            "note": f"created by import-usage from {folder}"}, self_entity=True)
                w.audit("project.add", {"id": pid, "name": name, "by": "import-usage"})
                log.warning("project %r was not in the ledger: created it with no work type or source IP "
                            "(set them with `project update` before a measure 6 claim)", name)
                p = self.project(pid, c.id)
            seen = self._existing_usage_keys(sorted({r[_U_RUN] for r in prepared}))
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

    def _existing_usage_keys(self, run_ids: list[str]) -> set[tuple[str, str]]:
        seen: set[tuple[str, str]] = set()
        for i in range(0, len(run_ids), 500):
            chunk = run_ids[i:i + 500]
            q = f"SELECT run_id, event_id FROM usage_events WHERE run_id IN ({', '.join('?' * len(chunk))})"
            seen.update((str(a), str(b)) for a, b in self.store.conn.execute(q, chunk))
        return seen

    def add_usage_rows(self, rows: list[dict[str, Any]], *, company: str | int | None = None,
                       batch: int = 5000) -> int:
        """Append already-priced usage rows (column names as in the table, without company_id).
        Used by :meth:`import_usage`'s callers that bring their own source, and by the benchmark."""
        with _gc_paused(), self.store.write() as w:
            c = self.company(company)
            for i in range(0, len(rows), batch):
                w.append_many("usage_events", [{**r, "company_id": c.id} for r in rows[i:i + batch]])
            w.audit("usage.add", {"rows": len(rows)})
        return len(rows)

    def usage_summary(self, year: int, company: str | int | None = None,
                      project: str | int | None = None) -> list[dict[str, Any]]:
        """Usage of a year grouped by day, project, stage, engine, model, device, vendor, unit and price."""
        c = self.company(company)
        names = {p.id: p.name for p in self.projects()}
        sql = ("SELECT u.event_date AS day, u.project_id AS project, u.stage, u.engine, u.model, u.device, "
               "u.vendor, u.unit, u.unit_price, u.price_per, u.price_example, u.quantity, u.amount_micro "
               "FROM usage_events u WHERE u.company_id = ? AND u.event_date BETWEEN ? AND ?")
        args: list[Any] = [c.id, f"{year:04d}-01-01", f"{year:04d}-12-31"]
        if project not in (None, ""):
            sql += " AND u.project_id = ?"
            args.append(self.project(project, c.id).id)
        # integers are summed by SQLite; the decimal quantities exactly, in Python, per group
        grouped = ("SELECT day, project, stage, engine, model, device, vendor, unit, unit_price, price_per, "
                   "price_example, GROUP_CONCAT(quantity), COUNT(*), SUM(amount_micro IS NULL), "
                   "COALESCE(SUM(amount_micro), 0) FROM (" + sql + ") GROUP BY day, project, stage, engine, model, "
                   "device, vendor, unit, unit_price, price_per, price_example ORDER BY day, project, stage, engine, "
                   "model, unit")
        out = []
        for r in self.store.conn.execute(grouped, args):
            out.append({"day": r[0], "project": names.get(r[1], ""), "stage": r[2], "engine": r[3], "model": r[4], "device": r[5],
                        "vendor": r[6], "unit": r[7], "unit_price": r[8], "price_per": r[9],
                        "price_example": bool(r[10]), "quantity": sum(map(Decimal, r[11].split(",")), Decimal(0)),
                        "events": int(r[12]), "unpriced": int(r[13]), "amount_micro": int(r[14])})
        return out

    def usage_events_rows(self, year: int, company: str | int | None = None) -> Iterable[tuple[Any, ...]]:
        c = self.company(company)
        cols = ("id", "event_date", "event_at", "run_id", "event_id", "project_id", "stage", "engine", "model",
                "device", "vendor", "unit", "quantity", "seconds", "tokens_in", "tokens_out", "tokens_cached",
                "licence", "unit_price", "price_per", "price_example", "amount_micro", "row_hash")
        cursor = self.store.conn.execute(
            f"SELECT {', '.join(cols)} FROM usage_events WHERE company_id = ? AND event_date BETWEEN ? AND ? "
            "ORDER BY seq", (c.id, f"{year:04d}-01-01", f"{year:04d}-12-31"))
        return itertools.chain([cols], cursor)  # no Python frame per row

    # --- claims -----------------------------------------------------------------------------
    def _active_claims(self, company_id: int | None = None) -> list[ActiveClaim]:
        withdrawn = self._reversed_ids("claims")
        sql = "SELECT id, company_id, measure, year, project_id, claim_fen FROM claims WHERE reverses IS NULL"
        out = []
        for r in self.store.query(sql + " ORDER BY id"):
            if r["id"] in withdrawn or (company_id is not None and r["company_id"] != company_id):
                continue
            pids = frozenset(int(x[0]) for x in self.store.conn.execute(
                "SELECT DISTINCT i.project_id FROM claim_lines l JOIN invoices i ON i.id = l.invoice_id "
                "WHERE l.claim_id = ? AND i.project_id IS NOT NULL", (r["id"],)))
            out.append(ActiveClaim(r["id"], r["measure"], r["year"], r["project_id"], r["claim_fen"], pids))
        return out

    def invoice_views(self, company_id: int, year: int | None = None) -> list[InvoiceView]:
        """Everything a claim needs to know about each live invoice, in one consistent read."""
        voided = self._reversed_ids("invoices")
        vendors = {v.id: v for v in self.vendors()}
        projects = {p.id: p for p in self.projects()}
        active = {c.id for c in self._active_claims(company_id)}
        sql = ("SELECT i.*, k.number AS contract_number, f.sha256 AS file_sha256 FROM invoices i "
               "LEFT JOIN contracts k ON k.id = i.contract_id LEFT JOIN files f ON f.id = i.file_id "
               "WHERE i.reverses IS NULL AND i.company_id = ?")
        args: list[Any] = [company_id]
        if year is not None:
            sql += " AND i.issue_date BETWEEN ? AND ?"
            args += [f"{year:04d}-01-01", f"{year:04d}-12-31"]
        views: list[InvoiceView] = []
        for r in self.store.query(sql + " ORDER BY i.issue_date, i.id", args):
            if r["id"] in voided:
                continue
            v = vendors[r["vendor_id"]]
            p = projects.get(r["project_id"]) if r["project_id"] is not None else None
            pays = [PaymentView(x["id"], date.fromisoformat(x["pay_date"]), x["amount_fen"], x["bank_ref"],
                                x["file_id"] is not None)
                    for x in self.store.query("SELECT * FROM payments WHERE invoice_id = ? ORDER BY pay_date, id",
                                              (r["id"],))]
            voided_pays = {x.id for x in pays if x.amount_fen < 0}
            reversed_ids = {int(x[0]) for x in self.store.conn.execute(
                "SELECT reverses FROM payments WHERE invoice_id = ? AND reverses IS NOT NULL", (r["id"],))}
            live = [x for x in pays if x.id not in voided_pays and x.id not in reversed_ids]
            claimed = sorted({int(x[0]) for x in self.store.conn.execute(
                "SELECT claim_id FROM claim_lines WHERE invoice_id = ?", (r["id"],))} & active)
            views.append(InvoiceView(
                id=r["id"], number=r["number"], code=r["code"], invoice_type=r["invoice_type"],
                issue_date=date.fromisoformat(r["issue_date"]), category=r["category"],
                ex_tax_fen=r["ex_tax_fen"], tax_fen=r["tax_fen"], total_fen=r["total_fen"], tax_rate=r["tax_rate"],
                vendor_id=v.id, vendor_name=v.name, vendor_uscc=v.uscc, related_party=v.related_party,
                project_id=p.id if p else None, project_name=p.name if p else "",
                work_type=p.work_type if p else "", source_kind=p.source_kind if p else "",
                yizhuang=p.yizhuang if p else False, contract_number=r["contract_number"] or "",
                file_sha256=r["file_sha256"] or "", paid_fen=sum(x.amount_fen for x in live), payments=live,
                claimed_in=claimed))
        return views

    def _claim_inputs(self, year: int, project: str | int | None, company: str | int | None) -> dict[str, Any]:
        c = self.company(company)
        p = self.project(project, c.id) if project not in (None, "") else None
        return {"company": c, "project": p, "settings": self.settings(),
                "invoices": self.invoice_views(c.id, year), "active": self._active_claims(c.id),
                "chain_head": self.chain_head().hash}

    def compute_claim(self, measure: int, year: int, *, project: str | int | None = None,
                      company: str | int | None = None) -> ClaimResult:
        """Compute (never record) a claim, with the other measure's figure for comparison."""
        with self.store.read():
            inputs = self._claim_inputs(year, project, company)
            result = claims_mod.compute(int(measure), int(year), **inputs)
            other = claims_mod.compute(11 - int(measure), int(year), **inputs)
        better = result.measure if result.claim_fen >= other.claim_fen else other.measure
        result.comparison = {
            "other_measure": other.measure, "other_claim_fen": other.claim_fen, "recommended_measure": better,
            "note": ("同一范围内另一措施的金额；同一项目只能按一项措施申报（从优不重复） the other measure for the same "
                     "scope; a project is claimed under one measure only. For the whole company, "
                     "`--measure best` splits projects between the measures."),
        }
        return result

    def plan_best(self, year: int, *, project: str | int | None = None,
                  company: str | int | None = None) -> BestPlan:
        with self.store.read():
            inputs = self._claim_inputs(year, project, company)
            return claims_mod.plan_best(int(year), **inputs)

    def record_claim(self, measure: int, year: int, *, project: str | int | None = None,
                     company: str | int | None = None, exclude_projects: Iterable[int] = ()) -> ClaimResult:
        """Recompute inside the write lock and record the claim; its invoices are then held by it."""
        with self.store.write() as w:
            inputs = self._claim_inputs(year, project, company)
            result = claims_mod.compute(int(measure), int(year), **inputs,
                                        exclude_projects=frozenset(exclude_projects))
            if result.claim_id is not None:
                raise ClaimConflictError(
                    f"claim #{result.claim_id} for measure {measure}, {year}, {result.scope_label} is already active",
                    hint=f"withdraw it first: ledger withdraw {result.claim_id} --reason ...")
            if not result.lines:
                held = [e for e in result.excluded if e.codes & {"held", "project_held"}]
                if held:
                    raise ClaimConflictError(
                        f"every eligible invoice is already held by another active claim or project claim "
                        f"({', '.join(e.invoice.number for e in held[:5])}{' …' if len(held) > 5 else ''}): "
                        "one document never sits in two active claims (从优不重复)",
                        hint="withdraw the other claim first if this measure is the better one")
                raise LedgerError(f"nothing to claim under measure {measure} for {year}: no eligible invoice",
                                  hint="see `ledger claim` for the reasons each invoice is excluded")
            for ln in result.lines:  # belt and braces: the compute step excluded these already
                holding = [c for c in ln.invoice.claimed_in]
                if holding:
                    raise ClaimConflictError(f"invoice {ln.invoice.number} is already in active claim #{holding[0]}")
            cid = w.append("claims", {
                "company_id": result.company.id, "measure": result.measure, "year": result.year,
                "project_id": result.project.id if result.project else None, "basis": result.settings.basis,
                "rate": result.rate, "base_fen": result.base_fen, "raw_fen": format(result.raw, "f"),
                "rounded_fen": result.rounded_fen, "cap_fen": result.cap_fen, "cap_used_fen": result.cap_used_fen,
                "claim_fen": result.claim_fen,
                "settings": json.dumps(result.settings.to_dict(), ensure_ascii=False, sort_keys=True),
                "chain_head": result.chain_head, "reverses": None, "reason": ""})
            w.append_many("claim_lines", [{
                "claim_id": cid, "invoice_id": ln.invoice.id, "base_fen": ln.base_fen, "rate": rate_str(ln.rate),
                "amount": format(ln.amount, "f"), "note": "; ".join(ln.flags)} for ln in result.lines])
            w.audit("claim.record", {"id": cid, "measure": result.measure, "year": result.year,
                                     "project": result.project.name if result.project else None,
                                     "claim_fen": result.claim_fen, "lines": len(result.lines)})
        result.claim_id = cid
        result.status = "recorded"
        result.recorded_claim_fen = result.claim_fen
        return result

    def record_plan(self, plan: BestPlan) -> list[ClaimResult]:
        """Record every claim of a best plan in one transaction."""
        out = []
        with self.store.write():
            for c in plan.claims:
                out.append(self.record_claim(c.measure, c.year, project=c.project.id if c.project else None,
                                             company=c.company.id, exclude_projects=c.excluded_projects))
        return out

    def withdraw_claim(self, claim_id: int, reason: str) -> None:
        reason = _text(reason, "reason (撤回原因)")
        with self.store.write() as w:
            rows = self.store.query("SELECT * FROM claims WHERE id = ? AND reverses IS NULL", (int(claim_id),))
            if not rows:
                raise NotFoundError(f"claim #{claim_id} is not in the ledger")
            if int(claim_id) in self._reversed_ids("claims"):
                raise LedgerError(f"claim #{claim_id} is already withdrawn")
            r = rows[0]
            values = {k: r[k] for k in ("company_id", "measure", "year", "project_id", "basis", "rate", "settings",
                                        "chain_head")}
            values.update({"base_fen": -r["base_fen"], "raw_fen": format(-Decimal(r["raw_fen"]), "f"),
                           "rounded_fen": -r["rounded_fen"], "cap_fen": r["cap_fen"],
                           "cap_used_fen": r["cap_used_fen"], "claim_fen": -r["claim_fen"], "reverses": r["id"],
                           "reason": reason})
            rid = w.append("claims", values)
            w.audit("claim.withdraw", {"id": r["id"], "reversal": rid, "reason": reason})

    def claims(self, year: int | None = None, company: str | int | None = None) -> list[RecordedClaim]:
        withdrawn = {int(r[0]): int(r[1]) for r in self.store.conn.execute(
            "SELECT reverses, id FROM claims WHERE reverses IS NOT NULL")}
        projects = {p.id: p.name for p in self.projects()}
        sql, args = "SELECT * FROM claims WHERE reverses IS NULL", []
        if company is not None:
            sql += " AND company_id = ?"
            args.append(self.company(company).id)
        if year is not None:
            sql += " AND year = ?"
            args.append(int(year))
        out = []
        for r in self.store.query(sql + " ORDER BY id", args):
            n = self.store.conn.execute("SELECT COUNT(*) FROM claim_lines WHERE claim_id = ?", (r["id"],)).fetchone()[0]
            out.append(RecordedClaim(r["id"], r["company_id"], r["measure"], r["year"], r["project_id"],
                                     projects.get(r["project_id"], "") if r["project_id"] else "", r["claim_fen"],
                                     r["base_fen"], r["created_at"], r["id"] not in withdrawn,
                                     withdrawn.get(r["id"]), int(n)))
        return out

    def load_claim(self, claim_id: int) -> ClaimResult:
        """A recorded claim exactly as filed: its lines, amounts and the settings it used."""
        rows = self.store.query("SELECT * FROM claims WHERE id = ? AND reverses IS NULL", (int(claim_id),))
        if not rows:
            raise NotFoundError(f"claim #{claim_id} is not in the ledger", hint="list them: ledger claims")
        r = rows[0]
        company = self.company(r["company_id"])
        settings = PolicySettings.from_dict(json.loads(r["settings"]))
        views = {v.id: v for v in self.invoice_views(company.id)}
        lines = []
        for ln in self.store.query("SELECT * FROM claim_lines WHERE claim_id = ? ORDER BY id", (r["id"],)):
            view = views.get(ln["invoice_id"])
            if view is None:
                raise LedgerError(f"claim #{claim_id} holds invoice id {ln['invoice_id']}, which is no longer live")
            lines.append(claims_mod.ClaimLine(view, ln["base_fen"], Decimal(ln["rate"]), Decimal(ln["amount"]),
                                              [x for x in ln["note"].split("; ") if x]))
        project = None
        if r["project_id"] is not None:
            project = next(p for p in self.projects() if p.id == r["project_id"])
        withdrawn = int(claim_id) in self._reversed_ids("claims")
        held = {x.invoice.id for x in lines}
        excluded: list[claims_mod.ExcludedInvoice] = []
        others: list[InvoiceView] = []
        try:  # why the other invoices of the year are not in it, by the rules it was recorded under
            fresh = claims_mod.compute(r["measure"], r["year"], company=company, settings=settings,
                                       invoices=list(views.values()), active=self._active_claims(company.id),
                                       chain_head="", project=project)
            excluded = [e for e in fresh.excluded if e.invoice.id not in held]
            excluded += [claims_mod.ExcludedInvoice(ln.invoice, [f"不在已登记申报 #{r['id']} 中 not in recorded claim "
                                                                 f"#{r['id']} (entered or paid after it was recorded)"],
                                                    {"not_recorded"})
                         for ln in fresh.lines if ln.invoice.id not in held]
            others = fresh.not_applicable
        except LedgerError as e:
            log.warning("claim #%s: cannot re-derive the reasons for excluded invoices: %s", claim_id, e)
        result = ClaimResult(
            measure=r["measure"], year=r["year"], company=company, project=project, settings=settings,
            opc=settings.is_opc(company.headcount), lines=lines, excluded=excluded, not_applicable=others,
            base_fen=r["base_fen"], raw=Decimal(r["raw_fen"]), rounded_fen=r["rounded_fen"], cap_fen=r["cap_fen"],
            cap_used_fen=r["cap_used_fen"], cap_used_by=[], claim_fen=r["claim_fen"],
            chain_head=self.chain_head().hash, computed_at=r["created_at"],
            status="withdrawn" if withdrawn else "recorded", claim_id=r["id"], recorded_claim_fen=r["claim_fen"])
        result.notes.append(f"已登记申报 #{r['id']}（{r['created_at']}），登记时链头 chain head when recorded: "
                            f"{r['chain_head']}")
        return result

    # --- reconciliation ---------------------------------------------------------------------
    def reconcile(self, year: int, *, period: str = "month", company: str | int | None = None,
                  record: bool = False) -> list[ReconRow]:
        """Usage estimates against invoiced amounts, per vendor and period (month, quarter, year)."""
        if period not in ("month", "quarter", "year"):
            raise FieldError("period", period, "must be month, quarter or year")
        c = self.company(company)
        s = self.settings()
        vendors = self.vendors()
        by_label: dict[str, Vendor] = {}
        for v in vendors:
            for label in (v.name, v.uscc, *v.aliases):
                by_label[label.lower()] = v

        def bucket(day: str) -> str:
            if period == "year":
                return day[:4]
            if period == "quarter":
                return f"{day[:4]}-Q{(int(day[5:7]) - 1) // 3 + 1}"
            return day[:7]

        acc: dict[tuple[str, str], list[Any]] = {}
        for vendor_label, month, amount, unpriced in self.store.conn.execute(
                "SELECT vendor, substr(event_date, 1, 7) || '-01', COALESCE(SUM(amount_micro), 0), "
                "SUM(amount_micro IS NULL) FROM usage_events WHERE company_id = ? AND event_date BETWEEN ? AND ? "
                "GROUP BY vendor, substr(event_date, 1, 7)", (c.id, f"{year:04d}-01-01", f"{year:04d}-12-31")):
            found = by_label.get(str(vendor_label).lower())
            label = found.name if found else (vendor_label or "本地 local (no vendor)")
            slot = acc.setdefault((label, bucket(month)), [found.id if found else None, 0, 0, 0])
            slot[1] += int(amount)
            slot[2] += int(unpriced)
        for inv in self.invoice_views(c.id, year):
            if inv.category not in s.m5_categories:
                continue
            slot = acc.setdefault((inv.vendor_name, bucket(inv.issue_date.isoformat())), [inv.vendor_id, 0, 0, 0])
            slot[3] += inv.ex_tax_fen if s.basis == "ex_tax" else inv.total_fen
        rows = [ReconRow(label, vals[0], per, vals[1], vals[2], vals[3]) for (label, per), vals in sorted(acc.items())]
        if record:
            with self.store.write() as w:
                w.append_many("reconciliations", [{
                    "company_id": c.id, "vendor_id": r.vendor_id, "vendor_label": r.vendor_label, "period": r.period,
                    "basis": s.basis, "estimated_micro": r.estimated_micro, "unpriced_events": r.unpriced_events,
                    "invoiced_fen": r.invoiced_fen, "note": ""} for r in rows])
                w.audit("reconcile.record", {"year": year, "period": period, "rows": len(rows)})
        return rows

    # --- exports ----------------------------------------------------------------------------
    def claims_for_export(self, year: int, *, measure: str = "best", project: str | int | None = None,
                          company: str | int | None = None, claim_id: int | None = None) -> list[ClaimResult]:
        """The claims an export shows: a recorded claim by id; otherwise the claim(s) for the year
        (recorded ones as filed, the rest as drafts)."""
        if claim_id is not None:
            return [self.load_claim(claim_id)]
        if str(measure) == "best":
            results = self.plan_best(year, project=project, company=company).claims
            if not results:
                results = [self.compute_claim(5, year, project=project, company=company)]
        else:
            results = [self.compute_claim(int(measure), year, project=project, company=company)]
        out = []
        for r in results:
            if r.claim_id is not None:
                recorded = self.load_claim(r.claim_id)
                if r.status == "changed_since_recorded":
                    recorded.notes.extend(r.notes)
                    log.warning("claim #%s: %s", r.claim_id, "; ".join(r.notes))
                recorded.comparison = r.comparison
                out.append(recorded)
            else:
                out.append(r)
        return out

    def export(self, year: int, out_dir: str | os.PathLike[str], *, measure: str = "best",
               project: str | int | None = None, company: str | int | None = None,
               claim_id: int | None = None) -> Any:
        """Write the claim workbook (XLSX + CSVs), the PDF summary and the evidence ZIP."""
        from ledger.export import export_claim_package

        return export_claim_package(self, int(year), Path(out_dir), measure=str(measure), project=project,
                                    company=company, claim_id=claim_id)

    # --- CSV imports (one transaction per file) ---------------------------------------------
    def import_companies_csv(self, path: str | os.PathLike[str]) -> int:
        from ledger.csvimport import import_companies

        return import_companies(self, path)

    def import_vendors_csv(self, path: str | os.PathLike[str]) -> int:
        from ledger.csvimport import import_vendors

        return import_vendors(self, path)

    def import_invoices_csv(self, path: str | os.PathLike[str]) -> int:
        from ledger.csvimport import import_invoices

        return import_invoices(self, path)

    def import_payments_csv(self, path: str | os.PathLike[str]) -> int:
        from ledger.csvimport import import_payments

        return import_payments(self, path)
