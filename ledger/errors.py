"""Errors of the ledger. Every message names the bad field and value and says how to fix it."""

from __future__ import annotations

from core.errors import InputError, ReelForgeError


class LedgerError(ReelForgeError):
    """Base of the ledger's deliberate errors."""


class FieldError(InputError):
    """A value given for a named field is malformed (a code, a number, a date, an amount).

    The message starts with the field, e.g. ``uscc (统一社会信用代码) '9111…': check character …``.
    """

    def __init__(self, field: str, value: object, problem: str, *, hint: str | None = None) -> None:
        super().__init__(f"{field} {value!r}: {problem}", hint=hint)
        self.field = field
        self.value = value


class NotFoundError(LedgerError):
    """A company, vendor, project, invoice or claim named by the user is not in the ledger."""


class DuplicateError(LedgerError):
    """The same document or master record was entered twice."""


class ClaimConflictError(LedgerError):
    """A claim would put a document (or a project) into two active claims."""


class PolicyError(LedgerError):
    """A claim falls outside the policy's rules (for example a year after the policy window)."""


class ChainError(LedgerError):
    """The hash chain does not verify: the ledger was changed behind its back."""
