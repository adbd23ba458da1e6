"""The AI-spend ledger: tamper-evident records of AI spend, subsidy claims under E-Town
measures 5 and 6, and claim-ready exports.

Public API: :class:`Ledger` (``ledger.api``) and its services (``ledger.services``: master data,
prices, documents, usage, claims, reconciliation, integrity), signed checkpoints
(``ledger.checkpoints``), exports (``ledger.export.export_claim_package``), CSV imports
(``ledger.csvimport``), the policy settings (``ledger.policy``), the price book
(``ledger.pricebook``), money helpers (``ledger.money``) and validators (``ledger.validate``).
The CLI is ``reelforge ledger`` / ``python -m ledger``.
"""

from __future__ import annotations

from ledger.api import Ledger
from ledger.chain import ChainHead, VerifyReport
from ledger.claims import BestPlan, ClaimResult
from ledger.errors import (
    ChainError,
    ClaimConflictError,
    DuplicateError,
    FieldError,
    LedgerError,
    NotFoundError,
    PolicyError,
)
from ledger.models import RecordedClaim
from ledger.money import parse_yuan, to_capital
from ledger.policy import PolicySettings
from ledger.pricebook import PriceBook, PriceEntry

__all__ = [
    "BestPlan", "ChainError", "ChainHead", "ClaimConflictError", "ClaimResult", "DuplicateError", "FieldError",
    "Ledger", "LedgerError", "NotFoundError", "PolicyError", "PolicySettings", "PriceBook", "PriceEntry",
    "RecordedClaim", "VerifyReport", "parse_yuan", "to_capital",
]
