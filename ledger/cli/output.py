"""Output helpers of the ledger CLI: aligned tables (CJK characters count double), JSON, money."""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from typing import Any

from ledger.claims import ClaimResult
from ledger.money import format_fen, format_rate

EXIT_OK, EXIT_BROKEN, EXIT_REFUSED, EXIT_STORAGE, EXIT_UNEXPECTED = 0, 1, 2, 3, 4


def width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(width(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for n, r in enumerate(cells):
        lines.append("  ".join(c + " " * (widths[i] - width(c)) for i, c in enumerate(r)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_json(data: Any) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def yuan(fen: int) -> str:
    return "¥" + format_fen(fen)


def print_claim(result: ClaimResult) -> None:
    for line in result.calculation():
        print(line)
    status = {"draft": "草稿（未登记）draft, not recorded", "recorded": f"已登记 recorded as claim #{result.claim_id}",
              "changed_since_recorded": f"已登记 #{result.claim_id}，账簿此后有变动 ledger changed since",
              "withdrawn": "已撤回 withdrawn"}[result.status]
    print(f"状态 status: {status}")
    if result.lines:
        print(table(("发票号码", "开票日期", "供应商", "项目", "计入基数", "比例", "备注"),
                     [(ln.invoice.number, ln.invoice.issue_date, ln.invoice.vendor_name, ln.invoice.project_name,
                       format_fen(ln.base_fen), format_rate(ln.rate), "; ".join(ln.flags)) for ln in result.lines]))
    for e in result.excluded:
        print(f"未计入 excluded {e.invoice.number}: {'; '.join(e.reasons)}")
    for note in result.notes:
        print(f"说明 note: {note}")
