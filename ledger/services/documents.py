"""Documents: the archive of files (by sha256), contracts, invoices and payments.

Corrections are reversal rows with ``reverses`` pointing at the original. Four kinds, told
apart by what they carry:

- a void of an invoice entered by mistake (``void_invoice``): the same number and code, amounts
  negated;
- a red-letter invoice (红字发票, ``add_red_invoice``): a tax document of its own, with its own
  number, date and negative amounts, linked to its blue invoice; the claim base is the net;
- a void of a payment (``void_payment``): the same bank reference, the amount negated;
- a refund (``add_refund``): a negative payment with its own bank reference, linked to the
  payment it returns part of; the paid amount is the net.

:meth:`Documents.invoice_views` is the one consistent read a claim is computed from.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from ledger.claims import InvoiceView, PaymentView, RedLetterView
from ledger.errors import ClaimConflictError, DuplicateError, FieldError, LedgerError, NotFoundError
from ledger.models import DIGITAL_TYPES, INVOICE_TYPES, ArchivedFile, Contract, Invoice, Payment
from ledger.money import format_fen, parse_rate, parse_yuan, rate_str
from ledger.services.common import (
    active_claim_ids_holding,
    active_claims,
    reversed_ids,
    text_field,
)
from ledger.services.common import (
    category as parse_category,
)
from ledger.services.master import MasterData
from ledger.store import Store, Writer
from ledger.validate import STANDARD_VAT_RATES, check_amounts, parse_date, validate_invoice_id

log = logging.getLogger(__name__)

_SAFE_EXT = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


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


def _invoice(r: dict[str, Any], voided: set[int], flags: tuple[str, ...] = ()) -> Invoice:
    return Invoice(r["id"], r["company_id"], r["vendor_id"], r["project_id"], r["category"], r["invoice_type"],
                   r["code"], r["number"], date.fromisoformat(r["issue_date"]), r["ex_tax_fen"], r["tax_fen"],
                   r["total_fen"], r["tax_rate"], r["contract_id"], r["file_id"], r["note"],
                   r["id"] in voided, flags, r.get("red_of"))


def _amount(text: str | int | Decimal, field: str, *, negative: bool) -> int:
    """An amount in yuan; red-letter invoices and refunds are negative, as printed."""
    fen = parse_yuan(text, field, allow_negative=negative)
    if negative and fen > 0:
        raise FieldError(field, text, "must be negative, as printed on a red-letter invoice or a refund",
                         hint=f"write it with a minus sign, e.g. -{text}")
    return fen


class Documents:
    """Contracts, invoices, payments and the files archived with them."""

    def __init__(self, store: Store, master: MasterData) -> None:
        self.store = store
        self.master = master

    @property
    def archive_dir(self) -> Path:
        return self.store.archive_dir

    # --- archive ----------------------------------------------------------------------------
    def archive(self, w: Writer, path: str | os.PathLike[str] | None) -> int | None:
        """Copy a file into the archive (once per sha256) and return its ``files`` id."""
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
        return w.append("files", {"sha256": digest, "size": src.stat().st_size, "original_name": src.name,
                                  "stored_name": stored})

    def file(self, file_id: int) -> ArchivedFile:
        rows = self.store.query("SELECT * FROM files WHERE id = ?", (file_id,))
        if not rows:
            raise NotFoundError(f"archived file #{file_id} is not in the ledger")
        r = rows[0]
        return ArchivedFile(r["id"], r["sha256"], r["size"], r["original_name"], r["stored_name"])

    # --- reversal rows ----------------------------------------------------------------------
    def voided_invoice_ids(self) -> set[int]:
        """Invoices voided as entered by mistake (a reversal row with the same number and code)."""
        return {int(r[0]) for r in self.store.conn.execute(
            "SELECT o.id FROM invoices r JOIN invoices o ON o.id = r.reverses "
            "WHERE r.number = o.number AND r.code = o.code")}

    def voided_payment_ids(self) -> set[int]:
        """Payments voided (a reversal row with the same bank reference); refunds are not voids."""
        return {int(r[0]) for r in self.store.conn.execute(
            "SELECT o.id FROM payments r JOIN payments o ON o.id = r.reverses "
            "WHERE r.bank_ref = o.bank_ref AND r.amount_fen = -o.amount_fen")}

    def check_plausible(self, fen: int, field: str, confirm: bool) -> None:
        limit = self.master.settings().plausible_max
        if abs(fen) > limit and not confirm:
            raise FieldError(field, format_fen(fen), f"is above the plausibility limit ¥{format_fen(limit)} "
                             "(setting plausible_max)",
                             hint="check the amount against the document; if it is right, pass --confirm")

    # --- contracts --------------------------------------------------------------------------
    def add_contract(self, vendor: str | int, number: str, sign_date: str | date, total: str | int | Decimal, *,
                     project: str | int | None = None, company: str | int | None = None,
                     file: str | os.PathLike[str] | None = None, note: str = "", confirm: bool = False) -> Contract:
        number = text_field(number, "number (合同编号)", limit=100)
        day = parse_date(sign_date, "date (签订日期)")
        total_fen = parse_yuan(total, "total (合同金额)", allow_zero=False)
        self.check_plausible(total_fen, "total (合同金额)", confirm)
        with self.store.write() as w:
            c = self.master.company(company)
            v = self.master.vendor(vendor)
            p = self.master.project(project, c.id) if project not in (None, "") else None
            voided = reversed_ids(self.store, "contracts")
            dup = self.store.query("SELECT id FROM contracts WHERE vendor_id = ? AND number = ? AND reverses IS NULL",
                                   (v.id, number))
            if any(r["id"] not in voided for r in dup):
                raise DuplicateError(f"contract {number!r} with {v.name} is already in the ledger")
            fid = self.archive(w, file)
            cid = w.append("contracts", {"company_id": c.id, "vendor_id": v.id, "project_id": p.id if p else None,
                                         "number": number, "sign_date": day.isoformat(), "total_fen": total_fen,
                                         "file_id": fid, "note": note, "reverses": None, "reason": ""})
            w.audit("contract.add", {"id": cid, "number": number, "vendor": v.name, "total_fen": total_fen})
        return self.contract(number, vendor=v.id)

    def contract(self, number: str, vendor: str | int | None = None) -> Contract:
        voided = reversed_ids(self.store, "contracts")
        rows = self.store.query("SELECT * FROM contracts WHERE number = ? AND reverses IS NULL ORDER BY id", (number,))
        rows = [r for r in rows if r["id"] not in voided]
        if vendor is not None:
            vid = self.master.vendor(vendor).id
            rows = [r for r in rows if r["vendor_id"] == vid]
        if not rows:
            raise NotFoundError(f"contract {number!r} is not in the ledger", hint="add it: ledger contract add ...")
        if len(rows) > 1:
            raise NotFoundError(f"contract number {number!r} exists for several vendors", hint="name the vendor")
        r = rows[0]
        return Contract(r["id"], r["company_id"], r["vendor_id"], r["project_id"], r["number"],
                        date.fromisoformat(r["sign_date"]), r["total_fen"], r["file_id"], r["note"])

    # --- invoices ---------------------------------------------------------------------------
    def _find_invoice(self, number: str, code: str = "") -> dict[str, Any]:
        voided = self.voided_invoice_ids()
        rows = self.store.query("SELECT * FROM invoices WHERE number = ? AND code = ? AND reverses IS NULL",
                                (str(number).strip(), str(code or "").strip()))
        rows = [r for r in rows if r["id"] not in voided]
        if not rows:
            raise NotFoundError(f"invoice {((code + ' ') if code else '') + str(number)!r} is not in the ledger "
                                "(or it was voided)", hint="check the number; older invoices also need --code")
        return rows[0]

    def invoice(self, number: str, code: str = "") -> Invoice:
        return _invoice(self._find_invoice(number, code), self.voided_invoice_ids())

    def _number_taken(self, number: str, code: str) -> dict[str, Any] | None:
        """A live invoice (blue or red-letter) with this number and code."""
        voided = self.voided_invoice_ids()
        for r in self.store.query("SELECT * FROM invoices WHERE number = ? AND code = ? ORDER BY id", (number, code)):
            if r["reverses"] is None and r["id"] not in voided:
                return r
            if r["reverses"] is not None:
                original = self.store.query("SELECT number, code FROM invoices WHERE id = ?", (r["reverses"],))[0]
                if (original["number"], original["code"]) != (number, code):
                    return r  # a red-letter invoice with this number
        return None

    def add_invoice(self, vendor: str | int, number: str, issue_date: str | date, ex_tax: str | int | Decimal,
                    tax: str | int | Decimal, total: str | int | Decimal, *, code: str = "",
                    invoice_type: str | None = None, tax_rate: str | None = None, category: str = "ai_tech",
                    project: str | int | None = None, contract: str | None = None,
                    company: str | int | None = None, file: str | os.PathLike[str] | None = None,
                    note: str = "", confirm: bool = False) -> Invoice:
        """Enter an invoice. Amounts are yuan as decimal strings. Refused: malformed numbers and dates,
        amounts that do not add up, duplicates. Flagged (returned in ``flags``, also logged): dates
        outside the policy window, related-party vendors, a tax that does not match the rate."""
        day = parse_date(issue_date, "date (开票日期)")
        ident = validate_invoice_id(number, code, day)
        ex_fen = parse_yuan(ex_tax, "ex_tax (金额(不含税))")
        tax_fen = parse_yuan(tax, "tax (税额)")
        total_fen = parse_yuan(total, "total (价税合计)", allow_zero=False)
        check_amounts(ex_fen, tax_fen, total_fen)
        self.check_plausible(total_fen, "total (价税合计)", confirm)
        note = text_field(note, "note (备注)", required=False)
        cat = parse_category(category)
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
        rate_text, flags = _tax_rate(tax_rate, ex_fen, tax_fen)
        with self.store.write() as w:
            c = self.master.company(company)
            v = self.master.vendor(vendor)
            p = self.master.project(project, c.id) if project not in (None, "") else None
            k = self.contract(contract, vendor=v.id).id if contract else None
            existing = self._number_taken(ident.number, ident.code)
            if existing is not None:
                raise DuplicateError(
                    f"invoice {(ident.code + ' ') if ident.code else ''}{ident.number} is already in the ledger "
                    f"(id {existing['id']}, dated {existing['issue_date']}, total {format_fen(existing['total_fen'])})",
                    hint="an invoice is entered once; to correct it, void it and enter it again")
            settings = self.master.settings()
            if not settings.in_window(day):
                flags.append(f"开票日期不在政策期内 dated outside the policy window (ends {settings.window_end}); "
                             "it will not count towards a claim")
            if v.related_party:
                flags.append("关联方供应商 related-party vendor: " + ("excluded from claims by default (setting "
                             "related_party)" if settings.related_party == "exclude" else "counted, needs review"))
            fid = self.archive(w, file)
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
        return _invoice(row, set(), tuple(flags))

    def void_invoice(self, number: str, reason: str, code: str = "") -> Invoice:
        """Correct an invoice entered by mistake: a reversal row with negated amounts."""
        reason = text_field(reason, "reason (作废原因)")
        with self.store.write() as w:
            r = self._find_invoice(number, code)
            holding = active_claim_ids_holding(self.store, r["id"])
            if holding:
                raise ClaimConflictError(f"invoice {number} is in active claim(s) {', '.join(f'#{i}' for i in holding)}",
                                         hint="withdraw the claim first")
            if self._paid(r["id"]) != 0:
                pays = self.store.query("SELECT id FROM payments WHERE invoice_id = ? AND reverses IS NULL", (r["id"],))
                raise LedgerError(f"invoice {number} has {len(pays)} payment(s) recorded",
                                  hint="void them first: ledger payment void ID --reason ...")
            if self.store.query("SELECT id FROM invoices WHERE reverses = ? AND number != ?", (r["id"], r["number"])):
                raise LedgerError(f"invoice {number} has red-letter invoice(s): it was issued and partly cancelled, "
                                  "not entered by mistake", hint="a red-letter invoice stays; do not void its blue")
            values = {k: r[k] for k in ("company_id", "vendor_id", "project_id", "category", "invoice_type", "code",
                                        "number", "issue_date", "tax_rate", "contract_id", "file_id", "note")}
            values.update({"ex_tax_fen": -r["ex_tax_fen"], "tax_fen": -r["tax_fen"], "total_fen": -r["total_fen"],
                           "reverses": r["id"], "reason": reason})
            rid = w.append("invoices", values)
            w.audit("invoice.void", {"id": r["id"], "reversal": rid, "number": number, "reason": reason})
        row = self.store.query("SELECT * FROM invoices WHERE id = ?", (r["id"],))[0]
        return _invoice(row, {r["id"]})

    def invoices(self, year: int | None = None, company: str | int | None = None,
                 include_voided: bool = False) -> list[Invoice]:
        sql = "SELECT * FROM invoices WHERE reverses IS NULL"
        args: list[Any] = []
        if company is not None:
            sql += " AND company_id = ?"
            args.append(self.master.company(company).id)
        if year is not None:
            sql += " AND issue_date >= ? AND issue_date <= ?"
            args += [f"{year:04d}-01-01", f"{year:04d}-12-31"]
        voided = self.voided_invoice_ids()
        out = [_invoice(r, voided) for r in self.store.query(sql + " ORDER BY issue_date, id", args)]
        return out if include_voided else [i for i in out if not i.voided]

    def add_red_invoice(self, blue: str, number: str, issue_date: str | date, ex_tax: str | int | Decimal,
                        tax: str | int | Decimal, total: str | int | Decimal, *, reason: str, blue_code: str = "",
                        code: str = "", file: str | os.PathLike[str] | None = None, note: str = "",
                        confirm: bool = False) -> Invoice:
        """Enter a red-letter invoice (红字发票) that cancels part or all of a blue invoice. Its
        amounts are negative, as printed; the blue's net may not go below zero."""
        day = parse_date(issue_date, "date (开票日期)")
        ident = validate_invoice_id(number, code, day)
        ex_fen = _amount(ex_tax, "ex_tax (金额(不含税))", negative=True)
        tax_fen = _amount(tax, "tax (税额)", negative=True)
        total_fen = _amount(total, "total (价税合计)", negative=True)
        check_amounts(ex_fen, tax_fen, total_fen)
        if total_fen == 0:
            raise FieldError("total (价税合计)", total, "a red-letter invoice cancels a non-zero amount")
        self.check_plausible(total_fen, "total (价税合计)", confirm)
        why = text_field(reason, "reason (红冲原因)")
        with self.store.write() as w:
            b = self._find_invoice(blue, blue_code)
            if ident.number == b["number"] and ident.code == b["code"]:
                raise FieldError("number (发票号码)", number, "is the blue invoice's own number: a red-letter invoice "
                                 "has a number of its own", hint="to undo an entry made by mistake use invoice void")
            if self._number_taken(ident.number, ident.code) is not None:
                raise DuplicateError(f"invoice {ident.number} is already in the ledger")
            if day < date.fromisoformat(b["issue_date"]):
                raise FieldError("date (开票日期)", day.isoformat(), f"is before the blue invoice's date {b['issue_date']}")
            holding = active_claim_ids_holding(self.store, b["id"])
            if holding:
                raise ClaimConflictError(f"blue invoice {blue} is in active claim(s) "
                                         f"{', '.join(f'#{i}' for i in holding)}", hint="withdraw the claim first")
            reds = self.store.query("SELECT COALESCE(SUM(r.ex_tax_fen), 0) AS ex, COALESCE(SUM(r.total_fen), 0) AS t "
                                    "FROM invoices r WHERE r.reverses = ? AND r.number != ?", (b["id"], b["number"]))[0]
            net_ex, net_total = b["ex_tax_fen"] + reds["ex"] + ex_fen, b["total_fen"] + reds["t"] + total_fen
            if net_ex < 0 or net_total < 0:
                raise FieldError("total (价税合计)", format_fen(total_fen),
                                 f"would take blue invoice {blue} below zero: it has ¥{format_fen(b['total_fen'] + reds['t'])} "
                                 "left after earlier red-letter invoices")
            fid = self.archive(w, file)
            rid = w.append("invoices", {
                "company_id": b["company_id"], "vendor_id": b["vendor_id"], "project_id": b["project_id"],
                "category": b["category"], "invoice_type": f"{b['invoice_type']}（红字）", "code": ident.code,
                "number": ident.number, "issue_date": day.isoformat(), "ex_tax_fen": ex_fen, "tax_fen": tax_fen,
                "total_fen": total_fen, "tax_rate": b["tax_rate"], "contract_id": b["contract_id"], "file_id": fid,
                "note": text_field(note, "note (备注)", required=False), "reverses": b["id"], "reason": why})
            w.audit("invoice.red_letter", {"id": rid, "blue": b["id"], "number": ident.number,
                                           "total_fen": total_fen, "reason": why})
            paid = self._paid(b["id"])
        if paid > net_total:
            log.warning("invoice %s: paid ¥%s, more than its net ¥%s after the red-letter invoice: record the refund",
                        blue, format_fen(paid), format_fen(net_total))
        row = {**self.store.query("SELECT * FROM invoices WHERE id = ?", (rid,))[0], "red_of": b["id"]}
        return _invoice(row, set())

    # --- payments ---------------------------------------------------------------------------
    def add_payment(self, invoice: str, pay_date: str | date, amount: str | int | Decimal, bank_ref: str, *,
                    code: str = "", file: str | os.PathLike[str] | None = None, note: str = "",
                    confirm: bool = False) -> Payment:
        """Record a payment (proof of payment) against an invoice; overpayment is refused."""
        day = parse_date(pay_date, "date (付款日期)")
        amount_fen = parse_yuan(amount, "amount (付款金额)", allow_zero=False)
        self.check_plausible(amount_fen, "amount (付款金额)", confirm)
        ref = text_field(bank_ref, "bank_ref (银行流水号)", limit=100)
        with self.store.write() as w:
            inv = self._find_invoice(invoice, code)
            paid = self._paid(inv["id"])
            net_total = inv["total_fen"] + self._red_total(inv["id"])
            if paid + amount_fen > net_total:
                raise FieldError("amount (付款金额)", format_fen(amount_fen, grouping=False),
                                 f"would overpay invoice {invoice}: total {format_fen(net_total)}, "
                                 f"already paid {format_fen(paid)}",
                                 hint="record only the part of the transfer that pays this invoice")
            fid = self.archive(w, file)
            pid = w.append("payments", {"company_id": inv["company_id"], "invoice_id": inv["id"],
                                        "pay_date": day.isoformat(), "amount_fen": amount_fen, "bank_ref": ref,
                                        "file_id": fid, "note": note, "reverses": None, "reason": ""})
            w.audit("payment.add", {"id": pid, "invoice": invoice, "amount_fen": amount_fen, "bank_ref": ref})
        return self.payment(pid)

    def _paid(self, invoice_id: int) -> int:
        row = self.store.conn.execute("SELECT COALESCE(SUM(amount_fen), 0) FROM payments WHERE invoice_id = ?",
                                      (invoice_id,)).fetchone()
        return int(row[0])

    def _red_total(self, invoice_id: int) -> int:
        row = self.store.conn.execute("SELECT COALESCE(SUM(r.total_fen), 0) FROM invoices r JOIN invoices o "
                                      "ON o.id = r.reverses WHERE r.reverses = ? AND r.number != o.number",
                                      (invoice_id,)).fetchone()
        return int(row[0])

    def payment(self, payment_id: int) -> Payment:
        """A payment or a refund (not a void row)."""
        voided = self.voided_payment_ids()
        rows = self.store.query("SELECT * FROM payments WHERE id = ?", (int(payment_id),))
        if not rows or (rows[0]["reverses"] is not None and rows[0]["reverses"] in voided):
            raise NotFoundError(f"payment #{payment_id} is not in the ledger")
        r = rows[0]
        return Payment(r["id"], r["company_id"], r["invoice_id"], date.fromisoformat(r["pay_date"]), r["amount_fen"],
                       r["bank_ref"], r["file_id"], r["note"], r["id"] in voided, r["reverses"])

    def payments(self, invoice: str | None = None, code: str = "") -> list[Payment]:
        """Payments and refunds, oldest first (void rows are not listed; the voided payment is)."""
        voided = self.voided_payment_ids()
        sql, args = "SELECT id, reverses FROM payments", []
        if invoice:
            sql += " WHERE invoice_id = ?"
            args.append(self._find_invoice(invoice, code)["id"])
        return [self.payment(r["id"]) for r in self.store.query(sql + " ORDER BY id", args)
                if r["reverses"] is None or r["reverses"] not in voided]

    def add_refund(self, payment_id: int, refund_date: str | date, amount: str | int | Decimal, bank_ref: str, *,
                   reason: str, file: str | os.PathLike[str] | None = None, note: str = "",
                   confirm: bool = False) -> Payment:
        """Record money coming back for part (or all) of a payment: a negative payment with its own
        bank reference, linked to the payment. The invoice's paid amount is then the net."""
        day = parse_date(refund_date, "date (退款日期)")
        amount_fen = _amount(amount, "amount (退款金额)", negative=True)
        if amount_fen == 0:
            raise FieldError("amount (退款金额)", amount, "must not be zero")
        self.check_plausible(amount_fen, "amount (退款金额)", confirm)
        ref = text_field(bank_ref, "bank_ref (银行流水号)", limit=100)
        why = text_field(reason, "reason (退款原因)")
        with self.store.write() as w:
            p = self.payment(payment_id)
            if p.voided or p.refund_of is not None:
                raise LedgerError(f"payment #{payment_id} is {'voided' if p.voided else 'itself a refund'}",
                                  hint="refund a live payment")
            if ref == p.bank_ref:
                raise FieldError("bank_ref (银行流水号)", ref, "is the payment's own reference: a refund is a transfer "
                                 "of its own", hint="to undo a payment entered by mistake use payment void")
            refunded = int(self.store.conn.execute("SELECT COALESCE(SUM(amount_fen), 0) FROM payments WHERE reverses = ?",
                                                   (p.id,)).fetchone()[0])
            if p.amount_fen + refunded + amount_fen < 0:
                raise FieldError("amount (退款金额)", format_fen(amount_fen),
                                 f"is more than what is left of payment #{p.id}: ¥{format_fen(p.amount_fen + refunded)}")
            holding = active_claim_ids_holding(self.store, p.invoice_id)
            if holding:
                raise ClaimConflictError(f"payment #{payment_id} backs an invoice in active claim(s) "
                                         f"{', '.join(f'#{i}' for i in holding)}", hint="withdraw the claim first")
            fid = self.archive(w, file)
            rid = w.append("payments", {"company_id": p.company_id, "invoice_id": p.invoice_id,
                                        "pay_date": day.isoformat(), "amount_fen": amount_fen, "bank_ref": ref,
                                        "file_id": fid, "note": text_field(note, "note (备注)", required=False),
                                        "reverses": p.id, "reason": why})
            w.audit("payment.refund", {"id": rid, "payment": p.id, "amount_fen": amount_fen, "bank_ref": ref,
                                       "reason": why})
        return self.payment(rid)

    def void_payment(self, payment_id: int, reason: str) -> Payment:
        reason = text_field(reason, "reason (作废原因)")
        with self.store.write() as w:
            p = self.payment(payment_id)
            if p.voided:
                raise LedgerError(f"payment #{payment_id} is already voided")
            if p.refund_of is not None or self.store.query("SELECT id FROM payments WHERE reverses = ?", (p.id,)):
                raise LedgerError(f"payment #{payment_id} is a refund or has refunds: it happened at the bank",
                                  hint="a refund is corrected by another payment or refund, not voided")
            holding = active_claim_ids_holding(self.store, p.invoice_id)
            if holding:
                raise ClaimConflictError(f"payment #{payment_id} backs an invoice in active claim(s) "
                                         f"{', '.join(f'#{i}' for i in holding)}", hint="withdraw the claim first")
            rid = w.append("payments", {"company_id": p.company_id, "invoice_id": p.invoice_id,
                                        "pay_date": p.pay_date.isoformat(), "amount_fen": -p.amount_fen,
                                        "bank_ref": p.bank_ref, "file_id": p.file_id, "note": p.note,
                                        "reverses": p.id, "reason": reason})
            w.audit("payment.void", {"id": p.id, "reversal": rid, "reason": reason})
        return self.payment(payment_id)

    # --- the view claims are computed from --------------------------------------------------
    def invoice_views(self, company_id: int, year: int | None = None) -> list[InvoiceView]:
        """Everything a claim needs to know about each live invoice, in one consistent read:
        red-letter invoices and refunds included, so bases and paid amounts are net."""
        voided = self.voided_invoice_ids()
        voided_pay = self.voided_payment_ids()
        vendors = {v.id: v for v in self.master.vendors()}
        projects = {p.id: p for p in self.master.projects()}
        active = {c.id for c in active_claims(self.store, company_id)}
        released = {int(r[0]) for r in self.store.conn.execute("SELECT DISTINCT project_id FROM releases")}
        converted = {int(r[0]) for r in self.store.conn.execute(
            "SELECT DISTINCT project_id FROM usage_events WHERE project_id IS NOT NULL")}
        converted |= {int(r[0]) for r in self.store.conn.execute(
            "SELECT DISTINCT project_id FROM invoices WHERE project_id IS NOT NULL AND category = 'ai_tech' "
            "AND reverses IS NULL")}
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
            live = [PaymentView(x["id"], date.fromisoformat(x["pay_date"]), x["amount_fen"], x["bank_ref"],
                                x["file_id"] is not None, x["reverses"] is not None)
                    for x in self.store.query("SELECT * FROM payments WHERE invoice_id = ? ORDER BY pay_date, id",
                                              (r["id"],))
                    if x["id"] not in voided_pay and (x["reverses"] is None or x["reverses"] not in voided_pay)
                    and not (x["reverses"] is not None and x["bank_ref"] == self._bank_ref(x["reverses"]))]
            reds = [RedLetterView(x["id"], x["number"], x["code"], date.fromisoformat(x["issue_date"]),
                                  x["ex_tax_fen"], x["tax_fen"], x["total_fen"], x["reason"])
                    for x in self.store.query("SELECT * FROM invoices WHERE reverses = ? AND number != ? ORDER BY id",
                                              (r["id"], r["number"]))]
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
                claimed_in=claimed, red_letters=reds, released=p is not None and p.id in released,
                ai_converted=p is not None and p.id in converted, source_ip=p.source_ip if p else ""))
        return views

    def _bank_ref(self, payment_id: int) -> str:
        row = self.store.conn.execute("SELECT bank_ref FROM payments WHERE id = ?", (payment_id,)).fetchone()
        return str(row[0]) if row else ""
