"""Ledger test data: credit codes whose check characters are known to be right, well-formed
invoice numbers, and a paid invoice in one call."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

from ledger.validate import org_code_check_char, uscc_check_char

if TYPE_CHECKING:
    from ledger import Ledger

# Real-world codes whose two check characters are known to be right (the first is the worked
# example of GB 32100-2015); they anchor the validator independently of its own arithmetic.
USCC_STUDIO = "91350100M000100Y43"
USCC_DEEPSEEK = "91330100716105852F"
USCC_RENTAL = "91110108551385082Q"


def make_uscc(body16: str) -> str:
    """A valid code from 16 characters (registration + type + region + organisation body)."""
    first17 = body16 + org_code_check_char(body16[8:16])
    return first17 + uscc_check_char(first17)


USCC_RELATED = make_uscc("9111010512345678")
USCC_OTHER = make_uscc("91110302MA01ABCD")


def n20(year: int, seq: int) -> str:
    """A well-formed 数电票 number: year, region 11 (Beijing), channel 1, 15-digit sequence."""
    return f"{year % 100:02d}111{seq:015d}"


def paid_invoice(lg: Ledger, vendor: str, number: str, day: str, ex: str, tax: str, total: str,
                 **kw: object) -> None:
    lg.documents.add_invoice(vendor, number, day, ex, tax, total, **kw)  # type: ignore[arg-type]
    lg.documents.add_payment(number, day, total, bank_ref=f"BANK-{number[-6:]}")


def have_cjk_font() -> bool:
    """The PDF needs a TrueType CJK font (Debian fonts-wqy-microhei); without one, export fails
    clearly and the tests that export skip that step."""
    from ledger.fonts import cjk_font_available

    return cjk_font_available()


def forge_rehash(db: str | Path, table: str, row_id: int, changes: dict[str, object]) -> None:
    """What a forger with the documented recipe does: edit a row behind the ledger's back, then
    recompute every hash from that row to the head and put the triggers back exactly as they were
    (same names, same SQL). The chain then verifies on its own."""
    from ledger import schema
    from ledger.chain import values_hash

    conn = sqlite3.connect(db)
    for t in schema.CHAINED:
        conn.execute(f"DROP TRIGGER {t}_append_only_update")
    sets = ", ".join(f"{k} = ?" for k in changes)
    conn.execute(f"UPDATE {table} SET {sets} WHERE id = ?", (*changes.values(), row_id))
    start = conn.execute(f"SELECT seq FROM {table} WHERE id = ?", (row_id,)).fetchone()[0]
    prev = schema.GENESIS
    rows: list[tuple[int, str, int]] = []
    for t in schema.CHAINED:
        hit = conn.execute(f"SELECT row_hash FROM {t} WHERE seq = ?", (start - 1,)).fetchone()
        if hit:
            prev = hit[0]
        rows += [(s, t, i) for s, i in conn.execute(f"SELECT seq, id FROM {t} WHERE seq >= ?", (start,))]
    for _, t, i in sorted(rows):
        cols = schema.content_columns(t)
        values = conn.execute(f"SELECT {', '.join(cols)} FROM {t} WHERE id = ?", (i,)).fetchone()
        digest = values_hash(prev, t, values)
        conn.execute(f"UPDATE {t} SET prev_hash = ?, row_hash = ? WHERE id = ?", (prev, digest, i))
        prev = digest
    for statement in schema.ddl().split(";\n"):
        if "CREATE TRIGGER" in statement and "_update" in statement:
            conn.execute(statement)
    conn.commit()
    conn.close()


def forge_truncate(db: str | Path, keep: int) -> None:
    """Cut the chain after position ``keep`` and put the delete triggers back as they were."""
    from ledger import schema

    conn = sqlite3.connect(db)
    for t in schema.CHAINED:
        conn.execute(f"DROP TRIGGER {t}_append_only_delete")
        conn.execute(f"DELETE FROM {t} WHERE seq > ?", (keep,))
    for statement in schema.ddl().split(";\n"):
        if "CREATE TRIGGER" in statement and "_delete" in statement:
            conn.execute(statement)
    conn.commit()
    conn.close()
