"""Alibaba Cloud Model Studio (阿里云百炼, DashScope): Wan images and videos as async tasks.
Key: ``DASHSCOPE_API_KEY``.

Follows the official API reference (checked 2026-12-03):

* text-to-image: ``POST {base}/services/aigc/text2image/image-synthesis`` with
  ``X-DashScope-Async: enable`` - https://help.aliyun.com/zh/model-studio/text-to-image-v2-api-reference
  (``input.prompt``/``negative_prompt``, ``parameters.size`` "W*H", ``n``, ``seed``);
* image-to-video / text-to-video: ``POST {base}/services/aigc/video-generation/video-synthesis``
  (``input.img_url`` as URL or ``data:image/png;base64,...``; ``parameters.resolution``
  480P/720P/1080P, ``duration``, ``seed``) -
  https://help.aliyun.com/zh/model-studio/image-to-video-api-reference;
* results: ``GET {base}/tasks/{task_id}`` - ``output.task_status`` PENDING | RUNNING |
  SUCCEEDED | FAILED | CANCELED | UNKNOWN (a task id lives 24 h); images in
  ``output.results[].url``, video in ``output.video_url`` (URLs valid 24 h); ``usage``
  reports ``image_count`` or ``video_duration``/``video_count``, what is billed;
* auth: ``Authorization: Bearer $DASHSCOPE_API_KEY``; errors are HTTP statuses with
  ``{"code", "message", "request_id"}`` (401 InvalidApiKey, 429 Throttling...) -
  https://help.aliyun.com/zh/model-studio/developer-reference/error-code;
* prices: https://help.aliyun.com/zh/model-studio/models (per image; per video second by
  resolution, so video prices are keyed ``MODEL@RESOLUTION``).

The key check lists tasks (``GET {base}/tasks?page_size=1``), which is free.
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
from pipelines.providers.errors import TaskFailed

ASYNC = {"X-DashScope-Async": "enable"}


class DashScopeProvider(Provider):
    name = "dashscope"
    title = "Alibaba Cloud Model Studio 阿里云百炼 (Wan 通义万相)"
    vendor = "aliyun"
    default_base_url = "https://dashscope.aliyuncs.com/api/v1"
    env_keys = ("DASHSCOPE_API_KEY",)
    docs = ("https://help.aliyun.com/zh/model-studio/text-to-image-v2-api-reference",
            "https://help.aliyun.com/zh/model-studio/image-to-video-api-reference",
            "https://help.aliyun.com/zh/model-studio/developer-reference/error-code")
    checked = "2026-12-03"
    models = {
        "wan2.2-t2i-flash": ModelInfo("wan2.2-t2i-flash", "image", "image", ("t2i",), default=True),
        "wan2.2-t2i-plus": ModelInfo("wan2.2-t2i-plus", "image", "image", ("t2i",)),
        "wanx2.1-t2i-turbo": ModelInfo("wanx2.1-t2i-turbo", "image", "image", ("t2i",)),
        "wan2.2-i2v-plus": ModelInfo("wan2.2-i2v-plus", "video", "video_second", ("i2v",), durations=(5,),
                                     default=True, note="480P or 1080P"),
        "wan2.2-i2v-flash": ModelInfo("wan2.2-i2v-flash", "video", "video_second", ("i2v",), durations=(5,)),
        "wanx2.1-i2v-turbo": ModelInfo("wanx2.1-i2v-turbo", "video", "video_second", ("i2v",), durations=(3, 4, 5)),
        "wan2.2-t2v-plus": ModelInfo("wan2.2-t2v-plus", "video", "video_second", ("t2v",), durations=(5,)),
    }

    def _headers(self, asynchronous: bool = False) -> dict[str, str]:
        key = self.secret("DASHSCOPE_API_KEY")
        assert key is not None
        headers = {"Authorization": f"Bearer {key.reveal()}"}
        if asynchronous:
            headers.update(ASYNC)
        return headers

    def check_auth(self) -> None:
        self.require_keys()
        self.http.request("GET", "tasks", params={"page_no": 1, "page_size": 1}, headers=self._headers())

    @staticmethod
    def _resolution(req: GenRequest) -> str:
        return str(req.options.get("resolution", "1080P" if req.model == "wan2.2-i2v-plus" else "720P")).upper()

    @staticmethod
    def _size(req: GenRequest, cap: int = 1440) -> str:
        w, h = req.width or 720, req.height or 1280
        f = min(1.0, cap / max(w, h))
        w, h = max(512, int(w * f)), max(512, int(h * f))
        return f"{w}*{h}"

    def estimate(self, req: GenRequest) -> list[Units]:
        if req.kind == "image":
            return [Units("image", Decimal(1), req.model)]
        seconds = req.duration
        info = self.models.get(req.model)
        if info and info.durations:
            seconds = min(info.durations, key=lambda d: abs(d - req.duration))
        return [Units("video_second", Decimal(seconds), f"{req.model}@{self._resolution(req)}")]

    def submit(self, req: GenRequest, task: Task) -> None:
        params: dict[str, Any] = {"watermark": False, "prompt_extend": bool(req.options.get("prompt_extend", False))}
        if req.seed is not None:
            params["seed"] = int(req.seed) % 2147483648
        inp: dict[str, Any] = {"prompt": req.prompt}
        if req.negative_prompt:
            inp["negative_prompt"] = req.negative_prompt
        if req.kind == "image":
            path = "services/aigc/text2image/image-synthesis"
            params.update(size=self._size(req), n=1)
        elif req.kind == "video":
            path = "services/aigc/video-generation/video-synthesis"
            params["duration"] = int(self.estimate(req)[0].quantity)
            if req.image is not None:
                inp["img_url"] = image_b64(req.image)
                params["resolution"] = self._resolution(req)
            else:
                params["size"] = self._size(req, 1280)
        else:
            raise TaskFailed(self.name, "DashScope speech is not wired here; use another --voice provider")
        data = self.http.request("POST", path, json={"model": req.model, "input": inp, "parameters": params},
                                 headers=self._headers(asynchronous=True), idempotent=False)
        out = data.get("output") or {}
        task.task_id = str(out.get("task_id") or "")
        task.provider_status = str(out.get("task_status", ""))
        task.status = RUNNING

    def poll(self, task: Task) -> None:
        data = self.http.request("GET", f"tasks/{task.task_id}", headers=self._headers())
        out = data.get("output") or {}
        status = str(out.get("task_status", ""))
        task.provider_status = status
        if status == "SUCCEEDED":
            if task.kind == "video":
                urls = [out["video_url"]] if out.get("video_url") else []
                suffix = ".mp4"
            else:
                urls = [r["url"] for r in out.get("results") or [] if isinstance(r, dict) and r.get("url")]
                suffix = ".png"
            if not urls:
                failed = [r for r in out.get("results") or [] if isinstance(r, dict) and r.get("code")]
                task.status = FAILED
                task.error = (f"{failed[0].get('code')}: {failed[0].get('message', '')}" if failed
                              else "succeeded without a result URL")
                return
            task.outputs = [Output(url=u, suffix=suffix) for u in urls[:1]]
            task.report["usage"] = data.get("usage") or {}
            task.status = SUCCEEDED
        elif status in ("FAILED", "CANCELED", "UNKNOWN"):
            task.status = FAILED
            task.error = f"{status}: {out.get('code', '')} {out.get('message', '')}".strip()
        else:
            task.status = RUNNING

    def usage(self, task: Task, req: GenRequest) -> list[Units]:
        used = task.report.get("usage") or {}
        if task.kind == "image":
            return [Units("image", Decimal(int(used.get("image_count", 1))), task.model)]
        seconds = used.get("video_duration") or used.get("duration")
        if seconds is None:
            return self.estimate(req)
        return [Units("video_second", Decimal(str(seconds)), f"{task.model}@{self._resolution(req)}",
                      {"video_count": used.get("video_count"), "video_ratio": used.get("video_ratio")})]
