"""The ledger's own copy of the price book: entries are chained rows, so a usage estimate can
always be traced to the price it used. A change of price is a new entry with a later start date."""

from __future__ import annotations

import os
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from ledger.errors import DuplicateError
from ledger.pricebook import PriceBook, PriceEntry, default_price_book_path, load_price_toml
from ledger.store import Store, Writer


def _entry(r: dict[str, Any]) -> PriceEntry:
    return PriceEntry(
        model=r["model"], unit=r["unit"], price=Decimal(r["price"]), per=r["per"],
        valid_from=date.fromisoformat(r["valid_from"]),
        valid_to=date.fromisoformat(r["valid_to"]) if r["valid_to"] else None, currency=r["currency"],
        vendor=r["vendor"], source=r["source"], taken=r["taken"], example=bool(r["example"]), note=r["note"],
        id=r["id"])


def _append(w: Writer, e: PriceEntry) -> int:
    return w.append("prices", {
        "model": e.model, "unit": e.unit, "price": format(e.price, "f"), "per": e.per, "currency": e.currency,
        "valid_from": e.valid_from.isoformat(), "valid_to": e.valid_to.isoformat() if e.valid_to else None,
        "vendor": e.vendor, "source": e.source, "taken": e.taken, "example": e.example, "note": e.note})


class PriceService:
    """List, add and import price entries; :meth:`book` is what usage import prices with."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def entries(self) -> list[PriceEntry]:
        return [_entry(r) for r in self.store.query("SELECT * FROM prices ORDER BY id")]

    def book(self) -> PriceBook:
        return PriceBook(self.entries())

    def add(self, entry: PriceEntry) -> PriceEntry:
        with self.store.write() as w:
            if entry.key() in {p.key() for p in self.entries()}:
                raise DuplicateError(f"the price book already has {entry.model}/{entry.unit} at {entry.price} per "
                                     f"{entry.per} from {entry.valid_from}")
            pid = _append(w, entry)
            w.audit("price.add", {"id": pid, "model": entry.model, "unit": entry.unit, "price": str(entry.price),
                                  "per": entry.per, "valid_from": entry.valid_from.isoformat()})
        return next(p for p in self.entries() if p.id == pid)

    def import_toml(self, path: str | os.PathLike[str] | None = None) -> tuple[int, int]:
        """Load a price-book TOML (default: the shipped one); entries already present are skipped.
        Returns (added, skipped)."""
        file = Path(path) if path else default_price_book_path()
        entries = load_price_toml(file)
        with self.store.write() as w:
            have = {p.key() for p in self.entries()}
            added = 0
            for e in entries:
                if e.key() in have:
                    continue
                _append(w, e)
                have.add(e.key())
                added += 1
            w.audit("price.import", {"file": str(file), "added": added, "skipped": len(entries) - added})
        return added, len(entries) - added
