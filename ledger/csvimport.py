"""CSV imports for companies, vendors, invoices and payments: one transaction per file, so a
file either goes in whole or not at all; errors name the row and the field.

Headers may be the English field names or the Chinese column names of the exports
(e.g. ``发票号码`` for ``number``). Files are read as UTF-8 (with or without BOM), UTF-16 or
UTF-32 with a BOM (Excel's "Unicode text"; comma or tab separated), or else GB18030 (what Excel
writes on Chinese Windows; the log says so). Anything else - another encoding, a binary file -
is refused with the reason before anything is written.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import os
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import ReelForgeError
from ledger.errors import FieldError

if TYPE_CHECKING:
    from ledger.api import Ledger

log = logging.getLogger(__name__)

ALIASES: dict[str, str] = {
    # companies and vendors
    "名称": "name", "企业名称": "name", "公司名称": "name", "供应商名称": "name",
    "统一社会信用代码": "uscc", "供应商统一社会信用代码": "uscc", "信用代码": "uscc",
    "员工人数": "headcount", "人数": "headcount",
    "关联方": "related_party", "是否关联方": "related_party", "别名": "aliases",
    "备注": "note",
    # invoices
    "供应商": "vendor", "发票号码": "number", "发票代码": "code", "开票日期": "date",
    "金额(不含税)": "ex_tax", "金额（不含税）": "ex_tax", "金额": "ex_tax", "不含税金额": "ex_tax",
    "税额": "tax", "价税合计": "total", "税率": "tax_rate", "费用类别": "category",
    "项目": "project", "项目/用途": "project", "合同编号": "contract", "发票类型": "type",
    "文件": "file", "存档文件": "file",
    # payments
    "付款日期": "date", "付款金额": "amount", "银行流水号": "bank_ref", "付款凭证": "file",
}

TRUE = {"1", "true", "yes", "y", "是", "关联", "关联方"}
FALSE = {"", "0", "false", "no", "n", "否", "非关联"}


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))
_UNREADABLE = "is not a CSV this ledger can read"
_SAVE_AS = "save it from the spreadsheet as 'CSV UTF-8 (comma delimited)'"


def _decode(raw: bytes, path: str | os.PathLike[str]) -> str:
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError as e:
                raise FieldError("FILE", str(path), f"{_UNREADABLE}: it starts like {encoding.upper()} but is not "
                                 f"valid {encoding.upper()} ({e.reason} at byte {e.start})", hint=_SAVE_AS) from e
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("gb18030")
    except UnicodeDecodeError as e:
        raise FieldError("FILE", str(path), f"{_UNREADABLE}: it is neither UTF-8, UTF-16/32 with a BOM nor GB18030 "
                         f"(byte {e.start} of {len(raw)})", hint=_SAVE_AS) from e
    log.warning("%s is not UTF-8: read it as GB18030", path)
    return text


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    file = Path(path)
    try:
        raw = file.read_bytes()
    except FileNotFoundError as e:
        raise FieldError("FILE", str(path), "does not exist") from e
    except OSError as e:
        raise FieldError("FILE", str(path), f"cannot be read ({e.strerror})") from e
    text = _decode(raw, path)
    bad = sorted({f"U+{ord(ch):04X}" for ch in text if unicodedata.category(ch) == "Cc" and ch not in "\t\r\n"})
    if bad:
        raise FieldError("FILE", str(path), f"{_UNREADABLE}: it holds control characters ({', '.join(bad[:5])}"
                         f"{' …' if len(bad) > 5 else ''}), so it is not text", hint=_SAVE_AS)
    first = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first and "," not in first else ","  # Excel's "Unicode text" is tab separated
    try:
        return _rows(csv.DictReader(io.StringIO(text), delimiter=delimiter), path)
    except csv.Error as e:
        raise FieldError("FILE", str(path), f"{_UNREADABLE}: {e}", hint=_SAVE_AS) from e


def _rows(reader: csv.DictReader[str], path: str | os.PathLike[str]) -> list[dict[str, str]]:
    if not reader.fieldnames:
        raise FieldError("FILE", str(path), "has no header row")
    rows = []
    for raw_row in reader:
        row = {}
        for key, value in raw_row.items():
            if key is None:
                continue
            k = key.strip()
            row[ALIASES.get(k, k)] = (value or "").strip()
        if any(row.values()):
            rows.append(row)
    return rows


def _flag(value: str, field: str) -> bool:
    v = value.strip().lower()
    if v in TRUE:
        return True
    if v in FALSE:
        return False
    raise FieldError(field, value, "must be yes/no (是/否, true/false, 1/0)")


def _run(ledger: Ledger, path: str | os.PathLike[str], required: tuple[str, ...],
         add: Callable[[dict[str, str]], object]) -> int:
    rows = read_rows(path)
    if rows:
        missing = [k for k in required if k not in rows[0]]
        if missing:
            raise FieldError("FILE", str(path), f"has no column(s) {', '.join(missing)}",
                             hint=f"needed: {', '.join(required)}")
    with ledger.store.write() as w:
        for n, row in enumerate(rows, 2):  # row 1 is the header
            try:
                add(row)
            except ReelForgeError as e:
                e.message = f"{Path(path).name} row {n}: {e.message}"
                raise
        w.audit("csv.import", {"file": str(path), "rows": len(rows)})
    return len(rows)


def import_companies(ledger: Ledger, path: str | os.PathLike[str]) -> int:
    return _run(ledger, path, ("name", "uscc", "headcount"),
                lambda r: ledger.master.add_company(r["name"], r["uscc"], r["headcount"], note=r.get("note", "")))


def import_vendors(ledger: Ledger, path: str | os.PathLike[str]) -> int:
    return _run(ledger, path, ("name", "uscc"), lambda r: ledger.master.add_vendor(
        r["name"], r["uscc"], related_party=_flag(r.get("related_party", ""), "related_party (关联方)"),
        aliases=[a for a in r.get("aliases", "").replace("；", ";").split(";") if a.strip()],
        note=r.get("note", "")))


def import_invoices(ledger: Ledger, path: str | os.PathLike[str], *, confirm: bool = False) -> int:
    base = Path(path).parent

    def add(r: dict[str, str]) -> None:
        file = r.get("file") or None
        if file and not Path(file).is_absolute():
            file = str(base / file)
        ledger.documents.add_invoice(r["vendor"], r["number"], r["date"], r["ex_tax"], r["tax"], r["total"],
                           code=r.get("code", ""), invoice_type=r.get("type") or None,
                           tax_rate=r.get("tax_rate") or None, category=r.get("category") or "ai_tech",
                           project=r.get("project") or None, contract=r.get("contract") or None,
                           company=r.get("company") or None, file=file, note=r.get("note", ""), confirm=confirm)

    return _run(ledger, path, ("vendor", "number", "date", "ex_tax", "tax", "total"), add)


def import_payments(ledger: Ledger, path: str | os.PathLike[str], *, confirm: bool = False) -> int:
    base = Path(path).parent

    def add(r: dict[str, str]) -> None:
        file = r.get("file") or None
        if file and not Path(file).is_absolute():
            file = str(base / file)
        ledger.documents.add_payment(r["invoice"] if "invoice" in r else r["number"], r["date"], r["amount"], r["bank_ref"],
                           code=r.get("code", ""), file=file, note=r.get("note", ""), confirm=confirm)

    rows = read_rows(path)
    key = "invoice" if rows and "invoice" in rows[0] else "number"
    return _run(ledger, path, (key, "date", "amount", "bank_ref"), add)
