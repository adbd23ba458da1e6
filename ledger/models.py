"""Plain data that crosses the ledger's boundary (API, CLI, UI, exports)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta, timezone

CHINA_TZ = timezone(timedelta(hours=8), "Asia/Shanghai")  # China Standard Time has no DST since 1991

INVOICE_TYPES: dict[str, str] = {
    "digital": "数电发票",
    "digital_special": "数电发票（增值税专用发票）",
    "digital_normal": "数电发票（普通发票）",
    "legacy": "增值税发票",
    "special": "增值税专用发票",
    "normal": "增值税普通发票",
    "e_special": "增值税电子专用发票",
    "e_normal": "增值税电子普通发票",
}
DIGITAL_TYPES = ("digital", "digital_special", "digital_normal")


@dataclass(frozen=True, slots=True)
class Company:
    id: int  # entity id (stable across versions)
    version_id: int
    name: str
    uscc: str
    headcount: int
    note: str = ""


@dataclass(frozen=True, slots=True)
class Vendor:
    id: int
    version_id: int
    name: str
    uscc: str
    related_party: bool
    aliases: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    version_id: int
    company_id: int
    name: str
    work_type: str = ""
    source_ip: str = ""
    source_kind: str = ""
    yizhuang: bool = False
    note: str = ""


@dataclass(frozen=True, slots=True)
class ArchivedFile:
    id: int
    sha256: str
    size: int
    original_name: str
    stored_name: str


@dataclass(frozen=True, slots=True)
class Contract:
    id: int
    company_id: int
    vendor_id: int
    project_id: int | None
    number: str
    sign_date: date
    total_fen: int
    file_id: int | None
    note: str = ""
    voided: bool = False


@dataclass(frozen=True, slots=True)
class Invoice:
    id: int
    company_id: int
    vendor_id: int
    project_id: int | None
    category: str
    invoice_type: str
    code: str
    number: str
    issue_date: date
    ex_tax_fen: int
    tax_fen: int
    total_fen: int
    tax_rate: str
    contract_id: int | None
    file_id: int | None
    note: str = ""
    voided: bool = False
    flags: tuple[str, ...] = ()  # warnings raised when it was entered (not stored)
    red_letter_of: int | None = None  # a red-letter invoice (红字发票) of this blue invoice id


@dataclass(frozen=True, slots=True)
class Payment:
    id: int
    company_id: int
    invoice_id: int
    pay_date: date
    amount_fen: int
    bank_ref: str
    file_id: int | None
    note: str = ""
    voided: bool = False
    refund_of: int | None = None  # a refund (negative amount) of this payment id


@dataclass(slots=True)
class UsageImport:
    source: str
    project: str
    imported: int = 0
    skipped: int = 0  # already in the ledger
    unpriced: int = 0
    example_priced: int = 0
    estimated_micro: int = 0
    missing_prices: list[str] = field(default_factory=list)
    prices_loaded: int = 0  # default price-book entries loaded because the ledger had none


@dataclass(frozen=True, slots=True)
class ReconRow:
    vendor_label: str
    vendor_id: int | None
    period: str
    estimated_micro: int
    unpriced_events: int
    invoiced_fen: int

    @property
    def difference_micro(self) -> int:
        return self.invoiced_fen * 10_000 - self.estimated_micro


@dataclass(frozen=True, slots=True)
class RecordedClaim:
    """One row of ``ledger claims``: a recorded claim and whether it is still active."""

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


@dataclass(frozen=True, slots=True)
class ClaimSignoff:
    """Who prepared (recorded) a claim and who approved it, from the chained audit log."""

    claim_id: int
    prepared_by: str
    prepared_at: str
    approved_by: str = ""  # empty: not approved yet
    approved_at: str = ""
    note: str = ""

    @property
    def approved(self) -> bool:
        return bool(self.approved_by)


@dataclass(frozen=True, slots=True)
class HeadcountFact:
    """A recorded headcount: for ``year``, or (``year`` None) from ``evidence_date`` on."""

    headcount: int
    year: int | None
    evidence_date: date
    evidence: str
    seq: int


@dataclass(frozen=True, slots=True)
class Release:
    """A project's work released (上线播出): where, when, under which licence/备案 number."""

    id: int
    project_id: int
    platform: str
    release_date: date
    licence_no: str
    file_id: int | None
    note: str = ""
