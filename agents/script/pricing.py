"""Prices for LLM usage records come from the ledger's price book; this package keeps none.

:class:`PriceLookup` is the one thing the script agent needs: ``(model, unit, day) -> CNY per
unit`` or ``None`` when the book has no price. :func:`price_lookup_from_ledger` adapts
``ledger.pricebook`` when it is installed; without it usage is recorded with no cost, and the
ledger prices it on import.

Expected ``ledger.pricebook`` interface (kept small on purpose)::

    load_price_book(path: str | None = None) -> PriceBook
    PriceBook.unit_price(model: str, unit: str, on: datetime.date) -> Decimal | None   # CNY per unit
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Protocol
from urllib.parse import urlparse

log = logging.getLogger(__name__)


class PriceLookup(Protocol):
    def __call__(self, model: str, unit: str, day: date) -> Decimal | None: ...


def price_lookup_from_ledger(price_book_path: str = "") -> PriceLookup | None:
    """The ledger's price book as a :class:`PriceLookup`, or ``None`` (logged) when unavailable."""
    try:
        mod = importlib.import_module("ledger.pricebook")
    except ImportError:
        log.info("ledger.pricebook is not installed: LLM usage is recorded without cost; "
                 "the ledger prices it when it imports the usage")
        return None
    loader: Callable[..., object] | None = getattr(mod, "load_price_book", None)
    if loader is None:
        log.warning("ledger.pricebook has no load_price_book(); LLM usage is recorded without cost")
        return None
    try:
        book = loader(price_book_path or None)
    except Exception as e:  # a broken price book must not stop a script run; the ledger reports it
        log.warning("the price book could not be loaded (%s); LLM usage is recorded without cost", e)
        return None
    unit_price = getattr(book, "unit_price", None)
    if not callable(unit_price):
        log.warning("the price book has no unit_price(model, unit, on); LLM usage is recorded without cost")
        return None

    def lookup(model: str, unit: str, day: date) -> Decimal | None:
        value = unit_price(model, unit, day)
        return None if value is None else Decimal(value)

    return lookup


def vendor_of(base_url: str) -> str:
    """Who is paid for calls to ``base_url``; empty for a server on this machine or network."""
    host = (urlparse(base_url).hostname or "").lower()
    if not host or host in {"localhost", "127.0.0.1", "::1", "0.0.0.0"} or host.endswith(".local") \
            or host.startswith(("10.", "192.168.")):
        return ""
    known = {
        "deepseek.com": "deepseek", "dashscope.aliyuncs.com": "aliyun", "aliyuncs.com": "aliyun",
        "moonshot.cn": "moonshot", "moonshot.ai": "moonshot", "bigmodel.cn": "zhipu", "openai.com": "openai",
        "volces.com": "volcengine", "baidubce.com": "baidu", "hunyuan.cloud.tencent.com": "tencent",
        "siliconflow.cn": "siliconflow", "minimax.chat": "minimax", "minimaxi.com": "minimax",
    }
    for suffix, vendor in known.items():
        if host == suffix or host.endswith("." + suffix):
            return vendor
    return host
