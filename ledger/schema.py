"""Tables of the ledger. Every table here is append-only and hash-chained.

Each row carries ``id``, ``seq`` (its place in the one chain that runs through all tables),
``created_at`` and, last, ``prev_hash`` and ``row_hash``. ``row_hash`` is
``sha256(prev_hash + canonical JSON of every other column plus the table name)``. Triggers refuse
UPDATE and DELETE; corrections are new rows (reversals with ``reverses`` pointing at the original,
new versions of master records with the same ``entity_id``).

One chain across all tables (rather than one per table) means the order of every write is fixed
and a single head hash, printed on every export, vouches for the whole ledger at that moment.
"""

from __future__ import annotations

SCHEMA_VERSION = 2  # 2 adds headcounts and releases (a version-1 ledger gains them when opened)
GENESIS = "0" * 64

_HEAD = (("id", "INTEGER PRIMARY KEY"), ("seq", "INTEGER NOT NULL UNIQUE"), ("created_at", "TEXT NOT NULL"))
_TAIL = (("prev_hash", "TEXT NOT NULL"), ("row_hash", "TEXT NOT NULL"))

# table -> columns between the head and the tail, and extra table constraints
TABLES: dict[str, tuple[tuple[tuple[str, str], ...], tuple[str, ...]]] = {
    "companies": ((
        ("entity_id", "INTEGER NOT NULL REFERENCES companies(id)"),
        ("name", "TEXT NOT NULL"),
        ("uscc", "TEXT NOT NULL"),
        ("headcount", "INTEGER NOT NULL CHECK (headcount >= 0)"),
        ("note", "TEXT NOT NULL"),
    ), ()),
    "vendors": ((
        ("entity_id", "INTEGER NOT NULL REFERENCES vendors(id)"),
        ("name", "TEXT NOT NULL"),
        ("uscc", "TEXT NOT NULL"),
        ("related_party", "INTEGER NOT NULL CHECK (related_party IN (0, 1))"),
        ("aliases", "TEXT NOT NULL"),  # JSON list of names used in usage records
        ("note", "TEXT NOT NULL"),
    ), ()),
    "projects": ((
        ("entity_id", "INTEGER NOT NULL REFERENCES projects(id)"),
        ("company_id", "INTEGER NOT NULL REFERENCES companies(id)"),
        ("name", "TEXT NOT NULL"),
        ("work_type", "TEXT NOT NULL"),
        ("source_ip", "TEXT NOT NULL"),
        ("source_kind", "TEXT NOT NULL"),
        ("yizhuang", "INTEGER NOT NULL CHECK (yizhuang IN (0, 1))"),
        ("note", "TEXT NOT NULL"),
    ), ()),
    "headcounts": ((  # staff per year, with the date and kind of evidence; year NULL = no year given
        ("company_id", "INTEGER NOT NULL REFERENCES companies(id)"),
        ("year", "INTEGER"),
        ("headcount", "INTEGER NOT NULL CHECK (headcount >= 0)"),
        ("evidence_date", "TEXT NOT NULL"),
        ("evidence", "TEXT NOT NULL"),
        ("note", "TEXT NOT NULL"),
    ), ()),
    "files": ((
        ("sha256", "TEXT NOT NULL UNIQUE"),
        ("size", "INTEGER NOT NULL"),
        ("original_name", "TEXT NOT NULL"),
        ("stored_name", "TEXT NOT NULL"),
    ), ()),
    "prices": ((
        ("model", "TEXT NOT NULL"),
        ("unit", "TEXT NOT NULL"),
        ("price", "TEXT NOT NULL"),  # decimal yuan per `per` units
        ("per", "INTEGER NOT NULL CHECK (per >= 1)"),
        ("currency", "TEXT NOT NULL"),
        ("valid_from", "TEXT NOT NULL"),
        ("valid_to", "TEXT"),
        ("vendor", "TEXT NOT NULL"),
        ("source", "TEXT NOT NULL"),
        ("taken", "TEXT NOT NULL"),
        ("example", "INTEGER NOT NULL CHECK (example IN (0, 1))"),
        ("note", "TEXT NOT NULL"),
    ), ()),
    "contracts": ((
        ("company_id", "INTEGER NOT NULL REFERENCES companies(id)"),
        ("vendor_id", "INTEGER NOT NULL REFERENCES vendors(id)"),
        ("project_id", "INTEGER REFERENCES projects(id)"),
        ("number", "TEXT NOT NULL"),
        ("sign_date", "TEXT NOT NULL"),
        ("total_fen", "INTEGER NOT NULL"),
        ("file_id", "INTEGER REFERENCES files(id)"),
        ("note", "TEXT NOT NULL"),
        ("reverses", "INTEGER REFERENCES contracts(id)"),
        ("reason", "TEXT NOT NULL"),
    ), ()),
    "invoices": ((
        ("company_id", "INTEGER NOT NULL REFERENCES companies(id)"),
        ("vendor_id", "INTEGER NOT NULL REFERENCES vendors(id)"),
        ("project_id", "INTEGER REFERENCES projects(id)"),
        ("category", "TEXT NOT NULL"),
        ("invoice_type", "TEXT NOT NULL"),
        ("code", "TEXT NOT NULL"),  # '' for 数电票
        ("number", "TEXT NOT NULL"),
        ("issue_date", "TEXT NOT NULL"),
        ("ex_tax_fen", "INTEGER NOT NULL"),
        ("tax_fen", "INTEGER NOT NULL"),
        ("total_fen", "INTEGER NOT NULL"),
        ("tax_rate", "TEXT NOT NULL"),
        ("contract_id", "INTEGER REFERENCES contracts(id)"),
        ("file_id", "INTEGER REFERENCES files(id)"),
        ("note", "TEXT NOT NULL"),
        ("reverses", "INTEGER REFERENCES invoices(id)"),
        ("reason", "TEXT NOT NULL"),
    ), (
        "CHECK (ex_tax_fen + tax_fen = total_fen)",
        "CHECK ((reverses IS NULL AND total_fen > 0 AND ex_tax_fen >= 0 AND tax_fen >= 0)"
        " OR (reverses IS NOT NULL AND total_fen < 0 AND ex_tax_fen <= 0 AND tax_fen <= 0))",
    )),
    "payments": ((
        ("company_id", "INTEGER NOT NULL REFERENCES companies(id)"),
        ("invoice_id", "INTEGER NOT NULL REFERENCES invoices(id)"),
        ("pay_date", "TEXT NOT NULL"),
        ("amount_fen", "INTEGER NOT NULL"),
        ("bank_ref", "TEXT NOT NULL"),
        ("file_id", "INTEGER REFERENCES files(id)"),
        ("note", "TEXT NOT NULL"),
        ("reverses", "INTEGER REFERENCES payments(id)"),
        ("reason", "TEXT NOT NULL"),
    ), ("CHECK ((reverses IS NULL AND amount_fen > 0) OR (reverses IS NOT NULL AND amount_fen < 0))",)),
    "releases": ((  # a project's work released (上线播出): platform, date, licence/备案 number
        ("project_id", "INTEGER NOT NULL REFERENCES projects(id)"),
        ("platform", "TEXT NOT NULL"),
        ("release_date", "TEXT NOT NULL"),
        ("licence_no", "TEXT NOT NULL"),
        ("file_id", "INTEGER REFERENCES files(id)"),
        ("note", "TEXT NOT NULL"),
    ), ()),
    "usage_events": ((
        ("company_id", "INTEGER NOT NULL REFERENCES companies(id)"),
        ("project_id", "INTEGER REFERENCES projects(id)"),
        ("source", "TEXT NOT NULL"),  # the usage.sqlite it came from
        ("run_id", "TEXT NOT NULL"),
        ("event_id", "TEXT NOT NULL"),
        ("event_at", "TEXT NOT NULL"),
        ("event_date", "TEXT NOT NULL"),  # China date (UTC+8) of event_at
        ("stage", "TEXT NOT NULL"),
        ("engine", "TEXT NOT NULL"),
        ("model", "TEXT NOT NULL"),
        ("device", "TEXT NOT NULL"),
        ("vendor", "TEXT NOT NULL"),
        ("unit", "TEXT NOT NULL"),
        ("quantity", "TEXT NOT NULL"),
        ("seconds", "TEXT NOT NULL"),
        ("tokens_in", "INTEGER NOT NULL"),
        ("tokens_out", "INTEGER NOT NULL"),
        ("tokens_cached", "INTEGER NOT NULL"),
        ("licence", "TEXT NOT NULL"),
        ("detail", "TEXT NOT NULL"),
        ("price_id", "INTEGER REFERENCES prices(id)"),
        ("unit_price", "TEXT"),  # price snapshot: yuan per price_per units
        ("price_per", "INTEGER"),
        ("price_example", "INTEGER NOT NULL"),
        ("amount_micro", "INTEGER"),  # estimated cost in micro-yuan; NULL = no price
    ), ("UNIQUE (run_id, event_id)",)),
    "claims": ((
        ("company_id", "INTEGER NOT NULL REFERENCES companies(id)"),
        ("measure", "INTEGER NOT NULL CHECK (measure IN (5, 6))"),
        ("year", "INTEGER NOT NULL"),
        ("project_id", "INTEGER REFERENCES projects(id)"),
        ("basis", "TEXT NOT NULL"),
        ("rate", "TEXT NOT NULL"),
        ("base_fen", "INTEGER NOT NULL"),
        ("raw_fen", "TEXT NOT NULL"),  # exact sum of base x rate, in fen
        ("rounded_fen", "INTEGER NOT NULL"),
        ("cap_fen", "INTEGER NOT NULL"),
        ("cap_used_fen", "INTEGER NOT NULL"),
        ("claim_fen", "INTEGER NOT NULL"),
        ("settings", "TEXT NOT NULL"),  # JSON of the policy settings used
        ("chain_head", "TEXT NOT NULL"),  # head of the chain when the claim was computed
        ("reverses", "INTEGER REFERENCES claims(id)"),
        ("reason", "TEXT NOT NULL"),
    ), ()),
    "claim_lines": ((
        ("claim_id", "INTEGER NOT NULL REFERENCES claims(id)"),
        ("invoice_id", "INTEGER NOT NULL REFERENCES invoices(id)"),
        ("base_fen", "INTEGER NOT NULL"),
        ("rate", "TEXT NOT NULL"),
        ("amount", "TEXT NOT NULL"),  # exact base x rate, in fen
        ("note", "TEXT NOT NULL"),
    ), ()),
    "reconciliations": ((
        ("company_id", "INTEGER NOT NULL REFERENCES companies(id)"),
        ("vendor_id", "INTEGER REFERENCES vendors(id)"),
        ("vendor_label", "TEXT NOT NULL"),
        ("period", "TEXT NOT NULL"),
        ("basis", "TEXT NOT NULL"),
        ("estimated_micro", "INTEGER NOT NULL"),
        ("unpriced_events", "INTEGER NOT NULL"),
        ("invoiced_fen", "INTEGER NOT NULL"),
        ("note", "TEXT NOT NULL"),
    ), ()),
    "settings": ((
        ("key", "TEXT NOT NULL"),
        ("value", "TEXT NOT NULL"),
        ("note", "TEXT NOT NULL"),
    ), ()),
    "audit_log": ((
        ("actor", "TEXT NOT NULL"),
        ("action", "TEXT NOT NULL"),
        ("detail", "TEXT NOT NULL"),  # JSON
    ), ()),
}

