"""Chat clients: any OpenAI-compatible HTTP endpoint, with streaming, retries and a concurrency cap.

Works with DeepSeek, Qwen (DashScope compatible mode), Moonshot, GLM, OpenAI, and local servers
(vLLM, llama.cpp ``llama-server``, Ollama ``/v1``). Only the standard library is used for HTTP.

- Streaming (server-sent events) with a per-read timeout (a stalled stream fails fast) and an
  overall deadline (a trickling stream cannot hang a run).
- Retries with exponential backoff and jitter on 429 and 5xx, on timeouts and broken streams;
  ``Retry-After`` is honoured. 4xx other than 429 are not retried: they need a fix.
- Structured output: ``response_format`` ``json_schema`` first, then ``json_object``, then
  none, stepping down once when the server rejects it (logged as a fallback).
- A semaphore caps concurrent requests to ``concurrency``; callers may use threads freely.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import ssl
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from core.errors import ConfigError, ModelError

log = logging.getLogger(__name__)

Message = dict[str, str]
RETRY_AFTER_MAX_S = 120.0  # a server asking for a longer pause than this is treated as down
FallbackFn = Callable[[str], None]


@dataclass(slots=True)
class Completion:
    text: str
    model: str
    tokens_in: int
    tokens_out: int
    seconds: float
    attempts: int = 1
    estimated: bool = False  # token counts estimated from characters (server sent no usage)
    finish_reason: str = ""
    cpu_seconds: float | None = None  # processor time of a local model's process (all its threads)


class RetryableError(Exception):
    """A failure worth another try (429, 5xx, timeout, broken stream)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ChatClient(ABC):
    """One way to ask a chat model. ``complete`` is thread-safe."""

    engine: str = ""
    model: str = ""
    vendor: str = ""  # the service that is paid (an API) or the model's publisher (a local model)
    device: str = "api"  # "api", or where a local model runs: cpu, cuda, mps
    licence: str = ""  # of the model (local) or the service terms (an API), for the usage records
    concurrency: int = 1
    context_tokens: int = 32768
    parameters: int = 0  # a local model's size; 0 when unknown (an API)
    tokens_per_s: float = 0.0  # measured decoding speed of a local model; 0 when unknown

    def close(self) -> None:  # noqa: B027 - an optional hook: most clients hold nothing
        """Release what the client holds (a worker process, a model); idempotent."""

    @abstractmethod
    def complete(self, messages: list[Message], *, schema: dict[str, Any] | None = None,
                 schema_name: str = "output", max_tokens: int = 2048, temperature: float = 0.3) -> Completion:
        """Send ``messages``; return the reply text and token counts."""


def estimate_tokens(text: str) -> int:
    """A rough token count when the server reports none: about one token per Chinese character,
    one per four Latin characters."""
    cjk = sum(1 for c in text if "\u4e00" <= c <= "\u9fff")
    return cjk + max(0, len(text) - cjk) // 4 + 1


