"""Claim-ready exports: the XLSX workbook (费用明细表, 发票清单, 付款清单, 用量明细, 用量对账, 汇总),
a UTF-8 (with BOM) CSV of each sheet, a PDF summary, and an evidence ZIP holding every archived
document with a manifest of sha256 digests.

All amounts are computed from integer fen (or micro-yuan for usage estimates) and written as
exact decimals; totals are sums of those integers, never of floats.

Every export verifies the chain first and refuses when it fails. The chain head printed on every
output is the head the claims were computed at; the export then records itself in the ledger and
signs a checkpoint covering that record (:mod:`ledger.checkpoints`), which goes into every output:
``YEAR_checkpoint.json``, the workbook's 汇总 sheet, the PDF and the evidence ZIP.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ledger.api import Ledger
from ledger.checkpoints import Checkpoint
from ledger.claims import ClaimResult
from ledger.errors import LedgerError
from ledger.export.evidence import write_evidence_zip
from ledger.export.pdf import write_pdf
from ledger.export.sheets import Fen, Micro, Sheet, build_sheets
from ledger.export.writers import write_csv, write_xlsx
from ledger.services.integrity import Sources

__all__ = ["ExportResult", "Fen", "Micro", "Sheet", "build_sheets", "export_claim_package", "write_csv",
           "write_evidence_zip", "write_pdf", "write_xlsx"]


@dataclass(slots=True)
class ExportResult:
    out_dir: Path
    year: int
    chain_head: str  # the head the claims were computed at
    exported_at: str
    claims: list[ClaimResult]
    xlsx: Path
    csvs: list[Path]
    pdf: Path
    evidence_zip: Path
    documents: int
    total_claim_fen: int
    checkpoint: Checkpoint  # signed after the export's own audit row: it covers every row the export wrote
    checkpoint_file: Path

    @property
    def files(self) -> list[Path]:
        return [self.xlsx, *self.csvs, self.pdf, self.checkpoint_file, self.evidence_zip]


def _preflight() -> None:
    """What the files need, checked before the export writes anything to the ledger."""
    try:
        import openpyxl  # noqa: F401
    except ImportError as e:
        from core.errors import MissingDependencyError

        raise MissingDependencyError("openpyxl", "office") from e
    from ledger.fonts import register_cjk_font

    register_cjk_font()


def export_claim_package(ledger: Ledger, year: int, out_dir: Path, *, measure: str = "best",
                         project: str | int | None = None, company: str | int | None = None,
                         claim_id: int | None = None, checkpoints: Sources = (),
                         trusted_keys: Iterable[str] = ()) -> ExportResult:
    """Verify the chain (refusing when it fails), record the export in the ledger, sign a
    checkpoint covering that record, then write the workbook, CSVs, PDF, checkpoint and ZIP."""
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise LedgerError(f"export folder {str(out_dir)!r} is a file", hint="give a folder")
    ledger.integrity.require_intact(checkpoints=checkpoints, trusted_keys=trusted_keys, before=f"export {year}")
    _preflight()
    ledger.integrity.ready()
    exported_at = datetime.now(UTC).isoformat(timespec="seconds")
    with ledger.store.read():
        head = ledger.chain_head().hash
        claims = ledger.claims.for_export(year, measure=measure, project=project, company=company,
                                          claim_id=claim_id)
        for c in claims:
            c.chain_head = head
    with ledger.store.write() as w:
        w.audit("export", {"year": year, "measure": measure, "chain_head": head, "exported_at": exported_at,
                           "claims": [{"measure": c.measure, "claim_id": c.claim_id, "claim_fen": c.claim_fen}
                                      for c in claims]})
    cp = ledger.integrity.sign([f"export {year}"])
    with ledger.store.read():
        sheets = build_sheets(ledger, year, claims, head, exported_at, cp)
    out_dir.mkdir(parents=True, exist_ok=True)
    xlsx = out_dir / f"{year}_claim.xlsx"
    write_xlsx(sheets, xlsx)
    csvs = []
    for sheet in sheets:
        path = out_dir / f"{year}_{sheet.name}.csv"
        write_csv(sheet, path)
        csvs.append(path)
    pdf = out_dir / f"{year}_summary.pdf"
    write_pdf(pdf, claims=claims, year=year, chain_head=head, exported_at=exported_at, checkpoint=cp)
    cp_file = out_dir / f"{year}_checkpoint.json"
    cp_file.write_text(json.dumps(cp.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    evidence = out_dir / f"{year}_evidence.zip"
    with ledger.store.read():
        documents = write_evidence_zip(ledger, evidence, claims=claims, year=year, chain_head=head,
                                       exported_at=exported_at, outputs=[xlsx, *csvs, pdf], checkpoint=cp)
    return ExportResult(out_dir=out_dir, year=year, chain_head=head, exported_at=exported_at, claims=claims,
                        xlsx=xlsx, csvs=csvs, pdf=pdf, evidence_zip=evidence, documents=documents,
                        total_claim_fen=sum(c.claim_fen for c in claims), checkpoint=cp, checkpoint_file=cp_file)
