"""The price book: what one unit of usage costs, per model and unit, with effective dates.

Prices are decimal strings in yuan per ``per`` units (``price = "2.00"``, ``per = 1000000`` is
¥2 per million tokens), currency CNY. The ledger keeps the authoritative copy in its own table
(append-only, hash-chained); ``prices.toml`` next to this file holds the editable defaults that
are loaded into an empty ledger. Agents may read the TOML for a cost estimate before a run.

Lookup for a usage event (model, engine, unit, day): entries for the exact model name win over
entries for the engine name, which win over the wildcard ``model = "*"``; among entries whose
date range holds the day, the one that took effect last wins (so a price change is one more
entry, never an edit). Amounts are rounded half-up to the micro-yuan (0.000001 yuan).
"""

from __future__ import annotations

import logging
import os
import tomllib
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from core.usage import UNITS
from ledger.errors import FieldError
from ledger.money import MICRO_PER_YUAN, parse_decimal
from ledger.validate import parse_date

log = logging.getLogger(__name__)

DEFAULT_PRICE_BOOK = Path(__file__).with_name("prices.toml")
CURRENCIES = ("CNY",)


@dataclass(frozen=True, slots=True)
class PriceEntry:
    model: str  # model name, engine name, or "*" for any
    unit: str  # one of core.usage.UNITS
    price: Decimal  # yuan per `per` units
    per: int = 1
    valid_from: date = date(2000, 1, 1)
    valid_to: date | None = None  # inclusive; None = open-ended
    currency: str = "CNY"
    vendor: str = ""
    source: str = ""  # where the price was taken from (URL, contract number)
    taken: str = ""  # when it was taken (YYYY-MM-DD)
    example: bool = False  # a placeholder that must be edited before real use
    note: str = ""
    id: int | None = None  # row id once stored in a ledger

    def __post_init__(self) -> None:
        where = f"price for {self.model!r}/{self.unit!r}"
        if not self.model:
            raise FieldError("model", self.model, f"{where}: must not be empty (use \"*\" for any model)")
        if self.unit not in UNITS:
            raise FieldError("unit", self.unit, f"{where}: unknown unit; known: {', '.join(UNITS)}")
        if isinstance(self.price, float) or not isinstance(self.price, Decimal):
            object.__setattr__(self, "price", parse_decimal(self.price, f"{where}: price"))
        if self.price < 0 or not self.price.is_finite():
            raise FieldError("price", self.price, f"{where}: must be zero or more")
        if not isinstance(self.per, int) or isinstance(self.per, bool) or self.per < 1:
            raise FieldError("per", self.per, f"{where}: must be a whole number of units, at least 1")
        if self.currency not in CURRENCIES:
            raise FieldError("currency", self.currency,
                             f"{where}: only CNY prices are supported",
                             hint="convert a foreign list price at the rate on your invoices and enter it in CNY")
        if self.valid_to is not None and self.valid_to < self.valid_from:
            raise FieldError("valid_to", self.valid_to.isoformat(), f"{where}: ends before it starts ({self.valid_from})")

    def covers(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_to is None or day <= self.valid_to)

    def amount_micro(self, quantity: Decimal) -> int:
        """Cost of ``quantity`` units in micro-yuan, rounded half-up."""
        exact = quantity * self.price * MICRO_PER_YUAN / self.per
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))

    def key(self) -> tuple[str, ...]:
        """Identity used to skip an entry already in the ledger when a TOML file is imported again."""
        return (self.model, self.unit, format(self.price.normalize(), "f"), str(self.per),
                self.valid_from.isoformat(), self.valid_to.isoformat() if self.valid_to else "", self.currency)


