"""Quotes and budgets from the one price book.

Prices come from the price book (``core.prices``; its editable defaults are
``ledger/prices.toml``) through a :data:`PriceLookup`: (model, unit, day) -> yuan per unit.
A provider that prices by tier (resolution, mode) names its entries ``MODEL@TIER``; the
lookup tries the tiered name first, then the bare model name.

Money is integer fen (quotes, budgets) or :class:`~decimal.Decimal` yuan (unit prices), never
float. A budget reserves the quoted cost of a call before the call is sent, so concurrent
workers cannot together overshoot it; the reservation becomes the priced actual usage when the
task finishes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from pipelines.providers.base import Units
from pipelines.providers.errors import BudgetExceeded
from pipelines.providers.secrets import get_logger

log = get_logger(__name__)

PriceLookup = Callable[[str, str, date], Decimal | None]


def default_price_lookup() -> PriceLookup | None:
    """The configured price book as a lookup, or None (logged) when it cannot be read."""
    try:
        from core.prices import price_lookup  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        log.warning("the price book (core.prices) is not available in this installation: quotes are unpriced")
        return None
    lookup: PriceLookup | None = price_lookup()
    return lookup


def yuan_to_fen(value: Decimal) -> int:
    return int((value * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def fen_text(fen: int) -> str:
    return f"{Decimal(fen) / 100:.2f}"


def unit_price(prices: PriceLookup | None, units: Units, day: date) -> Decimal | None:
    """Yuan per unit for ``units`` on ``day``: the tiered entry, else the model's, else None."""
    if prices is None:
        return None
    found = prices(units.price_key, units.unit, day)
    if found is None and "@" in units.price_key:
        found = prices(units.price_key.split("@", 1)[0], units.unit, day)
    return found


@dataclass(slots=True)
class QuoteLine:
    what: str
    provider: str
    model: str  # the price key
    unit: str
    quantity: Decimal
    unit_price: Decimal | None = None  # yuan per unit
    cost_fen: int | None = None
    cached: bool = False  # already made: costs nothing now


@dataclass(slots=True)
class Quote:
    """What a set of requests will cost, line by line, before anything is sent."""

    lines: list[QuoteLine] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def priced(self) -> bool:
        return all(ln.cost_fen is not None for ln in self.lines if not ln.cached)

    @property
    def total_fen(self) -> int:
        return sum(ln.cost_fen or 0 for ln in self.lines if not ln.cached)

    def add(self, what: str, provider: str, units: Units, prices: PriceLookup | None, day: date,
            cached: bool = False) -> QuoteLine:
        price = unit_price(prices, units, day)
        cost = None if price is None else yuan_to_fen(price * units.quantity)
        line = QuoteLine(what, provider, units.price_key, units.unit, units.quantity, price, cost, cached)
        if price is None and not cached:
            note = f"no price for {units.price_key}/{units.unit} in the price book"
            if note not in self.notes:
                self.notes.append(note)
        self.lines.append(line)
        return line

    def by_model(self) -> list[QuoteLine]:
        """One line per (provider, model, unit), summed: the table a person reads."""
        merged: dict[tuple[str, str, str], QuoteLine] = {}
        for ln in self.lines:
            if ln.cached:
                continue
            key = (ln.provider, ln.model, ln.unit)
            m = merged.get(key)
            if m is None:
                merged[key] = QuoteLine(ln.what.split("/")[-1], ln.provider, ln.model, ln.unit, ln.quantity,
                                        ln.unit_price, ln.cost_fen)
            else:
                m.quantity += ln.quantity
                m.cost_fen = None if m.cost_fen is None or ln.cost_fen is None else m.cost_fen + ln.cost_fen
        return list(merged.values())

    def table(self, title: str = "报价 Quote") -> str:
        rows = [title, f"{'provider':<12}{'model':<36}{'unit':<14}{'quantity':>12}{'¥/unit':>12}{'¥':>10}"]
        for ln in self.by_model():
            price = "?" if ln.unit_price is None else f"{ln.unit_price:.6f}".rstrip("0").rstrip(".")
            cost = "?" if ln.cost_fen is None else fen_text(ln.cost_fen)
            rows.append(f"{ln.provider:<12}{ln.model[:35]:<36}{ln.unit:<14}{ln.quantity:>12}{price:>12}{cost:>10}")
        cached = sum(1 for ln in self.lines if ln.cached)
        total = fen_text(self.total_fen) if self.priced else f"{fen_text(self.total_fen)} + unpriced items"
        rows.append(f"total ¥ {total}" + (f" ({cached} results already made, not charged again)" if cached else ""))
        rows.extend(f"note: {n}" for n in self.notes)
        return "\n".join(rows)


class Budget:
    """A spending cap in fen for one run; thread-safe reservations before each billable call."""

    def __init__(self, limit_fen: int | None, spent_fen: int = 0) -> None:
        self.limit_fen = limit_fen
        self.spent_fen = spent_fen
        self.reserved_fen = 0
        self._lock = threading.Lock()

    def check_quote(self, quote: Quote) -> None:
        """Refuse a plan whose quote exceeds the budget (before the first billable call)."""
        if self.limit_fen is None:
            return
        if not quote.priced:
            log.warning("a budget is set but the quote has unpriced items (%s); only priced items count",
                        "; ".join(quote.notes))
        if self.spent_fen + quote.total_fen > self.limit_fen:
            raise BudgetExceeded(f"the quote is ¥{fen_text(quote.total_fen)}, over the budget of "
                                 f"¥{fen_text(self.limit_fen)}" + (f" (¥{fen_text(self.spent_fen)} already spent)"
                                                                   if self.spent_fen else ""),
                                 hint="raise --budget, use cheaper models, or make fewer shots; nothing was sent")

    def reserve(self, fen: int | None, what: str) -> int:
        """Hold ``fen`` for the call about to be sent, or raise before it is sent."""
        if self.limit_fen is None or fen is None:
            return 0
        with self._lock:
            if self.spent_fen + self.reserved_fen + fen > self.limit_fen:
                raise BudgetExceeded(f"{what} would cost ¥{fen_text(fen)}; with ¥{fen_text(self.spent_fen)} spent "
                                     f"and ¥{fen_text(self.reserved_fen)} in flight that exceeds the budget of "
                                     f"¥{fen_text(self.limit_fen)}",
                                     hint="raise --budget; finished results are kept and reused")
            self.reserved_fen += fen
        return fen

    def settle(self, reserved: int, actual_fen: int | None) -> None:
        """Replace a reservation by what the call actually cost (the reservation when unpriced)."""
        with self._lock:
            self.reserved_fen -= reserved
            self.spent_fen += reserved if actual_fen is None else actual_fen

    def release(self, reserved: int) -> None:
        """The call was not billed (refused before running, or failed with no charge)."""
        with self._lock:
            self.reserved_fen -= reserved
