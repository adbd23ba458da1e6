"""Integrity: verify the chain against every signed checkpoint, refuse to go on when it fails,
and sign a checkpoint after the writes that need one (a recorded or withdrawn claim, an export)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence

from ledger import checkpoints as cps
from ledger.chain import Problem, VerifyReport, verify
from ledger.errors import ChainError
from ledger.store import Store, now_utc

log = logging.getLogger(__name__)

Sources = Sequence[str | os.PathLike[str]]


class Integrity:
    """The chain's checks and checkpoints for one ledger file."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def verify(self, expect_head: str = "", *, checkpoints: Sources = (),
               trusted_keys: Iterable[str] = ()) -> VerifyReport:
        """Recompute the chain and prove it extends every checkpoint in the local log and in
        ``checkpoints`` (export folders, ``*_checkpoint.json``, evidence ZIPs)."""
        found, trouble = cps.gather(ledger_id=self.store.ledger_id(), db_path=str(self.store.path),
                                    created_at=self.store.meta("created_at"), sources=checkpoints,
                                    trusted_keys=trusted_keys)
        pre = [Problem("checkpoint", None, None, t) for t in trouble]
        with self.store.read() as conn:
            return verify(conn, self.store.archive_dir, expect_head=expect_head.strip().lower(), checkpoints=found,
                          pre_problems=pre)

    def require_intact(self, *, checkpoints: Sources = (), trusted_keys: Iterable[str] = (),
                       before: str = "go on") -> VerifyReport:
        """Verify first; refuse (:class:`ChainError`) when the chain does not verify."""
        report = self.verify(checkpoints=checkpoints, trusted_keys=trusted_keys)
        if not report.ok:
            raise ChainError(f"refusing to {before}: {report.summary()}",
                             hint="run `ledger verify` for every problem; restore the ledger from a backup that "
                                  "verifies")
        return report

    def ready(self) -> None:
        """Load (or create) the signing key now, so a write that needs a checkpoint is refused
        before anything is written if the key is unusable."""
        cps.load_signing_key(create=True)

    def sign(self, reasons: Sequence[str]) -> cps.Checkpoint:
        """Sign the chain's current head and append the checkpoint to the local log."""
        key = cps.load_signing_key(create=True)
        assert key is not None
        head = self.store.head()
        cp = cps.sign(key, self.store.ledger_id(), head.seq, head.hash, now_utc(), "; ".join(reasons))
        path = cps.append_to_log(cp, str(self.store.path))
        log.info("checkpoint %d / %s signed (%s) into %s", cp.count, cp.head, cp.reason, path)
        return cp
