"""Who is paid for an LLM call; prices come from the one price book in :mod:`core.prices`.

:data:`PriceLookup` (``(model, unit, day) -> CNY per unit`` or ``None``) is re-exported here for
the script engines; :func:`core.prices.price_lookup` builds one from the configured price book.
"""

from __future__ import annotations

from urllib.parse import urlparse

from core.prices import PriceLookup

__all__ = ["PriceLookup", "vendor_of"]


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
