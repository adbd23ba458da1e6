"""What an episode will cost before it is made, and the caps that stop a run that would cost more.

A picture engine adds its lines (images, generation time) and the agent adds the voices' (TTS
characters and calls); every line is priced from the one price book (:mod:`core.prices`). The
caps (``[synth] budget_cny`` and ``gpu_seconds_cap``) are checked against the quote before
anything is generated and against what was spent before each further batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from core.errors import InputError
from core.prices import PriceLookup, yuan_to_fen

__all__ = ["BudgetExceeded", "Caps", "Quote", "QuoteLine", "Spend", "check_caps", "check_quote", "price_quote", "yuan_to_fen"]


class BudgetExceeded(InputError):
    """A run would spend more than the cap in the config; nothing more was generated."""


@dataclass(slots=True)
class QuoteLine:
    what: str
    model: str
    unit: str
    quantity: Decimal
    price: Decimal | None = None  # yuan per unit
    cost_fen: int | None = None


@dataclass(slots=True)
class Quote:
    """What an episode will cost before it is made (dry run)."""

    episode: int
    engine: str
    device: str
    images: int = 0
    keyframes_cached: int = 0
    video_clips: int = 0
    gpu_seconds: Decimal = Decimal(0)
    tts_characters: int = 0
    api_calls: int = 0
    lines: list[QuoteLine] = field(default_factory=list)
    priced: bool = False
    cost_fen: int = 0
    notes: list[str] = field(default_factory=list)

    def table(self) -> str:
        rows = [f"报价 Quote · 第{self.episode}集 · engine {self.engine} · device {self.device}",
                f"{'item':<26}{'model':<28}{'unit':<13}{'quantity':>10}{'¥/unit':>12}{'¥':>10}"]
        for ln in self.lines:
            price = "?" if ln.price is None else f"{ln.price:.6f}".rstrip("0").rstrip(".")
            cost = "?" if ln.cost_fen is None else f"{Decimal(ln.cost_fen) / 100:.2f}"
            rows.append(f"{ln.what:<26}{ln.model[:27]:<28}{ln.unit:<13}{ln.quantity:>10}{price:>12}{cost:>10}")
        total = f"{Decimal(self.cost_fen) / 100:.2f}" if self.priced else "unpriced"
        rows.append(f"images {self.images} (+{self.keyframes_cached} cached), video clips {self.video_clips}, "
                    f"GPU seconds ~{self.gpu_seconds}, total ¥ {total}")
        rows.extend(f"note: {n}" for n in self.notes)
        return "\n".join(rows)


def price_quote(q: Quote, prices: PriceLookup | None, day: date | None = None) -> Quote:
    """Price every line of ``q`` from the price book (``None``: no book, the quote counts units only)."""
    if prices is None:
        q.notes.append("no price book could be read: the quote counts GPU seconds and units only")
        return q
    day = day or date.today()
    q.priced = True
    for ln in q.lines:
        ln.price = prices(ln.model, ln.unit, day)
        if ln.price is None:
            q.priced = False
            q.notes.append(f"no price for {ln.model}/{ln.unit} in the price book")
            continue
        ln.cost_fen = yuan_to_fen(ln.price * ln.quantity)
        q.cost_fen += ln.cost_fen
    return q


@dataclass(slots=True)
class Caps:
    """The run's hard limits (None: no limit)."""

    budget_fen: int | None = None
    gpu_seconds: Decimal | None = None


@dataclass(slots=True)
class Spend:
    """What a run has spent so far (GPU seconds, and fen where the price book prices it)."""

    gpu_seconds: Decimal = Decimal(0)
    cost_fen: int = 0

    def charge(self, prices: PriceLookup | None, model: str, unit: str, quantity: Decimal,
               day: date | None = None) -> None:
        """Add ``quantity`` of ``unit`` to the money spent, when the price book has a price for it."""
        if prices is None:
            return
        price = prices(model, unit, day or date.today())
        if price is not None:
            self.cost_fen += yuan_to_fen(price * quantity)


def check_quote(caps: Caps, q: Quote, spent: Spend) -> str | None:
    """Refuse a run whose quote exceeds a cap. Returns a warning to report when a money cap is set
    but the quote cannot be priced (only the GPU-seconds cap is then enforced)."""
    if caps.gpu_seconds is not None and spent.gpu_seconds + q.gpu_seconds > caps.gpu_seconds:
        raise BudgetExceeded(
            f"episode {q.episode} needs about {q.gpu_seconds} GPU seconds; with {spent.gpu_seconds} spent "
            f"that exceeds the cap of {caps.gpu_seconds}",
            hint="raise [synth] gpu_seconds_cap, lower --steps or the size, or run fewer shots")
    if caps.budget_fen is None:
        return None
    if not q.priced:
        return ("a budget cap is set but the run cannot be priced (no price book or missing prices); "
                "only the GPU-seconds cap is enforced")
    if spent.cost_fen + q.cost_fen > caps.budget_fen:
        raise BudgetExceeded(
            f"episode {q.episode} would cost ¥{Decimal(q.cost_fen) / 100:.2f}; with ¥{Decimal(spent.cost_fen) / 100:.2f} "
            f"spent that exceeds the cap of ¥{Decimal(caps.budget_fen) / 100:.2f}",
            hint="raise [synth] budget_cny, or lower --steps / the size")
    return None


def check_caps(caps: Caps, spent: Spend, what: str) -> None:
    """Before each further batch: stop when a cap has been reached (``what`` names what is left)."""
    if caps.gpu_seconds is not None and spent.gpu_seconds >= caps.gpu_seconds:
        raise BudgetExceeded(f"the GPU-seconds cap {caps.gpu_seconds} was reached after {spent.gpu_seconds}s; "
                             f"{what} not generated",
                             hint="raise [synth] gpu_seconds_cap; finished pictures are kept and reused")
    if caps.budget_fen is not None and spent.cost_fen >= caps.budget_fen:
        raise BudgetExceeded(f"the budget cap ¥{Decimal(caps.budget_fen) / 100:.2f} was reached; {what} not generated",
                             hint="raise [synth] budget_cny; finished pictures are kept and reused")