CHAINED = tuple(TABLES)


_COLUMNS: dict[str, tuple[str, ...]] = {
    table: tuple(c for c, _ in _HEAD) + tuple(c for c, _ in body) + tuple(c for c, _ in _TAIL)
    for table, (body, _) in TABLES.items()
}


def columns(table: str) -> tuple[str, ...]:
    """Every column of ``table`` in order."""
    return _COLUMNS[table]


def content_columns(table: str) -> tuple[str, ...]:
    """The columns covered by ``row_hash`` (all but the two hashes)."""
    return _COLUMNS[table][:-2]


def body_columns(table: str) -> tuple[str, ...]:
    """The columns a caller supplies (all but id, seq, created_at and the two hashes)."""
    return _COLUMNS[table][3:-2]


def trigger_names(table: str) -> tuple[str, str]:
    return f"{table}_append_only_update", f"{table}_append_only_delete"


def trigger_sql(table: str) -> dict[str, str]:
    """The append-only triggers of ``table``: name -> the exact SQL SQLite keeps for it."""
    upd, dele = trigger_names(table)
    msg = f"{table} is append-only (账簿只可追加): record a reversal or a new version instead"
    return {upd: f"CREATE TRIGGER {upd} BEFORE UPDATE ON {table} BEGIN SELECT RAISE(ABORT, '{msg}'); END",
            dele: f"CREATE TRIGGER {dele} BEFORE DELETE ON {table} BEGIN SELECT RAISE(ABORT, '{msg}'); END"}


def ddl() -> str:
    parts = [
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;",
    ]
    for table, (body, constraints) in TABLES.items():
        cols = [f"{c} {t}" for c, t in (*_HEAD, *body, *_TAIL)]
        cols.extend(constraints)
        parts.append(f"CREATE TABLE IF NOT EXISTS {table} (\n    " + ",\n    ".join(cols) + "\n) STRICT;")
        for sql in trigger_sql(table).values():
            parts.append(sql.replace("CREATE TRIGGER ", "CREATE TRIGGER IF NOT EXISTS ", 1) + ";")
    parts += [
        "CREATE INDEX IF NOT EXISTS invoices_number ON invoices(number, code);",
        "CREATE INDEX IF NOT EXISTS invoices_date ON invoices(company_id, issue_date);",
        "CREATE INDEX IF NOT EXISTS payments_invoice ON payments(invoice_id);",
        "CREATE INDEX IF NOT EXISTS usage_date ON usage_events(company_id, event_date);",
        "CREATE INDEX IF NOT EXISTS claim_lines_invoice ON claim_lines(invoice_id);",
        "CREATE INDEX IF NOT EXISTS claim_lines_claim ON claim_lines(claim_id);",
    ]
    return "\n".join(parts)
