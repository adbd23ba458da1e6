"""Any OpenAI-compatible server: ``/v1/images/generations`` and ``/v1/audio/speech``.
Key: ``OPENAI_API_KEY`` (a server on this machine may need none).

Uses the official ``openai`` SDK (retries turned off: the retry rules here are the package's
own, so a create call that may have been received is never sent twice). Follows the API
reference (checked 2026-12-03):

* https://platform.openai.com/docs/api-reference/images/create - ``model``, ``prompt``,
  ``size`` (gpt-image-1: 1024x1024, 1024x1536, 1536x1024), ``quality``, ``n``; the answer
  carries ``data[].b64_json`` (gpt-image-1) or ``data[].url``, and for gpt-image-1 a ``usage``
  object in tokens (``input_tokens``, ``output_tokens``), which is what is billed;
* https://platform.openai.com/docs/api-reference/audio/createSpeech - ``model`` (tts-1,
  tts-1-hd, gpt-4o-mini-tts), ``voice``, ``input`` (up to 4096 characters), ``response_format``
  and ``speed``; the answer is the audio itself; tts-1 is billed per character;
* errors: 401 (key), 403, 429 with ``Retry-After`` (rate limits), 5xx -
  https://platform.openai.com/docs/guides/error-codes;
* prices: https://openai.com/api/pricing (USD; enter CNY at your invoice rate).

Local servers that speak the same API (LocalAI, vLLM, a ComfyUI bridge...) work by setting
``[providers.openai] base_url = "http://127.0.0.1:8080/v1"``. The key check lists models
(``GET /models``, free); a server without that route is accepted.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlparse

from pipelines.providers.base import (
    FAILED,
    SUCCEEDED,
    GenRequest,
    ModelInfo,
    Output,
    Provider,
    Task,
    Units,
)
from pipelines.providers.errors import ProviderError, ProviderRateLimited, TaskFailed
from pipelines.providers.http import parse_retry_after
from pipelines.providers.secrets import get_logger

log = get_logger(__name__)
T = TypeVar("T")

# output tokens of one gpt-image-1 image by quality and size (the pricing page's table)
IMAGE_TOKENS = {("low", "square"): 272, ("low", "tall"): 408, ("medium", "square"): 1056, ("medium", "tall"): 1584,
                ("high", "square"): 4160, ("high", "tall"): 6240}
VOICES = {
    ("male", "young"): ("echo", "ash"), ("male", "adult"): ("onyx", "ash"), ("male", "old"): ("onyx",),
    ("female", "young"): ("nova", "shimmer"), ("female", "adult"): ("alloy", "coral"), ("female", "old"): ("sage",),
    ("", ""): ("alloy",),
}


def _sdk() -> Any:
    try:
        import openai
    except ImportError as e:
        from core.errors import MissingDependencyError

        raise MissingDependencyError("openai", "providers") from e
    return openai


class OpenAIProvider(Provider):
    name = "openai"
    title = "OpenAI or an OpenAI-compatible server (images, speech)"
    vendor = "openai"
    default_base_url = "https://api.openai.com/v1"
    env_keys = ("OPENAI_API_KEY",)
    docs = ("https://platform.openai.com/docs/api-reference/images/create",
            "https://platform.openai.com/docs/api-reference/audio/createSpeech")
    checked = "2026-12-03"
    voices = VOICES
    models = {
        "gpt-image-1": ModelInfo("gpt-image-1", "image", "output_token", ("t2i",), default=True),
        "dall-e-3": ModelInfo("dall-e-3", "image", "image", ("t2i",)),
        "tts-1": ModelInfo("tts-1", "voice", "character", ("tts",), default=True),
        "tts-1-hd": ModelInfo("tts-1-hd", "voice", "character", ("tts",)),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: Any = None

    @property
    def local(self) -> bool:
        host = urlparse(self.base_url).hostname or ""
        return host in ("127.0.0.1", "localhost", "::1") or host.endswith(".local")

    def require_keys(self) -> None:
        if self.local and self.secret("OPENAI_API_KEY", required=False) is None:
            return  # a server on this machine usually needs no key
        super().require_keys()

    def client(self) -> Any:
        if self._client is None:
            openai = _sdk()
            key = self.secret("OPENAI_API_KEY", required=not self.local)
            self._client = openai.OpenAI(api_key=key.reveal() if key else "local", base_url=self.base_url,
                                         max_retries=0, timeout=self.settings.timeout_s)
        return self._client

    def _call(self, fn: Callable[[], T], creates: bool) -> T:
        """``fn`` with this package's retry rules, the SDK's errors turned into ours."""
        openai = _sdk()
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                return fn()
            except openai.AuthenticationError as e:
                raise self.http.auth_error(f"HTTP 401: {_message(e)}", status=401) from None
            except openai.PermissionDeniedError as e:
                raise self.http.auth_error(f"HTTP 403: {_message(e)}", status=403) from None
            except openai.RateLimitError as e:
                retry_after = parse_retry_after(e.response.headers.get("retry-after"))
                err: ProviderError = ProviderRateLimited(self.name, f"rate limited: {_message(e)}",
                                                         retry_after=retry_after)
            except openai.APITimeoutError:
                err = ProviderError(self.name, "no answer in time; the server may have received the request",
                                    retryable=not creates, code="unknown_state" if creates else "")
            except openai.APIConnectionError:
                err = ProviderError(self.name, f"cannot reach {self.base_url}", retryable=True,
                                    hint="check the network or [providers.openai] base_url")
            except openai.BadRequestError as e:
                body = getattr(e, "body", None)
                code = (body.get("error", body) if isinstance(body, dict) else {}) or {}
                if isinstance(code, dict) and code.get("code") in ("moderation_blocked", "content_policy_violation"):
                    # the server ran the request and refused what it made: a failed task (a new seed may pass)
                    raise TaskFailed(self.name, f"refused by the safety system: {_message(e)}") from None
                raise ProviderError(self.name, f"HTTP 400: {_message(e)}", status=400) from None
            except openai.APIStatusError as e:
                status = e.status_code
                safe = status == 503 or (not creates and status >= 500)
                err = ProviderError(self.name, f"HTTP {status}: {_message(e)}", status=status, retryable=safe,
                                    code="unknown_state" if creates and status >= 500 and not safe else "")
            if not err.retryable or attempt >= self.settings.max_retries:
                raise err
            wait = self.http.retry.delay(attempt, retry_after)
            log.info("openai: %s; retry %d in %.1fs", err.message, attempt + 1, wait)
            self.http.sleep(wait)
            attempt += 1

    def check_auth(self) -> None:
        self.require_keys()
        openai = _sdk()
        try:
            self._call(lambda: self.client().models.list(), creates=False)
        except ProviderError as e:
            if e.status in (404, 405):
                return
            raise
        except openai.NotFoundError:
            return

    @staticmethod
    def _size(req: GenRequest) -> tuple[str, str]:
        w, h = req.width or 1024, req.height or 1536
        if abs(w - h) / max(w, h) < 0.15:
            return "1024x1024", "square"
        return ("1024x1536", "tall") if h > w else ("1536x1024", "tall")

    def estimate(self, req: GenRequest) -> list[Units]:
        if req.kind == "voice":
            return [Units("character", Decimal(len(req.text)), req.model)]
        if req.model.startswith("gpt-image"):
            quality = str(req.options.get("quality", "medium"))
            tokens = IMAGE_TOKENS.get((quality, self._size(req)[1]), 1584)
            return [Units("output_token", Decimal(tokens), req.model, {"estimate": quality})]
        return [Units("image", Decimal(1), req.model)]

    def submit(self, req: GenRequest, task: Task) -> None:
        task.task_id = f"sync-{task.idempotency_key}"
        if req.kind == "image":
            self._image(req, task)
        elif req.kind == "voice":
            self._speech(req, task)
        else:
            raise TaskFailed(self.name, "video is not offered through this API; use ark, kling, dashscope or minimax")

    def _image(self, req: GenRequest, task: Task) -> None:
        kwargs: dict[str, Any] = {"model": req.model, "prompt": req.prompt, "n": 1, "size": self._size(req)[0]}
        if req.model.startswith("gpt-image"):
            kwargs["quality"] = str(req.options.get("quality", "medium"))
        else:
            kwargs["response_format"] = "b64_json"
        resp = self._call(lambda: self.client().images.generate(**kwargs), creates=True)
        items = list(getattr(resp, "data", None) or [])
        if not items:
            task.status = FAILED
            raise TaskFailed(self.name, "the image answer holds no image")
        first = items[0]
        if getattr(first, "b64_json", None):
            task.outputs = [Output(data=base64.b64decode(first.b64_json), suffix=".png")]
        elif getattr(first, "url", None):
            task.outputs = [Output(url=first.url, suffix=".png")]
        else:
            raise TaskFailed(self.name, "the image answer holds neither b64_json nor url")
        usage = getattr(resp, "usage", None)
        task.report["usage"] = usage.model_dump() if usage is not None and hasattr(usage, "model_dump") else {}
        task.status, task.provider_status = SUCCEEDED, "created"

    def _speech(self, req: GenRequest, task: Task) -> None:
        if len(req.text) > 4096:
            raise TaskFailed(self.name, f"speech input is {len(req.text)} characters; the API takes 4096")
        voice = req.voice or VOICES[("", "")][0]
        started = time.monotonic()
        resp = self._call(lambda: self.client().audio.speech.create(model=req.model, voice=voice, input=req.text,
                                                                    response_format="mp3", speed=req.speed),
                          creates=True)
        data = resp.read() if hasattr(resp, "read") else bytes(resp.content)
        if not data:
            raise TaskFailed(self.name, "speech synthesis returned no audio")
        task.outputs = [Output(data=data, suffix=".mp3")]
        task.report["usage"] = {"characters": len(req.text), "seconds": round(time.monotonic() - started, 3)}
        task.status, task.provider_status = SUCCEEDED, "created"

    def usage(self, task: Task, req: GenRequest) -> list[Units]:
        used = task.report.get("usage") or {}
        if task.kind == "voice":
            return [Units("character", Decimal(len(req.text)), task.model, {"voice": req.voice})]
        if used.get("output_tokens") is not None:
            out = [Units("output_token", Decimal(int(used["output_tokens"])), task.model)]
            if used.get("input_tokens"):
                out.append(Units("input_token", Decimal(int(used["input_tokens"])), task.model))
            return out
        return [Units("image", Decimal(len(task.outputs) or 1), task.model)]


def _message(e: Any) -> str:
    body = getattr(e, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:300]
    return str(getattr(e, "message", "") or type(e).__name__)[:300]