class OpenAICompatClient(ChatClient):
    engine = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        *,
        timeout_s: float = 120.0,
        total_timeout_s: float | None = None,
        max_retries: int = 4,
        concurrency: int = 4,
        stream: bool = True,
        backoff_s: float = 1.0,
        backoff_max_s: float = 30.0,
        context_tokens: int = 32768,
        vendor: str = "",
        on_fallback: FallbackFn | None = None,
        seed: int | None = None,
    ) -> None:
        if not base_url:
            raise ConfigError("no LLM endpoint configured",
                              hint="set [llm] base_url (e.g. https://api.deepseek.com/v1) or REELFORGE_LLM__BASE_URL")
        if not model:
            raise ConfigError("no LLM model configured", hint="set [llm] model or REELFORGE_LLM__MODEL")
        parsed = urlparse(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ConfigError(f"LLM base_url {base_url!r} is not an http(s) URL", hint="e.g. http://127.0.0.1:8000/v1")
        if concurrency < 1:
            raise ConfigError(f"LLM concurrency must be at least 1, got {concurrency}")
        if timeout_s <= 0:
            raise ConfigError(f"LLM timeout must be positive, got {timeout_s}")
        self.base_url = base_url.rstrip("/")
        self._scheme = parsed.scheme
        self._host = parsed.hostname
        self._port = parsed.port
        self._path = (parsed.path.rstrip("/") or "") + "/chat/completions"
        self.model = model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.total_timeout_s = total_timeout_s if total_timeout_s is not None else max(timeout_s * 5, timeout_s + 1)
        self.max_retries = max_retries
        self.concurrency = concurrency
        self.stream = stream
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.context_tokens = context_tokens
        self.vendor = vendor
        self.licence = f"service terms of {vendor or self.base_url} (model {model})"
        self.on_fallback = on_fallback
        self._sem = threading.BoundedSemaphore(concurrency)
        self._format_mode = "json_schema"
        self._mode_lock = threading.Lock()
        self._rng = random.Random(seed)

    # -- public ---------------------------------------------------------------------------
    def complete(self, messages: list[Message], *, schema: dict[str, Any] | None = None,
                 schema_name: str = "output", max_tokens: int = 2048, temperature: float = 0.3) -> Completion:
        start = time.perf_counter()
        attempt = 0
        last: Exception | None = None
        while attempt <= self.max_retries:
            attempt += 1
            body = self._body(messages, schema, schema_name, max_tokens, temperature)
            try:
                with self._sem:
                    text, usage, finish, model = self._request(body)
            except _FormatRejected as e:
                if self._step_down(str(e)):
                    attempt -= 1  # not the server's fault: ask again in a simpler mode at once
                    continue
                raise ModelError(f"{self.model} rejected the request: {e}") from e
            except RetryableError as e:
                last = e
                if attempt > self.max_retries:
                    break
                delay = e.retry_after if e.retry_after is not None else self._backoff(attempt)
                log.warning("LLM call failed (%s); retry %d/%d in %.2f s", e, attempt, self.max_retries, delay)
                time.sleep(delay)
                continue
            seconds = time.perf_counter() - start
            if usage:
                t_in = int(usage.get("prompt_tokens") or 0)
                t_out = int(usage.get("completion_tokens") or 0)
                estimated = False
            else:
                t_in = estimate_tokens("".join(m.get("content", "") for m in messages))
                t_out = estimate_tokens(text)
                estimated = True
            return Completion(text=text, model=model or self.model, tokens_in=t_in, tokens_out=t_out,
                              seconds=seconds, attempts=attempt, estimated=estimated, finish_reason=finish)
        raise ModelError(
            f"{self.model} at {self.base_url} failed after {self.max_retries + 1} attempts: {last}",
            hint="check the server, or raise [llm] max_retries / timeout_s",
        )

    # -- internals ------------------------------------------------------------------------
    def _backoff(self, attempt: int) -> float:
        base = min(self.backoff_max_s, self.backoff_s * (2 ** (attempt - 1)))
        return base * (0.5 + 0.5 * self._rng.random())  # full jitter would allow ~0; keep at least half

    def _step_down(self, why: str) -> bool:
        with self._mode_lock:
            nxt = {"json_schema": "json_object", "json_object": "none"}.get(self._format_mode)
            if nxt is None:
                return False
            msg = (f"LLM server {self.base_url} does not accept response_format={self._format_mode} ({why[:120]}); "
                   f"using {nxt} and validating the reply instead")
            self._format_mode = nxt
        log.warning(msg)
        if self.on_fallback:
            self.on_fallback(msg)
        return True

    def _body(self, messages: list[Message], schema: dict[str, Any] | None, name: str, max_tokens: int,
              temperature: float) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                                "temperature": temperature, "stream": self.stream}
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        mode = self._format_mode
        if schema is not None and mode == "json_schema":
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": name, "schema": schema, "strict": False}}
        elif schema is not None and mode == "json_object":
            body["response_format"] = {"type": "json_object"}
        return body

    def _connection(self) -> http.client.HTTPConnection:
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout_s,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout_s)

    def _request(self, body: dict[str, Any]) -> tuple[str, dict[str, Any] | None, str, str]:
        payload = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "Accept": "text/event-stream" if self.stream else "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        deadline = time.monotonic() + self.total_timeout_s
        conn = self._connection()
        try:
            try:
                conn.request("POST", self._path, body=payload, headers=headers)
                resp = conn.getresponse()
            except TimeoutError as e:
                raise RetryableError(f"timed out after {self.timeout_s:g} s waiting for the server") from e
            except (ConnectionError, OSError, http.client.HTTPException) as e:
                raise RetryableError(f"connection failed: {e}") from e
            status = resp.status
            if status != 200:
                try:
                    detail = resp.read(4000).decode("utf-8", "replace")
                except (TimeoutError, OSError, http.client.HTTPException):
                    detail = ""
                self._raise_for_status(status, detail, resp.getheader("Retry-After"))
            ctype = (resp.getheader("Content-Type") or "").lower()
            if self.stream and "event-stream" in ctype:
                return self._read_stream(resp, deadline)
            return self._read_json(resp)
        finally:
            conn.close()

    def _raise_for_status(self, status: int, detail: str, retry_after: str | None) -> None:
        if status == 429 or status >= 500:
            wait: float | None = None
            if retry_after:
                try:
                    wait = min(max(0.0, float(retry_after)), RETRY_AFTER_MAX_S)
                except ValueError:
                    wait = None
            raise RetryableError(f"HTTP {status}: {detail[:200]}", retry_after=wait)
        low = detail.lower()
        if status == 400 and ("response_format" in low or "json_schema" in low or "json_object" in low):
            raise _FormatRejected(detail[:300])
        if status in (401, 403):
            raise ConfigError(f"the LLM server refused the API key (HTTP {status})",
                              hint="check [llm] api_key or REELFORGE_LLM__API_KEY")
        if status == 404:
            raise ConfigError(f"{self.base_url}{self._path[len(urlparse(self.base_url).path.rstrip('/')):]} "
                              f"or model {self.model!r} was not found (HTTP 404): {detail[:200]}",
                              hint="check [llm] base_url (it usually ends in /v1) and model")
        raise ModelError(f"the LLM server rejected the request (HTTP {status}): {detail[:300]}")

    def _read_json(self, resp: http.client.HTTPResponse) -> tuple[str, dict[str, Any] | None, str, str]:
        try:
            raw = resp.read()
        except TimeoutError as e:
            raise RetryableError(f"timed out after {self.timeout_s:g} s reading the reply") from e
        except (OSError, http.client.HTTPException) as e:
            raise RetryableError(f"reply broken off: {e}") from e
        try:
            data = json.loads(raw.decode("utf-8"))
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise RetryableError(f"reply is not an OpenAI chat completion: {raw[:200]!r}") from e
        return text, data.get("usage"), choice.get("finish_reason") or "", data.get("model") or ""

    def _read_stream(self, resp: http.client.HTTPResponse, deadline: float) -> tuple[str, dict[str, Any] | None, str, str]:
        parts: list[str] = []
        usage: dict[str, Any] | None = None
        finish = ""
        model = ""
        done = False
        while True:
            if time.monotonic() > deadline:
                raise RetryableError(f"stream took longer than {self.total_timeout_s:g} s")
            try:
                raw = resp.readline()
            except TimeoutError as e:
                raise RetryableError(f"stream stalled for {self.timeout_s:g} s") from e
            except (OSError, http.client.HTTPException) as e:
                raise RetryableError(f"stream broken off: {e}") from e
            if not raw:
                break
            line = raw.decode("utf-8", "replace").strip()
            if not line or line.startswith(":"):
                continue
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            try:
                chunk = json.loads(data)
            except ValueError as e:
                raise RetryableError(f"malformed stream event: {data[:120]!r}") from e
            if chunk.get("error"):
                raise RetryableError(f"server error in stream: {chunk['error']}")
            model = chunk.get("model") or model
            if chunk.get("usage"):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    parts.append(delta["content"])
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
        if not done and not finish:
            raise RetryableError("stream ended before [DONE]")
        return "".join(parts), usage, finish, model


class _FormatRejected(Exception):
    """The server does not support the requested response_format."""
