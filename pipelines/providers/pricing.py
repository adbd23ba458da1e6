"""Quotes and budgets from the one price book.

Prices come from the price book (``core.prices``; its editable defaults are
``ledger/prices.toml``) through a :data:`PriceLookup`: (model, unit, day) -> yuan per unit.
A provider that prices by tier (resolution, mode) names its entries ``MODEL@TIER``; the
lookup tries the tiered name first, then the bare model name.

Money is exact :class:`~decimal.Decimal` yuan (a line of speech can cost 0.003 yuan: rounding
each call to the fen would lose it), shown rounded half-up to the fen, never float. A budget reserves the quoted cost of a call before the call is sent, so concurrent
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


def yuan_text(value: Decimal) -> str:
    """Yuan shown to the fen, rounded half-up."""
    return f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP)}"


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
    cost: Decimal | None = None  # yuan, exact
    cached: bool = False  # already made: costs nothing now


@dataclass(slots=True)
class Quote:
    """What a set of requests will cost, line by line, before anything is sent."""

    lines: list[QuoteLine] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def priced(self) -> bool:
        return all(ln.cost is not None for ln in self.lines if not ln.cached)

    @property
    def total(self) -> Decimal:
        """Yuan, exact (priced lines only)."""
        return sum((ln.cost or Decimal(0) for ln in self.lines if not ln.cached), Decimal(0))

    @property
    def total_fen(self) -> int:
        return yuan_to_fen(self.total)

    def add(self, what: str, provider: str, units: Units, prices: PriceLookup | None, day: date,
            cached: bool = False) -> QuoteLine:
        price = unit_price(prices, units, day)
        cost = None if price is None else price * units.quantity
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
                                        ln.unit_price, ln.cost)
            else:
                m.quantity += ln.quantity
                m.cost = None if m.cost is None or ln.cost is None else m.cost + ln.cost
        return list(merged.values())

    def table(self, title: str = "报价 Quote") -> str:
        rows = [title, f"{'provider':<12}{'model':<36}{'unit':<14}{'quantity':>12}{'¥/unit':>12}{'¥':>10}"]
        for ln in self.by_model():
            price = "?" if ln.unit_price is None else f"{ln.unit_price:.6f}".rstrip("0").rstrip(".")
            cost = "?" if ln.cost is None else yuan_text(ln.cost)
            rows.append(f"{ln.provider:<12}{ln.model[:35]:<36}{ln.unit:<14}{ln.quantity:>12}{price:>12}{cost:>10}")
        cached = sum(1 for ln in self.lines if ln.cached)
        total = yuan_text(self.total) if self.priced else f"{yuan_text(self.total)} + unpriced items"
        rows.append(f"total ¥ {total}" + (f" ({cached} results already made, not charged again)" if cached else ""))
        rows.extend(f"note: {n}" for n in self.notes)
        return "\n".join(rows)


class Budget:
    """A spending cap in yuan for one run; thread-safe reservations before each billable call."""

    def __init__(self, limit: Decimal | None, spent: Decimal = Decimal(0)) -> None:
        if isinstance(limit, float) or isinstance(spent, float):
            raise TypeError("money is Decimal, never float")
        self.limit = limit
        self.spent = spent
        self.reserved = Decimal(0)
        self._lock = threading.Lock()

    def check_quote(self, quote: Quote) -> None:
        """Refuse a plan whose quote exceeds the budget (before the first billable call)."""
        if self.limit is None:
            return
        if not quote.priced:
            log.warning("a budget is set but the quote has unpriced items (%s); only priced items count",
                        "; ".join(quote.notes))
        if self.spent + quote.total > self.limit:
            spent = f" (¥{yuan_text(self.spent)} already spent)" if self.spent else ""
            raise BudgetExceeded(f"the quote is ¥{yuan_text(quote.total)}, over the budget of "
                                 f"¥{yuan_text(self.limit)}{spent}",
                                 hint="raise --budget, use cheaper models, or make fewer shots; nothing was sent")

    def reserve(self, cost: Decimal | None, what: str) -> Decimal:
        """Hold ``cost`` for the call about to be sent, or raise before it is sent."""
        if self.limit is None or cost is None:
            return Decimal(0)
        with self._lock:
            if self.spent + self.reserved + cost > self.limit:
                raise BudgetExceeded(f"{what} would cost ¥{yuan_text(cost)}; with ¥{yuan_text(self.spent)} spent "
                                     f"and ¥{yuan_text(self.reserved)} in flight that exceeds the budget of "
                                     f"¥{yuan_text(self.limit)}",
                                     hint="raise --budget; finished results are kept and reused")
            self.reserved += cost
        return cost

    def settle(self, reserved: Decimal, actual: Decimal | None) -> None:
        """Replace a reservation by what the call actually cost (the reservation when unpriced)."""
        with self._lock:
            self.reserved -= reserved
            self.spent += reserved if actual is None else actual

    def release(self, reserved: Decimal) -> None:
        """The call was not billed (refused before running, or failed with no charge)."""
        with self._lock:
            self.reserved -= reserved
