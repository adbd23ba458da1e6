"""Errors of the generation providers. Every message names the provider; none holds a secret.

Messages are built from provider responses, which can echo what was sent (a key in a URL, a
token in a header). :func:`pipelines.providers.secrets.redact` scrubs every secret value this
process has read before a message leaves the package.
"""

from __future__ import annotations

from core.errors import InputError, ReelForgeError


class ProviderError(ReelForgeError):
    """A provider refused or failed a request; ``provider`` names it."""

    def __init__(self, provider: str, message: str, *, hint: str | None = None, code: str = "",
                 status: int = 0, retryable: bool = False) -> None:
        from pipelines.providers.secrets import redact

        super().__init__(redact(f"{provider}: {message}"), hint=redact(hint) if hint else hint)
        self.provider = provider
        self.code = code
        self.status = status
        self.retryable = retryable


class ProviderAuthError(ProviderError):
    """The key is missing, malformed or refused (HTTP 401/403 or the provider's own auth code)."""


class ProviderRateLimited(ProviderError):
    """429 or the provider's rate/concurrency code; ``retry_after`` seconds when the server said."""

    def __init__(self, provider: str, message: str, *, retry_after: float | None = None, code: str = "",
                 status: int = 429) -> None:
        super().__init__(provider, message, code=code, status=status, retryable=True,
                         hint="wait and run again, or lower [providers.NAME] concurrency")
        self.retry_after = retry_after


class TaskFailed(ProviderError):
    """The provider ran the task and reported a failure (content policy, internal error...)."""


class ResultExpired(ProviderError):
    """The result's download URL no longer works and the provider gave no fresh one."""


class BudgetExceeded(InputError):
    """The next billable call would take the run over its budget; nothing more was sent."""
