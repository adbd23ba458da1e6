"""The ledger's Python API: one :class:`Ledger` per file, holding a service per concern. The CLI
and the Gradio tab are thin faces over it.

    from ledger import Ledger
    with Ledger("studio.ledger.sqlite") as lg:
        lg.master.add_company("影锻文化", "91350100M000100Y43", headcount=3)
        lg.master.add_vendor("深度求索", "91330100716105852F")
        lg.documents.add_invoice("深度求索", "25110000000000000001", "2025-03-01", "100.00", "6.00", "106.00")
        lg.documents.add_payment("25110000000000000001", "2025-03-05", "106.00", bank_ref="B0001")
        print(lg.claims.compute(5, 2025).claim_fen)

Exports and CSV imports are functions over a ``Ledger`` (:func:`ledger.export.export_claim_package`,
:mod:`ledger.csvimport`); this module imports neither.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from typing import Any

from ledger.chain import ChainHead, VerifyReport
from ledger.services import (
    ClaimService,
    Documents,
    MasterData,
    PriceService,
    Reconciliation,
    UsageService,
)
from ledger.services.integrity import Integrity, Sources
from ledger.store import Store


class Ledger:
    """A company's AI-spend ledger in one SQLite file, with its document archive beside it.

    ``integrity`` verify and signed checkpoints; ``master`` settings, companies, vendors,
    projects; ``prices`` the price book; ``documents`` contracts, invoices, payments and archived
    files; ``usage`` usage import; ``claims`` measure 5 and 6 claims; ``recon`` usage against
    invoices.
    """

    def __init__(self, path: str | os.PathLike[str], *, archive_dir: str | os.PathLike[str] | None = None,
                 timeout: float = 60.0, actor: str | None = None) -> None:
        # actor: the person the audit log names for writes (a studio account); None: the OS login user
        self.store = Store(path, archive_dir=archive_dir, timeout=timeout, actor=actor)
        self.path = self.store.path
        self.archive_dir = self.store.archive_dir
        self.integrity = Integrity(self.store)
        self.store.on_checkpoint = self.integrity.sign
        self.master = MasterData(self.store)
        self.prices = PriceService(self.store)
        self.documents = Documents(self.store, self.master)
        self.usage = UsageService(self.store, self.master, self.prices)
        self.claims = ClaimService(self.store, self.master, self.documents, self.integrity)
        self.recon = Reconciliation(self.store, self.master, self.documents)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the chain --------------------------------------------------------------------------
    def chain_head(self) -> ChainHead:
        return self.store.head()

    def verify(self, expect_head: str = "", *, checkpoints: Sources = (),
               trusted_keys: Iterable[str] = ()) -> VerifyReport:
        """The chain recomputed and proved to extend every signed checkpoint (the local log's and
        those in ``checkpoints``: export folders, ``*_checkpoint.json`` files, evidence ZIPs)."""
        return self.integrity.verify(expect_head, checkpoints=checkpoints, trusted_keys=trusted_keys)

    def audit(self, limit: int = 50) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT id, seq, created_at, actor, action, detail FROM audit_log "
                                "ORDER BY id DESC LIMIT ?", (int(limit),))
        for r in rows:
            r["detail"] = json.loads(r["detail"])
        return rows
