"""Reconciliation: usage estimates against invoiced amounts, per vendor and period."""

from __future__ import annotations

from ledger.errors import FieldError
from ledger.models import ReconRow, Vendor
from ledger.services.documents import Documents
from ledger.services.master import MasterData
from ledger.store import Store


class Reconciliation:
    """Usage estimates (micro-yuan) beside the invoices of the measure-5 categories."""

    def __init__(self, store: Store, master: MasterData, documents: Documents) -> None:
        self.store = store
        self.master = master
        self.documents = documents

    def reconcile(self, year: int, *, period: str = "month", company: str | int | None = None,
                  record: bool = False) -> list[ReconRow]:
        """Usage estimates against invoiced amounts, per vendor and period (month, quarter, year);
        ``record`` stores the rows in the ledger."""
        if period not in ("month", "quarter", "year"):
            raise FieldError("period", period, "must be month, quarter or year")
        c = self.master.company(company)
        s = self.master.settings()
        by_label: dict[str, Vendor] = {}
        for v in self.master.vendors():
            for label in (v.name, v.uscc, *v.aliases):
                by_label[label.lower()] = v

        def bucket(day: str) -> str:
            if period == "year":
                return day[:4]
            if period == "quarter":
                return f"{day[:4]}-Q{(int(day[5:7]) - 1) // 3 + 1}"
            return day[:7]

        # (label, period) -> [vendor id, estimated micro-yuan, unpriced events, invoiced fen]
        acc: dict[tuple[str, str], list[int | None]] = {}

        def slot(key: tuple[str, str], vendor_id: int | None) -> list[int | None]:
            return acc.setdefault(key, [vendor_id, 0, 0, 0])

        for vendor_label, month, amount, unpriced in self.store.conn.execute(
                "SELECT vendor, substr(event_date, 1, 7) || '-01', COALESCE(SUM(amount_micro), 0), "
                "SUM(amount_micro IS NULL) FROM usage_events WHERE company_id = ? AND event_date BETWEEN ? AND ? "
                "GROUP BY vendor, substr(event_date, 1, 7)", (c.id, f"{year:04d}-01-01", f"{year:04d}-12-31")):
            found = by_label.get(str(vendor_label).lower())
            label = found.name if found else (vendor_label or "本地 local (no vendor)")
            row = slot((label, bucket(month)), found.id if found else None)
            row[1] = int(row[1] or 0) + int(amount)
            row[2] = int(row[2] or 0) + int(unpriced)
        for inv in self.documents.invoice_views(c.id, year):
            if inv.category not in s.m5_categories:
                continue
            row = slot((inv.vendor_name, bucket(inv.issue_date.isoformat())), inv.vendor_id)
            row[3] = int(row[3] or 0) + (inv.ex_tax_fen if s.basis == "ex_tax" else inv.total_fen)
        rows = [ReconRow(label, vals[0], per, int(vals[1] or 0), int(vals[2] or 0), int(vals[3] or 0))
                for (label, per), vals in sorted(acc.items())]
        if record:
            with self.store.write() as w:
                w.append_many("reconciliations", [{
                    "company_id": c.id, "vendor_id": r.vendor_id, "vendor_label": r.vendor_label, "period": r.period,
                    "basis": s.basis, "estimated_micro": r.estimated_micro, "unpriced_events": r.unpriced_events,
                    "invoiced_fen": r.invoiced_fen, "note": ""} for r in rows])
                w.audit("reconcile.record", {"year": year, "period": period, "rows": len(rows)})
        return rows
