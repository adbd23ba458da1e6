"""One HTTP client for every adapter: timeouts, retries with backoff and jitter, 429 and
``Retry-After``, errors that name the provider and the variable to set.

Providers signal trouble two ways, and both are handled here:

* in the HTTP status (Ark, DashScope, Kling, OpenAI): 401/403 -> :class:`ProviderAuthError`,
  429 -> :class:`ProviderRateLimited` (with the server's ``Retry-After``), 5xx -> retryable;
* in a 200 body (MiniMax ``base_resp.status_code``, Volcengine TTS ``code``, Kling ``code``):
  each adapter passes ``check`` to :meth:`Http.request`, which raises the same error types.

Retrying a request that creates a paid task is only safe when the server cannot have acted on
it: a refused connection, a 429, a 503. A timeout after the body was sent, or a 500, may have
created the task, so such a call is *not* retried unless the adapter marks it ``idempotent``
(it carries a key the provider de-duplicates on, or it only reads); the error says the state
is unknown and the task journal takes it from there.

Result downloads go to presigned CDN URLs: they are fetched with no ``Authorization`` header,
so a key never travels to a host other than the provider's API.
"""

from __future__ import annotations

import email.utils
import hashlib
import os
import random
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines.providers.errors import (
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ResultExpired,
)
from pipelines.providers.secrets import get_logger, redact

log = get_logger(__name__)

# statuses where the server did not act on the request: safe to send again
_SAFE_RETRY = {429, 503}
# statuses that are worth retrying for a read (or an idempotent write)
_RETRY = {408, 409, 425, 429, 500, 502, 503, 504}
_CHUNK = 1 << 20


@dataclass(slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped; a server's ``Retry-After`` wins."""

    max_retries: int = 5
    base_s: float = 1.0
    cap_s: float = 60.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return max(0.0, min(retry_after, self.cap_s * 5))
        return self.rng.uniform(0, min(self.cap_s, self.base_s * (2 ** attempt)))


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (now if now is not None else datetime.now(UTC).timestamp()))


Check = Callable[[Any], None]


def _httpx() -> Any:
    try:
        import httpx
    except ImportError as e:  # pragma: no cover - httpx ships with the providers extra
        raise ImportError("install reelforge[providers] (httpx) to use generation providers") from e
    return httpx


