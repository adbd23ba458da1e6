"""The ledger's services over one :class:`ledger.store.Store`: master data (settings, companies,
vendors, projects), prices, documents (archive, contracts, invoices, payments), usage import,
claims and reconciliation. :class:`ledger.api.Ledger` builds them in this order; each depends
only on the ones before it."""

from __future__ import annotations

from ledger.services.claims import ClaimService
from ledger.services.documents import Documents
from ledger.services.master import MasterData
from ledger.services.prices import PriceService
from ledger.services.reconcile import Reconciliation
from ledger.services.usage import UsageService

__all__ = ["ClaimService", "Documents", "MasterData", "PriceService", "Reconciliation", "UsageService"]
