"""Kling (可灵): images and image-to-video / text-to-video tasks.
Keys: ``KLING_ACCESS_KEY`` and ``KLING_SECRET_KEY``.

Follows the official API documentation (checked 2026-12-03,
https://app.klingai.com/cn/dev/document-api/apiReference/commonInfo and the model pages):

* auth: a JWT (RFC 7519) signed HS256 with the secret key, payload ``{"iss": access_key,
  "exp": now + 1800, "nbf": now - 5}``, sent as ``Authorization: Bearer <token>``; a token is
  re-signed before it expires;
* ``POST /v1/images/generations`` (``image`` + ``image_reference`` "subject" for character
  consistency on kling-v1-5; raw base64 without a ``data:`` prefix), ``POST
  /v1/videos/image2video`` (``image`` first frame), ``POST /v1/videos/text2video``; each
  accepts ``external_task_id`` - our idempotency key - and each task is read back with ``GET
  <same path>/{task_id}`` (or ``/{external_task_id}``);
* every answer is ``{"code", "message", "request_id", "data"}``; ``data.task_status`` is
  submitted | processing | succeed | failed (``task_status_msg`` says why);
  ``data.task_result.videos[].url`` / ``images[].url`` are kept 30 days;
  ``data.final_unit_deduction`` is the units the task cost;
* errors: 401 with code 1000-1004 (auth), 429 with 1100-1102 (account: arrears, resource pack
  used up - not worth retrying), 403/1103 (no permission), 400/1200-1201 (parameters),
  400/1300-1301 (content policy), 429/1302-1303 (rate / concurrency: retried), 5000-5002.

The key check reads the resource packs (``GET /account/costs``), which is free.
Prices are per clip in units (``MODEL@MODE`` entries, per video second).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from decimal import Decimal
from typing import Any

from pipelines.providers.base import (
    FAILED,
    RUNNING,
    SUCCEEDED,
    GenRequest,
    ModelInfo,
    Output,
    Provider,
    Task,
    Units,
    image_b64,
    nearest_aspect,
)
from pipelines.providers.errors import ProviderError, ProviderRateLimited, TaskFailed

AUTH_CODES = {1000, 1001, 1002, 1003, 1004}
RATE_CODES = {1302, 1303}
ACCOUNT_CODES = {1100, 1101, 1102, 1103}
IMAGE_RATIOS = ("16:9", "9:16", "1:1", "4:3", "3:4", "3:2", "2:3", "21:9")
VIDEO_RATIOS = ("16:9", "9:16", "1:1")


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_jwt(access_key: str, secret_key: str, now: int | None = None, ttl: int = 1800) -> str:
    """An HS256 JWT as Kling's documentation builds it (header alg/typ, payload iss/exp/nbf)."""
    now = int(time.time()) if now is None else now
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    payload = _b64url(json.dumps({"iss": access_key, "exp": now + ttl, "nbf": now - 5},
                                 separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = hmac.new(secret_key.encode("utf-8"), signing_input, hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64url(signature)}"


class KlingProvider(Provider):
    name = "kling"
    title = "Kling 可灵 (images, image-to-video)"
    vendor = "kling"
    default_base_url = "https://api-beijing.klingai.com"
    env_keys = ("KLING_ACCESS_KEY", "KLING_SECRET_KEY")
    docs = ("https://app.klingai.com/cn/dev/document-api/apiReference/commonInfo",
            "https://app.klingai.com/cn/dev/document-api/apiReference/model/imageToVideo",
            "https://app.klingai.com/cn/dev/document-api/apiReference/model/imageGeneration")
    checked = "2026-12-03"
    idempotent_submit = True
    models = {
        "kling-v1-5": ModelInfo("kling-v1-5", "image", "image", ("t2i", "i2i"), references=1, default=True,
                                note="subject reference keeps a character's look"),
        "kling-v2-1": ModelInfo("kling-v2-1", "video", "video_second", ("i2v",), durations=(5, 10), default=True),
        "kling-v2-1-master": ModelInfo("kling-v2-1-master", "video", "video_second", ("t2v", "i2v"),
                                       durations=(5, 10)),
        "kling-v2-5-turbo": ModelInfo("kling-v2-5-turbo", "video", "video_second", ("t2v", "i2v"), durations=(5, 10)),
        "kling-v1-6": ModelInfo("kling-v1-6", "video", "video_second", ("t2v", "i2v"), durations=(5, 10)),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._token = ""
        self._token_exp = 0.0
        self._token_lock = threading.Lock()

    # -- auth ----------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        with self._token_lock:
            if time.time() > self._token_exp - 300:
                ak, sk = self.secret("KLING_ACCESS_KEY"), self.secret("KLING_SECRET_KEY")
                assert ak is not None and sk is not None
                now = int(time.time())
                self._token = sign_jwt(ak.reveal(), sk.reveal(), now)
                self._token_exp = now + 1800
                from pipelines.providers.secrets import remember

                remember(self._token)
            return {"Authorization": f"Bearer {self._token}"}

    def _check(self, body: Any) -> None:
        if not isinstance(body, dict):
            return
        code = body.get("code", 0)
        try:
            code = int(code)
        except (TypeError, ValueError):
            return
        if code == 0:
            return
        msg = f"code {code}: {body.get('message', '')}"
        if code in AUTH_CODES:
            raise self.http.auth_error(msg, code=str(code))
        if code in RATE_CODES:
            raise ProviderRateLimited(self.name, f"rate or concurrency limit ({msg})", code=str(code))
        if code in ACCOUNT_CODES:
            raise ProviderError(self.name, f"account problem ({msg})", code=str(code),
                                hint="check the resource packs and balance in the Kling console")
        if code in (1300, 1301):
            raise ProviderError(self.name, f"refused by the content policy ({msg})", code=str(code),
                                hint="change the prompt or the image")
        raise ProviderError(self.name, msg, code=str(code), retryable=code >= 5000)

    def check_auth(self) -> None:
        self.require_keys()
        now_ms = int(time.time() * 1000)
        try:
            self.http.request("GET", "account/costs", params={"start_time": now_ms - 86_400_000, "end_time": now_ms},
                              headers=self._headers(), check=self._check)
        except ProviderError as e:
            if e.status == 404:  # the account endpoint is not offered everywhere; the keys are present
                return
            raise

    # -- estimate ------------------------------------------------------------------------------
    @staticmethod
    def _mode(req: GenRequest) -> str:
        return str(req.options.get("mode", "std"))

    @staticmethod
    def _duration(req: GenRequest) -> int:
        return 10 if req.duration > 7 else 5

    def estimate(self, req: GenRequest) -> list[Units]:
        if req.kind == "image":
            return [Units("image", Decimal(1), req.model)]
        return [Units("video_second", Decimal(self._duration(req)), f"{req.model}@{self._mode(req)}")]

    # -- submit / poll -------------------------------------------------------------------------
    def _path(self, task: Task) -> str:
        return str(task.report.get("endpoint") or ("v1/images/generations" if task.kind == "image"
                                                   else "v1/videos/image2video"))

    def submit(self, req: GenRequest, task: Task) -> None:
        body: dict[str, Any] = {"model_name": req.model, "prompt": req.prompt[:2500],
                                "external_task_id": task.idempotency_key}
        if req.kind == "image":
            path = "v1/images/generations"
            body.update(n=1, aspect_ratio=req.aspect if req.aspect in IMAGE_RATIOS else "9:16")
            if req.references:
                body["image"] = image_b64(req.references[0], data_url=False)
                if req.model == "kling-v1-5":
                    body["image_reference"] = str(req.options.get("image_reference", "subject"))
                    body["image_fidelity"] = float(req.options.get("image_fidelity", 0.5))
                    body["human_fidelity"] = float(req.options.get("human_fidelity", 0.65))
            elif req.negative_prompt:  # not accepted together with a reference image
                body["negative_prompt"] = req.negative_prompt[:2500]
        elif req.kind == "video":
            body.update(mode=self._mode(req), duration=str(self._duration(req)))
            if req.negative_prompt:
                body["negative_prompt"] = req.negative_prompt[:2500]
            if req.image is not None:
                path = "v1/videos/image2video"
                body["image"] = image_b64(req.image, data_url=False)
            else:
                path = "v1/videos/text2video"
                body["aspect_ratio"] = nearest_aspect(req.width or 9, req.height or 16, VIDEO_RATIOS)
        else:
            raise TaskFailed(self.name, "Kling speech is not wired here; use another --voice provider")
        task.report["endpoint"] = path
        data = self.http.request("POST", path, json=body, headers=self._headers(), check=self._check,
                                 idempotent=True)  # Kling keys the task by external_task_id
        d = data.get("data") or {}
        task.task_id = str(d.get("task_id") or "")
        task.provider_status = str(d.get("task_status", ""))
        task.status = RUNNING

    def find(self, task: Task) -> bool:
        try:
            data = self.http.request("GET", f"{self._path(task)}/{task.idempotency_key}", headers=self._headers(),
                                     check=self._check)
        except ProviderError as e:
            if e.status == 404 or e.code in ("1202", "1203"):
                return False
            raise
        d = data.get("data") or {}
        if not d.get("task_id"):
            return False
        task.task_id = str(d["task_id"])
        task.status = RUNNING
        return True

    def poll(self, task: Task) -> None:
        data = self.http.request("GET", f"{self._path(task)}/{task.task_id}", headers=self._headers(),
                                 check=self._check)
        d = data.get("data") or {}
        status = str(d.get("task_status", ""))
        task.provider_status = status
        if status == "succeed":
            result = d.get("task_result") or {}
            items = result.get("videos") if task.kind == "video" else result.get("images")
            urls = [i["url"] for i in items or [] if isinstance(i, dict) and i.get("url")]
            if not urls:
                task.status, task.error = FAILED, "succeeded without a result URL"
                return
            task.outputs = [Output(url=u, suffix=".mp4" if task.kind == "video" else ".png") for u in urls[:1]]
            task.report["units_deducted"] = d.get("final_unit_deduction")
            if task.kind == "video":
                task.report["durations"] = [str(i.get("duration", "")) for i in items or [] if isinstance(i, dict)]
            task.status = SUCCEEDED
        elif status == "failed":
            task.status, task.error = FAILED, str(d.get("task_status_msg") or "failed")
        else:
            task.status = RUNNING

    def usage(self, task: Task, req: GenRequest) -> list[Units]:
        detail = {"kling_units": task.report.get("units_deducted")}
        if task.kind == "image":
            return [Units("image", Decimal(len(task.outputs) or 1), task.model, detail)]
        durations = [d for d in task.report.get("durations") or [] if d]
        seconds = Decimal(durations[0]) if durations else Decimal(self._duration(req))
        return [Units("video_second", seconds, f"{task.model}@{self._mode(req)}", {**detail, "mode": self._mode(req)})]
