"""MiniMax (海螺 Hailuo video, speech). Key: ``MINIMAX_API_KEY`` (``MINIMAX_GROUP_ID`` optional).

Follows the official API documentation (checked 2026-12-03,
https://platform.minimaxi.com/docs/api-reference/video-generation-intro, .../speech-t2a-http)
and MiniMax's own client (github.com/MiniMax-AI/MiniMax-MCP, ``minimax_mcp/client.py``):

* video: ``POST /v1/video_generation`` (``model``, ``prompt``, ``first_frame_image`` as URL or
  data URL, ``duration`` 6 or 10, ``resolution`` 512P/768P/1080P) -> ``task_id``;
  ``GET /v1/query/video_generation?task_id=`` -> ``status`` Queueing | Preparing | Processing |
  Success | Fail and ``file_id``; ``GET /v1/files/retrieve?file_id=`` -> ``file.download_url``
  (a fresh URL each time, which is how an expired one is replaced);
* speech: ``POST /v1/t2a_v2`` (``voice_setting.voice_id``, ``audio_setting``), synchronous;
  ``data.audio`` is hex; ``extra_info.usage_characters`` is what is billed;
* auth: ``Authorization: Bearer $MINIMAX_API_KEY``; where the account's documentation asks
  for it, ``GroupId`` goes in the query string (set ``MINIMAX_GROUP_ID``);
* errors come in HTTP 200 bodies: ``base_resp.status_code`` 0 is success; 1004/2049 auth,
  1002/1039 rate limits (retried), 1008 balance, 1026/1027 content policy, 2013 parameters.

The key check lists the system voices (``POST /v1/get_voice``), which is free.
"""

from __future__ import annotations

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
)
from pipelines.providers.errors import ProviderError, ProviderRateLimited, TaskFailed

AUTH_CODES = {1004, 2049}
RATE_CODES = {1002, 1039}
RETRY_CODES = {1000, 1001, 1013}

# system voices by (gender, age band) for characters without a voice of their own
VOICES = {
    ("male", "young"): ("male-qn-qingse", "male-qn-daxuesheng", "male-qn-badao"),
    ("male", "adult"): ("male-qn-jingying", "presenter_male", "audiobook_male_1"),
    ("male", "old"): ("audiobook_male_2", "male-qn-jingying"),
    ("male", "child"): ("clever_boy", "cute_boy"),
    ("female", "young"): ("female-shaonv", "female-tianmei", "lovely_girl"),
    ("female", "adult"): ("female-yujie", "presenter_female", "audiobook_female_1"),
    ("female", "old"): ("female-chengshu", "audiobook_female_2"),
    ("female", "child"): ("lovely_girl", "cute_boy"),
    ("", ""): ("presenter_male", "audiobook_male_1"),
}