class Http:
    """Requests to one provider's API at ``base_url``."""

    def __init__(self, provider: str, base_url: str, *, timeout_s: float = 60.0, retry: RetryPolicy | None = None,
                 auth_vars: tuple[str, ...] = (), sleep: Callable[[float], None] = time.sleep,
                 transport: Any = None) -> None:
        httpx = _httpx()
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.auth_vars = auth_vars
        self.sleep = sleep
        self.timeout = httpx.Timeout(timeout_s, connect=min(10.0, timeout_s))
        self.client = httpx.Client(timeout=self.timeout, transport=transport, follow_redirects=False,
                                   headers={"User-Agent": "reelforge"})
        # downloads: presigned URLs, redirects allowed, never our auth headers
        self.cdn = httpx.Client(timeout=httpx.Timeout(max(timeout_s, 120.0), connect=10.0), transport=transport,
                                follow_redirects=True, headers={"User-Agent": "reelforge"})

    def close(self) -> None:
        self.client.close()
        self.cdn.close()

    # -- errors --------------------------------------------------------------------------------
    def auth_error(self, message: str, code: str = "", status: int = 0) -> ProviderAuthError:
        names = " and ".join(self.auth_vars) or "the provider's key"
        from pipelines.providers.secrets import where_to_set

        hint = "; ".join(where_to_set(v) for v in self.auth_vars) if self.auth_vars else None
        return ProviderAuthError(self.provider, f"the key was refused ({message}); check {names}", hint=hint,
                                 code=code, status=status)

    def _status_error(self, resp: Any, detail: str) -> ProviderError:
        status = resp.status_code
        if status in (401, 403):
            return self.auth_error(f"HTTP {status}: {detail}", status=status)
        if status == 429:
            return ProviderRateLimited(self.provider, f"rate limited (HTTP 429): {detail}",
                                       retry_after=parse_retry_after(resp.headers.get("Retry-After")))
        return ProviderError(self.provider, f"HTTP {status}: {detail}", status=status, retryable=status in _RETRY)

    @staticmethod
    def _detail(resp: Any) -> str:
        try:
            data = resp.json()
        except ValueError:
            return redact(resp.text[:300])
        if isinstance(data, dict):
            err = data.get("error")
            if isinstance(err, dict):
                return redact(str(err.get("message") or err.get("code") or err)[:300])
            for key in ("message", "msg", "status_msg", "error_msg"):
                if data.get(key):
                    code = data.get("code", "")
                    return redact(f"{code} {data[key]}".strip()[:300])
            base = data.get("base_resp")
            if isinstance(base, dict) and base.get("status_msg"):
                return redact(f"{base.get('status_code')} {base['status_msg']}"[:300])
        return redact(str(data)[:300])

    # -- requests ------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None,
                headers: Mapping[str, str] | None = None, files: Any = None, data: Any = None,
                idempotent: bool | None = None, check: Check | None = None, raw: bool = False) -> Any:
        """Send ``method path`` with retries; the parsed JSON (or the response when ``raw``).

        ``idempotent`` defaults to True for GET; a POST that creates a paid task passes False
        unless the provider de-duplicates it by a key we sent.
        """
        httpx = _httpx()
        if idempotent is None:
            idempotent = method.upper() in ("GET", "HEAD")
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                resp = self.client.request(method, url, json=json, params=params, headers=headers, files=files,
                                           data=data)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
                err: ProviderError = ProviderError(self.provider, f"cannot reach {self.base_url} ({type(e).__name__})",
                                                   retryable=True,
                                                   hint=f"check the network or [providers.{self.provider}] base_url")
            except httpx.TransportError as e:
                # the request may have been received: only safe to repeat when idempotent
                err = ProviderError(self.provider, f"no answer from {self.base_url} ({type(e).__name__}); "
                                    "the server may have received the request", retryable=idempotent,
                                    code="" if idempotent else "unknown_state")
            else:
                if resp.status_code >= 400:
                    err = self._status_error(resp, self._detail(resp))
                    if check is not None:  # the provider's own code in the body says more than the status
                        try:
                            body = resp.json()
                        except ValueError:
                            body = None
                        if isinstance(body, dict):
                            try:
                                check(body)
                            except ProviderError as e:
                                e.status = e.status or resp.status_code
                                err = e
                    if isinstance(err, ProviderRateLimited):
                        retry_after = err.retry_after
                        if retry_after is None:
                            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
                            err.retry_after = retry_after
                    if not idempotent and resp.status_code not in _SAFE_RETRY and err.retryable:
                        err.retryable = False
                        err.code = "unknown_state"
                else:
                    if raw:
                        return resp
                    try:
                        body = resp.json()
                    except ValueError:
                        raise ProviderError(self.provider, f"{method} {path}: the answer is not JSON "
                                            f"({resp.headers.get('content-type', '?')})") from None
                    try:
                        if check is not None:
                            check(body)
                        return body
                    except ProviderRateLimited as e:
                        err, retry_after = e, e.retry_after
                    except ProviderError as e:
                        err = e
            if not err.retryable or attempt >= self.retry.max_retries:
                raise err
            wait = self.retry.delay(attempt, retry_after)
            log.info("%s: %s; retry %d/%d in %.1fs", self.provider, err.message, attempt + 1,
                     self.retry.max_retries, wait)
            self.sleep(wait)
            attempt += 1

    def download(self, url: str, dest_dir: Path, *, suffix: str = "", headers: Mapping[str, str] | None = None,
                 max_bytes: int = 4 << 30, via_api: bool = False) -> tuple[Path, str, int]:
        """Stream ``url`` into a temporary file in ``dest_dir``: (path, sha256, size).

        A 403/404/410 from a result URL means it expired: :class:`ResultExpired`, so the caller
        can ask the provider for a fresh one. ``via_api`` sends the request through the API client
        (same host, e.g. ComfyUI ``/view``), every other download goes without credentials.
        """
        httpx = _httpx()
        client = self.client if via_api else self.cdn
        if via_api and not url.startswith(("http://", "https://")):
            url = f"{self.base_url}/{url.lstrip('/')}"
        dest_dir.mkdir(parents=True, exist_ok=True)
        attempt = 0
        while True:
            fd, tmp_name = tempfile.mkstemp(prefix=".download-", suffix=suffix, dir=dest_dir)
            tmp = Path(tmp_name)
            h = hashlib.sha256()
            size = 0
            try:
                with os.fdopen(fd, "wb") as f, client.stream("GET", url, headers=headers) as resp:
                    if resp.status_code in (401, 403, 404, 410) and not via_api:
                        resp.read()
                        raise ResultExpired(self.provider, f"the result URL answered HTTP {resp.status_code} "
                                            "(expired or removed)", status=resp.status_code)
                    if resp.status_code >= 400:
                        resp.read()
                        raise self._status_error(resp, self._detail(resp))
                    for chunk in resp.iter_bytes(_CHUNK):
                        size += len(chunk)
                        if size > max_bytes:
                            raise ProviderError(self.provider, f"the result is larger than {max_bytes} bytes")
                        h.update(chunk)
                        f.write(chunk)
                    f.flush()
                    os.fsync(f.fileno())
                if size == 0:
                    raise ProviderError(self.provider, "the result file is empty", retryable=True)
                return tmp, h.hexdigest(), size
            except (httpx.TransportError, ProviderError) as e:
                tmp.unlink(missing_ok=True)
                retryable = isinstance(e, httpx.TransportError) or (isinstance(e, ProviderError) and e.retryable
                                                                     and not isinstance(e, ResultExpired))
                if not retryable or attempt >= self.retry.max_retries:
                    if isinstance(e, ProviderError):
                        raise
                    raise ProviderError(self.provider, f"download failed ({type(e).__name__})") from None
                wait = self.retry.delay(attempt, getattr(e, "retry_after", None))
                log.info("%s: download failed (%s); retry in %.1fs", self.provider, type(e).__name__, wait)
                self.sleep(wait)
                attempt += 1
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
