"""Checks for the identifiers that appear on Chinese tax documents.

- 统一社会信用代码 (unified social credit code) per GB 32100-2015, including the embedded
  organisation code's GB 11714 check digit;
- 数电票 (fully digitalised e-invoice) numbers: 20 digits = year (2) + tax region (2) +
  issuing channel (1) + sequence (15); the year must match the invoice date;
- older invoices: a 10- or 12-digit invoice code plus an 8-digit number;
- dates (YYYY-MM-DD) and amounts that add up (ex-tax + tax = total).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta

from ledger.errors import FieldError

USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # 31 characters: no I, O, S, V, Z
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)

FIELD_USCC = "uscc (统一社会信用代码)"
FIELD_NUMBER = "number (发票号码)"
FIELD_CODE = "code (发票代码)"
FIELD_DATE = "date (日期)"


def uscc_check_char(first17: str) -> str:
    total = sum(USCC_CHARSET.index(ch) * w for ch, w in zip(first17, USCC_WEIGHTS, strict=True))
    value = 31 - total % 31
    return USCC_CHARSET[0 if value == 31 else value]


def org_code_check_char(body8: str) -> str:
    """GB 11714 check digit of an 8-character organisation code body (digits and A-Z)."""
    total = 0
    for ch, w in zip(body8, ORG_WEIGHTS, strict=True):
        total += (int(ch) if ch.isdigit() else ord(ch) - 55) * w
    value = 11 - total % 11
    return {10: "X", 11: "0"}.get(value, str(value))


def validate_uscc(code: str, field: str = FIELD_USCC) -> str:
    """Return the code upper-cased and stripped, or raise :class:`FieldError` saying what is wrong."""
    if not isinstance(code, str):
        raise FieldError(field, code, "must be text")
    c = code.strip().upper()
    if len(c) != 18:
        raise FieldError(field, code, f"must be 18 characters, got {len(c)}",
                         hint="copy it from the business licence (营业执照)")
    bad = sorted({ch for ch in c if ch not in USCC_CHARSET})
    if bad:
        raise FieldError(field, code, f"contains characters not allowed by GB 32100-2015: {' '.join(bad)}",
                         hint="allowed: 0-9 and A-H J-N P-R T U W-Y (no I, O, S, V, Z)")
    if not c[2:8].isdigit():
        raise FieldError(field, code, f"positions 3-8 (administrative division code) must be digits, got {c[2:8]!r}")
    org_expected = org_code_check_char(c[8:16])
    if c[16] != org_expected:
        raise FieldError(field, code,
                         f"the organisation code {c[8:17]!r} (positions 9-17) fails its GB 11714 check digit: "
                         f"expected {org_expected!r}, got {c[16]!r}",
                         hint="a typo in positions 9-17; check the licence")
    expected = uscc_check_char(c[:17])
    if c[17] != expected:
        raise FieldError(field, code, f"check character (position 18) should be {expected!r}, got {c[17]!r}",
                         hint="a typo somewhere in the code; check the licence")
    return c


def parse_date(text: str | date, field: str = FIELD_DATE, *, allow_future: bool = False,
               today: date | None = None) -> date:
    """Strict ``YYYY-MM-DD``; dates more than a day in the future are refused unless allowed."""
    if isinstance(text, date):
        value = text
    else:
        s = str(text).strip()
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
            raise FieldError(field, text, "must be a date written YYYY-MM-DD", hint="e.g. 2025-03-31")
        try:
            value = date.fromisoformat(s)
        except ValueError as e:
            raise FieldError(field, text, f"is not a real calendar date ({e})") from e
    if value.year < 2000:
        raise FieldError(field, text, "is before 2000; check the year")
    if not allow_future:
        limit = (today or date.today()) + timedelta(days=1)
        if value > limit:
            raise FieldError(field, text, "is in the future", hint="documents are entered after they are issued")
    return value


@dataclass(frozen=True, slots=True)
class InvoiceId:
    kind: str  # "digital" (数电票) | "legacy" (发票代码 + 发票号码)
    code: str  # "" for 数电票
    number: str


def validate_invoice_id(number: str, code: str, issue_date: date) -> InvoiceId:
    """Check a 数电票 number (no code) or a legacy code + number pair against the issue date."""
    n = str(number).strip()
    c = str(code or "").strip()
    if not n.isdigit() or not n.isascii():
        raise FieldError(FIELD_NUMBER, number, "must contain digits only")
    if not c:
        if len(n) == 8:
            raise FieldError(FIELD_NUMBER, number, "an 8-digit number belongs to an older invoice and needs its code",
                             hint="pass the 10- or 12-digit invoice code (发票代码) with --code")
        if len(n) != 20:
            raise FieldError(FIELD_NUMBER, number,
                             f"a 数电票 number has 20 digits (year, region, channel, sequence), got {len(n)}",
                             hint="older invoices: 8-digit number plus --code")
        year2, region, seq = n[0:2], n[2:4], n[5:20]
        if int(year2) != issue_date.year % 100:
            raise FieldError(FIELD_NUMBER, number,
                             f"starts with year {year2!r} but the invoice is dated {issue_date.isoformat()}",
                             hint="the first two digits of a 数电票 number are the year it was issued")
        if region == "00":
            raise FieldError(FIELD_NUMBER, number, "digits 3-4 (tax region) cannot be 00")
        if set(seq) == {"0"}:
            raise FieldError(FIELD_NUMBER, number, "digits 6-20 (sequence) cannot all be zero")
        return InvoiceId("digital", "", n)
    if not c.isdigit() or not c.isascii():
        raise FieldError(FIELD_CODE, code, "must contain digits only")
    if len(c) not in (10, 12):
        raise FieldError(FIELD_CODE, code, f"an invoice code has 10 or 12 digits, got {len(c)}",
                         hint="数电票 have no code: leave --code out")
    if len(n) != 8:
        raise FieldError(FIELD_NUMBER, number, f"an invoice with a code has an 8-digit number, got {len(n)}")
    return InvoiceId("legacy", c, n)


def check_amounts(ex_tax_fen: int, tax_fen: int, total_fen: int) -> None:
    if ex_tax_fen + tax_fen != total_fen:
        diff = total_fen - ex_tax_fen - tax_fen
        raise FieldError(
            "total (价税合计)", _yuan(total_fen),
            f"does not equal ex-tax {_yuan(ex_tax_fen)} + tax {_yuan(tax_fen)} = {_yuan(ex_tax_fen + tax_fen)} "
            f"(off by {_yuan(diff)})",
            hint="copy the three amounts exactly as printed on the invoice",
        )


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    whole, rest = divmod(abs(fen), 100)
    return f"{sign}{whole}.{rest:02d}"


STANDARD_VAT_RATES = ("0", "0.01", "0.03", "0.05", "0.06", "0.09", "0.13")