class MiniMaxProvider(Provider):
    name = "minimax"
    title = "MiniMax (Hailuo 海螺 video, speech)"
    vendor = "minimax"
    default_base_url = "https://api.minimaxi.com"
    env_keys = ("MINIMAX_API_KEY",)
    optional_env = ("MINIMAX_GROUP_ID",)
    docs = ("https://platform.minimaxi.com/docs/api-reference/video-generation-intro",
            "https://platform.minimaxi.com/docs/api-reference/speech-t2a-http")
    checked = "2026-12-03"
    voices = VOICES
    models = {
        "MiniMax-Hailuo-02": ModelInfo("MiniMax-Hailuo-02", "video", "video_second", ("t2v", "i2v"),
                                       durations=(6, 10), default=True),
        "MiniMax-Hailuo-2.3": ModelInfo("MiniMax-Hailuo-2.3", "video", "video_second", ("t2v", "i2v"),
                                        durations=(6, 10)),
        "MiniMax-Hailuo-2.3-Fast": ModelInfo("MiniMax-Hailuo-2.3-Fast", "video", "video_second", ("i2v",),
                                             durations=(6, 10)),
        "speech-02-hd": ModelInfo("speech-02-hd", "voice", "character", ("tts",), default=True),
        "speech-02-turbo": ModelInfo("speech-02-turbo", "voice", "character", ("tts",)),
    }

    def _headers(self) -> dict[str, str]:
        key = self.secret("MINIMAX_API_KEY")
        assert key is not None
        return {"Authorization": f"Bearer {key.reveal()}"}

    def _params(self, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        params = dict(extra or {})
        group = self.secret("MINIMAX_GROUP_ID", required=False)
        if group:
            params["GroupId"] = group.reveal()
        return params

    def _check(self, body: Any) -> None:
        base = body.get("base_resp") if isinstance(body, dict) else None
        if not isinstance(base, dict):
            return
        code = int(base.get("status_code", 0) or 0)
        if code == 0:
            return
        msg = f"status_code {code}: {base.get('status_msg', '')}"
        if code in AUTH_CODES:
            raise self.http.auth_error(msg, code=str(code))
        if code in RATE_CODES:
            raise ProviderRateLimited(self.name, f"rate limited ({msg})", code=str(code))
        if code == 1008:
            raise ProviderError(self.name, f"insufficient balance ({msg})", code=str(code),
                                hint="top up the MiniMax account")
        raise ProviderError(self.name, msg, code=str(code), retryable=code in RETRY_CODES)

    def check_auth(self) -> None:
        self.require_keys()
        self.http.request("POST", "v1/get_voice", json={"voice_type": "system"}, params=self._params(),
                          headers=self._headers(), check=self._check, idempotent=True)

    @staticmethod
    def _resolution(req: GenRequest) -> str:
        return str(req.options.get("resolution", "768P")).upper()

    @staticmethod
    def _duration(req: GenRequest) -> int:
        return 10 if req.duration > 8 else 6

    def estimate(self, req: GenRequest) -> list[Units]:
        if req.kind == "voice":
            return [Units("character", Decimal(len(req.text)), req.model)]
        return [Units("video_second", Decimal(self._duration(req)), f"{req.model}@{self._resolution(req)}")]

    def submit(self, req: GenRequest, task: Task) -> None:
        if req.kind == "voice":
            self._speak(req, task)
            return
        if req.kind != "video":
            raise TaskFailed(self.name, "MiniMax images are not wired here; use another --image provider")
        body: dict[str, Any] = {"model": req.model, "prompt": req.prompt[:2000], "duration": self._duration(req),
                                "resolution": self._resolution(req)}
        if req.image is not None:
            body["first_frame_image"] = image_b64(req.image)
        data = self.http.request("POST", "v1/video_generation", json=body, params=self._params(),
                                 headers=self._headers(), check=self._check, idempotent=False)
        task.task_id = str(data.get("task_id") or "")
        task.status = RUNNING

    def _speak(self, req: GenRequest, task: Task) -> None:
        body = {"model": req.model, "text": req.text, "stream": False,
                "voice_setting": {"voice_id": req.voice or VOICES[("", "")][0], "speed": req.speed, "vol": 1.0,
                                  "pitch": 0},
                "audio_setting": {"sample_rate": 32000, "bitrate": 128000, "format": "mp3", "channel": 1},
                "output_format": "hex"}
        data = self.http.request("POST", "v1/t2a_v2", json=body, params=self._params(), headers=self._headers(),
                                 check=self._check, idempotent=False)
        audio = (data.get("data") or {}).get("audio") or ""
        task.task_id = str(data.get("trace_id") or f"sync-{task.idempotency_key}")
        task.report["usage"] = data.get("extra_info") or {}
        try:
            raw = bytes.fromhex(audio)
        except ValueError:
            raw = b""
        if not raw:
            task.status, task.error = FAILED, "no audio in the answer"
            raise TaskFailed(self.name, "speech synthesis returned no audio")
        task.outputs = [Output(data=raw, suffix=".mp3")]
        task.status, task.provider_status = SUCCEEDED, "success"

    def poll(self, task: Task) -> None:
        if task.kind != "video":
            return
        data = self.http.request("GET", "v1/query/video_generation", params=self._params({"task_id": task.task_id}),
                                 headers=self._headers(), check=self._check)
        status = str(data.get("status", ""))
        task.provider_status = status
        if status == "Success":
            file_id = str(data.get("file_id") or "")
            if not file_id:
                task.status, task.error = FAILED, "succeeded without a file_id"
                return
            task.report["file_id"] = file_id
            task.report["size"] = [data.get("video_width"), data.get("video_height")]
            self._retrieve(task)
            task.status = SUCCEEDED
        elif status == "Fail":
            task.status, task.error = FAILED, str(data.get("error_message") or data.get("status_msg") or "failed")
        else:
            task.status = RUNNING

    def _retrieve(self, task: Task) -> None:
        data = self.http.request("GET", "v1/files/retrieve", params=self._params({"file_id": task.report["file_id"]}),
                                 headers=self._headers(), check=self._check)
        url = (data.get("file") or {}).get("download_url")
        if not url:
            raise ProviderError(self.name, f"file {task.report['file_id']} has no download_url")
        task.outputs = [Output(url=url, suffix=".mp4")]

    def refresh(self, task: Task) -> None:
        if task.kind == "video" and task.report.get("file_id"):
            self._retrieve(task)
        else:
            self.poll(task)

    def usage(self, task: Task, req: GenRequest) -> list[Units]:
        if task.kind == "voice":
            used = task.report.get("usage") or {}
            chars = used.get("usage_characters")
            quantity = Decimal(int(chars)) if chars is not None else Decimal(len(req.text))
            return [Units("character", quantity, task.model, {"audio_ms": used.get("audio_length")})]
        return [Units("video_second", Decimal(self._duration(req)), f"{task.model}@{self._resolution(req)}",
                      {"size": task.report.get("size")})]