def load_price_toml(path: str | os.PathLike[str]) -> list[PriceEntry]:
    """Read a price-book TOML file (``[[price]]`` tables). Prices must be strings, not floats."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise FieldError("price book", str(file), "does not exist") from e
    except tomllib.TOMLDecodeError as e:
        raise FieldError("price book", str(file), f"is not valid TOML: {e}") from e
    items = data.get("price", [])
    if not isinstance(items, list):
        raise FieldError("price book", str(file), "must contain [[price]] tables")
    known = {"model", "unit", "price", "per", "valid_from", "valid_to", "currency", "vendor", "source",
             "taken", "example", "note"}
    out: list[PriceEntry] = []
    for n, item in enumerate(items, 1):
        where = f"{file.name} [[price]] #{n}"
        unknown = set(item) - known
        if unknown:
            raise FieldError(where, ", ".join(sorted(unknown)), f"unknown keys; known: {', '.join(sorted(known))}")
        for key in ("model", "unit", "price"):
            if key not in item:
                raise FieldError(where, key, "is missing")
        if isinstance(item["price"], float):
            raise FieldError(f"{where} price", item["price"], "write prices as strings so they stay exact",
                             hint=f'price = "{item["price"]}"')
        per = item.get("per", 1)
        if not isinstance(per, int) or isinstance(per, bool):
            raise FieldError(f"{where} per", per, "must be a whole number")
        valid_from = parse_date(str(item.get("valid_from", "2000-01-01")), f"{where} valid_from", allow_future=True)
        valid_to = item.get("valid_to")
        out.append(PriceEntry(
            model=str(item["model"]), unit=str(item["unit"]),
            price=parse_decimal(str(item["price"]), f"{where} price"), per=per,
            valid_from=valid_from,
            valid_to=parse_date(str(valid_to), f"{where} valid_to", allow_future=True) if valid_to else None,
            currency=str(item.get("currency", "CNY")), vendor=str(item.get("vendor", "")),
            source=str(item.get("source", "")), taken=str(item.get("taken", "")),
            example=bool(item.get("example", False)), note=str(item.get("note", "")),
        ))
    return out


def default_price_book_path() -> Path:
    """The price book named in the config (``[ledger] price_book``) or the one shipped here."""
    try:
        from core.config import load_config

        configured = load_config().ledger.price_book
    except Exception as e:  # a broken config must not hide which file is used
        log.warning("could not read the config for [ledger] price_book (%s); using the shipped price book", e)
        configured = ""
    return Path(configured).expanduser() if configured else DEFAULT_PRICE_BOOK


class PriceBook:
    """Entries with the lookup rule described in the module docstring."""

    def __init__(self, entries: list[PriceEntry]) -> None:
        self.entries = list(entries)
        self._by_key: dict[tuple[str, str], list[PriceEntry]] = {}
        for e in self.entries:
            self._by_key.setdefault((e.model, e.unit), []).append(e)
        for lst in self._by_key.values():
            lst.sort(key=lambda e: (e.valid_from, e.id or 0), reverse=True)
        self._cache: dict[tuple[str, str, str, date], PriceEntry | None] = {}

    @classmethod
    def default(cls) -> PriceBook:
        return cls(load_price_toml(default_price_book_path()))

    def lookup(self, model: str, engine: str, unit: str, day: date) -> PriceEntry | None:
        key = (model, engine, unit, day)
        if key in self._cache:
            return self._cache[key]
        found = None
        for name in (model, engine, "*"):
            if not name:
                continue
            for entry in self._by_key.get((name, unit), ()):
                if entry.covers(day):
                    found = entry
                    break
            if found is not None:
                break
        self._cache[key] = found
        return found

    def unit_price(self, model: str, unit: str, on: date, engine: str = "") -> Decimal | None:
        """CNY per single unit on ``on`` (``price / per``), or None when the book has no price.

        The small interface the agents use for estimates and quotes; the ledger itself prices
        usage on import with :meth:`lookup`.
        """
        entry = self.lookup(model, engine, unit, on)
        return None if entry is None else entry.price / entry.per


def load_price_book(path: str | os.PathLike[str] | None = None) -> PriceBook:
    """The price book at ``path``, or the configured/shipped one."""
    return PriceBook(load_price_toml(path if path else default_price_book_path()))
