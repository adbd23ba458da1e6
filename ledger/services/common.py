"""Helpers every ledger service shares: text fields, expense categories, reversal lookups and the
active claims that hold documents."""

from __future__ import annotations

import re
from typing import Any

from ledger.claims import ActiveClaim
from ledger.errors import FieldError
from ledger.policy import CATEGORIES, CATEGORY_ALIASES
from ledger.store import Store

# C0 and C1 control characters, zero-width and bidirectional formatting characters: they hide or
# reorder what a reader sees (terminal escapes, right-to-left overrides), so names never carry them
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def clean_text(value: object) -> str:
    """Text as entered, without control or invisible formatting characters, stripped."""
    return _INVISIBLE.sub("", "" if value is None else str(value)).strip()


def text_field(value: object, field: str, *, required: bool = True, limit: int = 500) -> str:
    s = clean_text(value)
    if required and not s:
        raise FieldError(field, value, "must not be empty")
    if len(s) > limit:
        raise FieldError(field, s[:40] + "…", f"is longer than {limit} characters")
    return s


def category(value: str) -> str:
    key = (value or "ai_tech").strip()
    key = CATEGORY_ALIASES.get(key, key)
    if key not in CATEGORIES:
        raise FieldError("category (费用类别)", value,
                         f"unknown category; known: {', '.join(f'{k} ({v})' for k, v in CATEGORIES.items())}")
    return key


def reversed_ids(store: Store, table: str) -> set[int]:
    """Ids of the rows of ``table`` that a later row reverses."""
    return {int(r[0]) for r in store.conn.execute(f"SELECT reverses FROM {table} WHERE reverses IS NOT NULL")}


def current_rows(store: Store, table: str) -> list[dict[str, Any]]:
    """The newest version of every entity of a master table."""
    return store.query(
        f"SELECT * FROM {table} WHERE id IN (SELECT MAX(id) FROM {table} GROUP BY entity_id) ORDER BY entity_id")


def active_claims(store: Store, company_id: int | None = None) -> list[ActiveClaim]:
    """Recorded claims that are not withdrawn, with the projects of their lines."""
    withdrawn = reversed_ids(store, "claims")
    sql = "SELECT id, company_id, measure, year, project_id, claim_fen FROM claims WHERE reverses IS NULL"
    out = []
    for r in store.query(sql + " ORDER BY id"):
        if r["id"] in withdrawn or (company_id is not None and r["company_id"] != company_id):
            continue
        pids = frozenset(int(x[0]) for x in store.conn.execute(
            "SELECT DISTINCT i.project_id FROM claim_lines l JOIN invoices i ON i.id = l.invoice_id "
            "WHERE l.claim_id = ? AND i.project_id IS NOT NULL", (r["id"],)))
        out.append(ActiveClaim(r["id"], r["measure"], r["year"], r["project_id"], r["claim_fen"], pids))
    return out


def active_claim_ids_holding(store: Store, invoice_id: int) -> list[int]:
    active = {c.id for c in active_claims(store)}
    rows = store.conn.execute("SELECT claim_id FROM claim_lines WHERE invoice_id = ?", (invoice_id,))
    return sorted({int(r[0]) for r in rows} & active)
