"""The one price book and its lookup: what one unit of usage costs, per model and unit, by date.

Agents quote from it (:func:`price_lookup`), the ledger prices imported usage with it
(:class:`PriceBook`); no agent imports the ledger.

Prices are decimal strings in yuan per ``per`` units (``price = "2.00"``, ``per = 1000000`` is
¥2 per million tokens), currency CNY. The ledger keeps the authoritative copy in its own table
(append-only, hash-chained); the TOML file (``[ledger] price_book`` in the config, else the
editable defaults shipped as ``ledger/prices.toml``) is loaded into an empty ledger and read by
agents for a cost estimate before a run.

Lookup for a usage event (model, engine, unit, day): entries for the exact model name win over
entries for the engine name, which win over the wildcard ``model = "*"``; among entries whose
date range holds the day, the one that took effect last wins (so a price change is one more
entry, never an edit). Amounts are rounded half-up to the micro-yuan (0.000001 yuan).
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

from core.errors import FieldError
from core.usage import UNITS

log = logging.getLogger(__name__)

# The editable defaults ship beside the ledger (one distribution with core). They are data read
# by path, so core imports nothing of the ledger.
DEFAULT_PRICE_BOOK = Path(__file__).resolve().parent.parent / "ledger" / "prices.toml"
CURRENCIES = ("CNY",)
MICRO_PER_YUAN = 1_000_000

# (model, unit, day) -> yuan per single unit, or None when the book has no price for it
PriceLookup = Callable[[str, str, date], Decimal | None]


def parse_decimal(text: str | int | Decimal, field: str) -> Decimal:
    """An exact, finite, non-negative decimal from a string (or int/Decimal); floats are refused."""
    if isinstance(text, float):
        raise FieldError(field, text, "must be a decimal string, not a float", hint='write it in quotes, e.g. "2.00"')
    if isinstance(text, bool):
        raise FieldError(field, text, "is not a number")
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation as e:
        raise FieldError(field, text, "is not a decimal number") from e
    if not value.is_finite():
        raise FieldError(field, text, "must be a finite number")
    if value < 0:
        raise FieldError(field, text, "must not be negative")
    return value


def parse_day(text: str | date, field: str) -> date:
    """A strict ``YYYY-MM-DD`` date from 2000 on (prices may take effect in the future)."""
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
    return value


def yuan_to_fen(value: Decimal) -> int:
    """Yuan (exact) -> integer fen, rounded half-up."""
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


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

    @property
    def unit_price(self) -> Decimal:
        """Yuan per single unit (``price / per``)."""
        return self.price / self.per

    def amount_micro(self, quantity: Decimal) -> int:
        """Cost of ``quantity`` units in micro-yuan, rounded half-up."""
        exact = quantity * self.price * MICRO_PER_YUAN / self.per
        return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))

    def key(self) -> tuple[str, ...]:
        """Identity used to skip an entry already in the ledger when a TOML file is imported again."""
        return (self.model, self.unit, format(self.price.normalize(), "f"), str(self.per),
                self.valid_from.isoformat(), self.valid_to.isoformat() if self.valid_to else "", self.currency)


_KNOWN_KEYS = {"model", "unit", "price", "per", "valid_from", "valid_to", "currency", "vendor", "source",
               "taken", "example", "note"}


def load_price_toml(path: str | os.PathLike[str]) -> list[PriceEntry]:
    """Read a price-book TOML file (``[[price]]`` tables). Prices must be strings, not floats."""
    file = Path(path)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise FieldError("price book", str(file), "does not exist") from e
    except IsADirectoryError as e:
        raise FieldError("price book", str(file), "is a folder, not a TOML file") from e
    except UnicodeDecodeError as e:
        raise FieldError("price book", str(file), f"is not UTF-8 text ({e.reason})") from e
    except tomllib.TOMLDecodeError as e:
        raise FieldError("price book", str(file), f"is not valid TOML: {e}") from e
    items = data.get("price", [])
    if not isinstance(items, list):
        raise FieldError("price book", str(file), "must contain [[price]] tables")
    out: list[PriceEntry] = []
    for n, item in enumerate(items, 1):
        where = f"{file.name} [[price]] #{n}"
        unknown = set(item) - _KNOWN_KEYS
        if unknown:
            raise FieldError(where, ", ".join(sorted(unknown)), f"unknown keys; known: {', '.join(sorted(_KNOWN_KEYS))}")
        for key in ("model", "unit", "price"):
            if key not in item:
                raise FieldError(where, key, "is missing")
        if isinstance(item["price"], float):
            raise FieldError(f"{where} price", item["price"], "write prices as strings so they stay exact",
                             hint=f'price = "{item["price"]}"')
        per = item.get("per", 1)
        if not isinstance(per, int) or isinstance(per, bool):
            raise FieldError(f"{where} per", per, "must be a whole number")
        valid_to = item.get("valid_to")
        out.append(PriceEntry(
            model=str(item["model"]), unit=str(item["unit"]),
            price=parse_decimal(str(item["price"]), f"{where} price"), per=per,
            valid_from=parse_day(str(item.get("valid_from", "2000-01-01")), f"{where} valid_from"),
            valid_to=parse_day(str(valid_to), f"{where} valid_to") if valid_to else None,
            currency=str(item.get("currency", "CNY")), vendor=str(item.get("vendor", "")),
            source=str(item.get("source", "")), taken=str(item.get("taken", "")),
            example=bool(item.get("example", False)), note=str(item.get("note", "")),
        ))
    return out


def default_price_book_path(configured: str | os.PathLike[str] | None = None) -> Path:
    """The price book named by ``configured`` (``[ledger] price_book``; read from the config when
    None), or the one shipped with ReelForge when that is empty."""
    if configured is None:
        try:
            from core.config import load_config

            configured = load_config().ledger.price_book
        except Exception as e:  # a broken config must not hide which file is used
            log.warning("could not read the config for [ledger] price_book (%s); using the shipped price book", e)
            configured = ""
    return Path(configured).expanduser() if str(configured) else DEFAULT_PRICE_BOOK


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
        """CNY per single unit on ``on`` (``price / per``), or None when the book has no price."""
        entry = self.lookup(model, engine, unit, on)
        return None if entry is None else entry.unit_price


def load_price_book(path: str | os.PathLike[str] | None = None) -> PriceBook:
    """The price book at ``path``, or the configured/shipped one."""
    return PriceBook(load_price_toml(path if path else default_price_book_path()))


def price_lookup(path: str | os.PathLike[str] | None = None) -> PriceLookup | None:
    """The price book as a :data:`PriceLookup` for quotes and usage estimates.

    ``path`` is the ``[ledger] price_book`` setting (empty: the shipped book; None: read the
    config). A book that cannot be read is logged (WARNING) and gives ``None``: work goes on and
    is recorded without cost; the ledger prices the usage when it imports it.
    """
    try:
        book = PriceBook(load_price_toml(default_price_book_path(path) if not path else path))
    except Exception as e:  # a broken price book must not stop a run; it is reported
        log.warning("the price book could not be read (%s): usage is quoted and recorded without cost", e)
        return None

    def lookup(model: str, unit: str, day: date) -> Decimal | None:
        return book.unit_price(model, unit, day)

    return lookup
