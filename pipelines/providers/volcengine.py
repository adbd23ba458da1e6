"""Volcengine speech synthesis (豆包语音) over HTTP. Keys: ``VOLC_TTS_APPID``, ``VOLC_TTS_TOKEN``.

Follows the official HTTP API (checked 2026-12-03, https://www.volcengine.com/docs/6561/1257584,
voices https://www.volcengine.com/docs/6561/1257544):

* ``POST /api/v1/tts`` with the header ``Authorization: Bearer;{token}`` (a semicolon, as the
  documentation insists) and ``{"app": {"appid", "token", "cluster": "volcano_tts"}, "user":
  {"uid"}, "audio": {"voice_type", "encoding", "speed_ratio", "rate"}, "request": {"reqid",
  "text", "operation": "query"}}``; ``reqid`` must be unique per call (our idempotency key);
* the answer is ``{"reqid", "code", "message", "sequence", "data": <base64 audio>,
  "addition": {"duration": ms}}``; ``code`` 3000 is success, 3003 (concurrency) and 3005
  (busy) are retried, 3001 with "authenticate" in the message is a refused key, 3010/3011 bad
  text, 3050 an unknown voice. Billing is per character of text.

There is no free call to prove the keys before the first synthesis; the keys' presence is
checked, and a refused key costs nothing (the call fails before synthesis).
"""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

from pipelines.providers.base import SUCCEEDED, GenRequest, ModelInfo, Output, Provider, Task, Units
from pipelines.providers.errors import ProviderError, ProviderRateLimited, TaskFailed

VOICES = {
    ("male", "young"): ("zh_male_shaonianzixin_moon_bigtts", "zh_male_wennuanahu_moon_bigtts"),
    ("male", "adult"): ("zh_male_jieshuonansheng_mars_bigtts", "zh_male_yangguangqingnian_moon_bigtts"),
    ("male", "old"): ("zh_male_aojiaobazong_moon_bigtts",),
    ("female", "young"): ("zh_female_shuangkuaisisi_moon_bigtts", "zh_female_tianmeixiaoyuan_moon_bigtts"),
    ("female", "adult"): ("zh_female_wanwanxiaohe_moon_bigtts", "zh_female_zhixingnvsheng_mars_bigtts"),
    ("female", "old"): ("zh_female_gaolengyujie_moon_bigtts",),
    ("", ""): ("zh_male_jieshuonansheng_mars_bigtts",),
}


class VolcengineTTSProvider(Provider):
    name = "volcengine"
    title = "Volcengine speech 豆包语音合成"
    vendor = "volcengine"
    default_base_url = "https://openspeech.bytedance.com"
    env_keys = ("VOLC_TTS_APPID", "VOLC_TTS_TOKEN")
    docs = ("https://www.volcengine.com/docs/6561/1257584", "https://www.volcengine.com/docs/6561/1257544")
    checked = "2026-12-03"
    voices = VOICES
    models = {
        "volcano_tts": ModelInfo("volcano_tts", "voice", "character", ("tts",), default=True,
                                 note="the cluster name; the voice_type picks the voice"),
    }

    def _check(self, body: Any) -> None:
        if not isinstance(body, dict) or "code" not in body:
            return
        code = int(body.get("code") or 0)
        if code == 3000:
            return
        message = str(body.get("message", ""))
        msg = f"code {code}: {message}"
        if "authenticate" in message or "grant" in message or code in (401, 403):
            raise self.http.auth_error(msg, code=str(code))
        if code in (3003, 3005) or "concurrency" in message:
            raise ProviderRateLimited(self.name, f"busy or over the concurrency limit ({msg})", code=str(code))
        if code in (3030, 3031, 3032, 3040):
            raise ProviderError(self.name, msg, code=str(code), retryable=True)
        raise ProviderError(self.name, msg, code=str(code))

    def estimate(self, req: GenRequest) -> list[Units]:
        return [Units("character", Decimal(len(req.text)), req.model or "volcano_tts")]

    def submit(self, req: GenRequest, task: Task) -> None:
        if req.kind != "voice":
            raise TaskFailed(self.name, "this adapter only speaks; use ark for Doubao images and videos")
        appid, token = self.secret("VOLC_TTS_APPID"), self.secret("VOLC_TTS_TOKEN")
        assert appid is not None and token is not None
        cluster = self.settings.extra.get("cluster", "volcano_tts")
        body = {
            "app": {"appid": appid.reveal(), "token": "access_token", "cluster": cluster},
            "user": {"uid": "reelforge"},
            "audio": {"voice_type": req.voice or VOICES[("", "")][0], "encoding": "mp3",
                      "speed_ratio": max(0.8, min(2.0, req.speed)), "rate": 24000},
            "request": {"reqid": task.idempotency_key, "text": req.text, "operation": "query"},
        }
        data = self.http.request("POST", "api/v1/tts", json=body, headers={"Authorization": f"Bearer;{token.reveal()}"},
                                 check=self._check, idempotent=False)
        task.task_id = str(data.get("reqid") or task.idempotency_key)
        try:
            raw = base64.b64decode(data.get("data") or "", validate=True)
        except ValueError:
            raw = b""
        if not raw:
            raise TaskFailed(self.name, "speech synthesis returned no audio")
        task.report["usage"] = {"duration_ms": (data.get("addition") or {}).get("duration"),
                                "characters": len(req.text)}
        task.outputs = [Output(data=raw, suffix=".mp3")]
        task.status, task.provider_status = SUCCEEDED, "3000"

    def usage(self, task: Task, req: GenRequest) -> list[Units]:
        used = task.report.get("usage") or {}
        return [Units("character", Decimal(len(req.text)), task.model or "volcano_tts",
                      {"voice": req.voice, "audio_ms": used.get("duration_ms")})]
