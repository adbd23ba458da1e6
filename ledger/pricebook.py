"""The price book, as the ledger knows it: a re-export of :mod:`core.prices`.

The model, the TOML reader and the lookup live in ``core.prices`` (one price book, read by the
agents for quotes and by the ledger to price usage). This module keeps the ledger's names; its
one addition is that a malformed price-book file raises the ledger's own :class:`FieldError`.
"""

from __future__ import annotations

import os

from core import errors as core_errors
from core import prices as _prices
from core.prices import (
    CURRENCIES,
    DEFAULT_PRICE_BOOK,
    PriceBook,
    PriceEntry,
    default_price_book_path,
)
from ledger.errors import FieldError

__all__ = ["CURRENCIES", "DEFAULT_PRICE_BOOK", "PriceBook", "PriceEntry", "default_price_book_path",
           "load_price_book", "load_price_toml"]


def load_price_toml(path: str | os.PathLike[str]) -> list[PriceEntry]:
    """:func:`core.prices.load_price_toml`, raising :class:`ledger.errors.FieldError` on bad input."""
    try:
        return _prices.load_price_toml(path)
    except core_errors.FieldError as e:
        raise FieldError(e.field, e.value, e.problem, hint=e.hint) from e


def load_price_book(path: str | os.PathLike[str] | None = None) -> PriceBook:
    """The price book at ``path``, or the configured/shipped one."""
    return PriceBook(load_price_toml(path if path else default_price_book_path()))
