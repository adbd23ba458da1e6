"""The evidence ZIP: every archived document behind the exported invoices, the exports
themselves, the full usage event list and a manifest of sha256 digests."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ledger.checkpoints import Checkpoint, local_time
from ledger.claims import ClaimResult, InvoiceView
from ledger.errors import ChainError
from ledger.export.writers import FORMULA_PREFIXES

if TYPE_CHECKING:
    from ledger.api import Ledger


def safe_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A CSV row with formula-like text behind a single quote (see :mod:`ledger.export.writers`)."""
    if any(v.__class__ is str and v.startswith(FORMULA_PREFIXES) for v in row):
        return tuple("'" + v if v.__class__ is str and v.startswith(FORMULA_PREFIXES) else v for v in row)
    return row


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _safe(name: str) -> str:
    keep = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return keep.strip("._") or "file"


def write_evidence_zip(ledger: Ledger, path: Path, *, claims: list[ClaimResult], year: int, chain_head: str,
                       exported_at: str, outputs: list[Path], checkpoint: Checkpoint) -> int:
    """Every archived document behind the exported invoices, the exports themselves, the full
    usage event list, and a manifest (CSV + ``SHA256SUMS``) of every file's sha256."""
    conn = ledger.store.conn
    views: dict[int, InvoiceView] = {}
    for c in claims:
        for ln in c.lines:
            views[ln.invoice.id] = ln.invoice
        for e in c.excluded:
            views.setdefault(e.invoice.id, e.invoice)
        for v in c.not_applicable:
            views.setdefault(v.id, v)
    wanted: list[tuple[str, int, str]] = []  # (kind, file id, reference)
    for v in sorted(views.values(), key=lambda x: (x.issue_date, x.id)):
        row = conn.execute("SELECT file_id, contract_id FROM invoices WHERE id = ?", (v.id,)).fetchone()
        if row[0] is not None:
            wanted.append(("invoices", int(row[0]), f"{v.code}-{v.number}" if v.code else v.number))
        if row[1] is not None:
            k = conn.execute("SELECT number, file_id FROM contracts WHERE id = ?", (row[1],)).fetchone()
            if k[1] is not None:
                wanted.append(("contracts", int(k[1]), str(k[0])))
        for p in conn.execute("SELECT id, bank_ref, file_id FROM payments WHERE invoice_id = ? AND reverses IS NULL "
                              "AND file_id IS NOT NULL", (v.id,)):
            wanted.append(("payments", int(p[2]), f"{v.number}_{p[1]}"))
    manifest: list[tuple[str, str, int, str, str]] = []  # path, sha256, size, kind, reference
    seen: set[tuple[str, int]] = set()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for kind, fid, ref in wanted:
            if (kind, fid) in seen:
                continue
            seen.add((kind, fid))
            f = ledger.documents.file(fid)
            src = ledger.archive_dir / f.stored_name
            if not src.is_file():
                raise ChainError(f"archived file {f.original_name!r} (sha256 {f.sha256[:16]}…) is missing from "
                                 f"{str(ledger.archive_dir)!r}", hint="run `ledger verify`; restore the archive from backup")
            data = src.read_bytes()
            digest = _sha256_bytes(data)
            if digest != f.sha256:
                raise ChainError(f"archived file {f.original_name!r} was altered: sha256 {digest[:16]}… but the "
                                 f"ledger recorded {f.sha256[:16]}…", hint="run `ledger verify`")
            name = f"documents/{kind}/{_safe(ref)}_{f.sha256[:8]}{Path(f.stored_name).suffix}"
            zf.writestr(name, data)
            manifest.append((name, digest, len(data), kind, f"{ref} ({f.original_name})"))
        for out in outputs:
            data = out.read_bytes()
            name = f"claim/{out.name}"
            zf.writestr(name, data)
            manifest.append((name, _sha256_bytes(data), len(data), "export", out.name))
        buf = io.StringIO()
        # None -> ""; text from the project's usage records that looks like a formula stays text
        csv.writer(buf).writerows(ledger.usage.event_rows(year, company=claims[0].company.id, formula_safe=True))
        data = ("\ufeff" + buf.getvalue()).encode("utf-8")
        name = f"usage/usage_events_{year}.csv"
        zf.writestr(name, data)
        manifest.append((name, _sha256_bytes(data), len(data), "usage", "every usage event of the year"))
        data = (json.dumps(checkpoint.to_dict(), ensure_ascii=False, indent=2) + "\n").encode("utf-8")
        zf.writestr("checkpoint.json", data)
        manifest.append(("checkpoint.json", _sha256_bytes(data), len(data), "checkpoint",
                         f"signed checkpoint: {checkpoint.count} rows, head {checkpoint.head}"))
        mbuf = io.StringIO()
        mw = csv.writer(mbuf)
        mw.writerow(["path", "sha256", "size", "kind", "reference"])
        mw.writerows(map(safe_row, manifest))
        mw.writerow([])
        mw.writerow(["chain_head", chain_head])
        mw.writerow(["exported_at", local_time(exported_at)])
        mw.writerow(["checkpoint_count", checkpoint.count])
        mw.writerow(["checkpoint_head", checkpoint.head])
        mw.writerow(["signing_key", checkpoint.key])
        zf.writestr("manifest.csv", ("\ufeff" + mbuf.getvalue()).encode("utf-8"))
        zf.writestr("SHA256SUMS", "".join(f"{sha}  {name}\n" for name, sha, *_ in manifest))
        zf.writestr("README.txt", (
            f"ReelForge 证据包 evidence package — {claims[0].company.name} {year}\n"
            f"账簿链头 chain head: {chain_head}\n导出时间 exported at: {local_time(exported_at)}\n"
            f"签名检查点 signed checkpoint: {checkpoint.count} rows, head {checkpoint.head}, "
            f"key {checkpoint.key}\n"
            "校验 check: unzip, then `sha256sum -c SHA256SUMS`; every document's sha256 is also in the ledger.\n"
            "核对 check the ledger still extends this export: `reelforge ledger --db FILE verify --checkpoint "
            "THIS.zip --trust-key KEY`.\n"))
    return sum(1 for m in manifest if m[3] in ("invoices", "payments", "contracts"))
