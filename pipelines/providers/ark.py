"""Volcengine Ark (火山方舟): Seedream images and Seedance video tasks. Key: ``ARK_API_KEY``.

Follows the official API reference (checked 2026-12-03):

* images: ``POST {base}/images/generations`` - https://www.volcengine.com/docs/82379/1541523
  (Seedream 4.0 takes 1-10 reference images in ``image``, URL or ``data:image/png;base64,...``;
  ``size`` "WxH" with total pixels in [1280x720, 4096x4096]; synchronous; ``data[].url`` valid
  24 h; ``usage.generated_images`` is what is billed);
* video: ``POST {base}/contents/generations/tasks`` - https://www.volcengine.com/docs/82379/1520757
  (``content``: a text item whose prompt carries ``--ratio --duration --seed --resolution``
  commands, and ``image_url`` items with ``role`` first_frame / reference_image), then
  ``GET {base}/contents/generations/tasks/{id}`` - https://www.volcengine.com/docs/82379/1521309
  (status queued | running | succeeded | failed | cancelled; ``content.video_url`` kept 24 h;
  ``usage.completion_tokens`` is what is billed; tokens ~ width x height x fps x seconds / 1024);
* auth: ``Authorization: Bearer $ARK_API_KEY``; errors are HTTP statuses with
  ``{"error": {"code", "message"}}`` (https://www.volcengine.com/docs/82379/1299023).
* prices: https://www.volcengine.com/docs/82379/1544106 (images), .../1099320 (video).

The key check lists tasks (``GET .../contents/generations/tasks?page_size=1``), which is free.
"""

from __future__ import annotations

import math
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
from pipelines.providers.errors import TaskFailed

RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9")
# the 720p/1080p/480p frame sizes for a ratio (long side x short side), for the token estimate
RES_SHORT = {"480p": 480, "720p": 720, "1080p": 1080}
FPS = 24


class ArkProvider(Provider):
    name = "ark"
    title = "Volcengine Ark 火山方舟 (Seedream, Seedance)"
    vendor = "volcengine"
    default_base_url = "https://ark.cn-beijing.volces.com/api/v3"
    env_keys = ("ARK_API_KEY",)
    docs = ("https://www.volcengine.com/docs/82379/1541523", "https://www.volcengine.com/docs/82379/1520757",
            "https://www.volcengine.com/docs/82379/1521309")
    checked = "2026-12-03"
    models = {
        "doubao-seedream-4-0-250828": ModelInfo("doubao-seedream-4-0-250828", "image", "image", ("t2i", "i2i"),
                                                references=10, default=True),
        "doubao-seedream-3-0-t2i-250415": ModelInfo("doubao-seedream-3-0-t2i-250415", "image", "image", ("t2i",)),
        "doubao-seedance-1-0-pro-250528": ModelInfo("doubao-seedance-1-0-pro-250528", "video", "output_token",
                                                    ("t2v", "i2v"), durations=tuple(range(2, 13)), default=True),
        "doubao-seedance-1-0-pro-fast-251015": ModelInfo("doubao-seedance-1-0-pro-fast-251015", "video",
                                                         "output_token", ("t2v", "i2v"),
                                                         durations=tuple(range(2, 13))),
        "doubao-seedance-1-0-lite-i2v-250428": ModelInfo("doubao-seedance-1-0-lite-i2v-250428", "video",
                                                         "output_token", ("i2v",), references=4,
                                                         durations=tuple(range(2, 13))),
    }

    def _headers(self) -> dict[str, str]:
        key = self.secret("ARK_API_KEY")
        assert key is not None
        return {"Authorization": f"Bearer {key.reveal()}"}

    def check_auth(self) -> None:
        self.require_keys()
        self.http.request("GET", "contents/generations/tasks", params={"page_num": 1, "page_size": 1},
                          headers=self._headers())

    # -- estimate ------------------------------------------------------------------------------
    @staticmethod
    def _image_size(req: GenRequest) -> str:
        w, h = req.width or 1440, req.height or 2560
        area = w * h
        lo, hi = 1280 * 720, 4096 * 4096
        if area < lo or area > hi:  # keep the aspect, scale into the documented pixel range
            f = math.sqrt((lo if area < lo else hi) / area)
            w, h = int(w * f) + (1 if area < lo else 0), int(h * f) + (1 if area < lo else 0)
        return f"{w}x{h}"

    @staticmethod
    def _video_params(req: GenRequest) -> tuple[str, str, int]:
        resolution = str(req.options.get("resolution", "720p"))
        ratio = nearest_aspect(req.width, req.height, RATIOS) if req.width and req.height else "9:16"
        return resolution, ratio, max(2, min(12, req.duration))

    def estimate(self, req: GenRequest) -> list[Units]:
        if req.kind == "image":
            return [Units("image", Decimal(1), req.model)]
        resolution, ratio, seconds = self._video_params(req)
        short = RES_SHORT.get(resolution, 720)
        a, b = (int(x) for x in ratio.split(":"))
        long_side = short * max(a, b) / min(a, b)
        tokens = int(short * long_side * FPS * seconds / 1024)
        return [Units("output_token", Decimal(tokens), req.model, {"estimate": f"{resolution} {ratio} {seconds}s"})]

    # -- submit / poll -------------------------------------------------------------------------
    def submit(self, req: GenRequest, task: Task) -> None:
        if req.kind == "image":
            self._submit_image(req, task)
        elif req.kind == "video":
            self._submit_video(req, task)
        else:
            raise TaskFailed(self.name, "Ark has no speech synthesis here; use --voice volcengine:... for Doubao voices")

    def _submit_image(self, req: GenRequest, task: Task) -> None:
        body: dict[str, Any] = {"model": req.model, "prompt": req.prompt, "size": self._image_size(req),
                                "response_format": "url", "watermark": bool(req.options.get("watermark", False))}
        if req.model.startswith("doubao-seedream-4"):
            body["sequential_image_generation"] = "disabled"
        elif req.seed is not None:  # the 3.0 models take a seed; 4.0 does not
            body["seed"] = int(req.seed)
        refs = [*req.references, *([req.image] if req.image else [])]
        if refs:
            body["image"] = [image_b64(p) for p in refs[:10]]
        data = self.http.request("POST", "images/generations", json=body, headers=self._headers(), idempotent=False)
        task.task_id = f"sync-{task.idempotency_key}"
        items = data.get("data") or []
        errors = [i["error"] for i in items if isinstance(i, dict) and i.get("error")]
        urls = [i["url"] for i in items if isinstance(i, dict) and i.get("url")]
        task.report["usage"] = data.get("usage") or {}
        if not urls:
            msg = errors[0].get("message", "no image") if errors else "no image in the answer"
            task.status, task.error = FAILED, str(msg)
            raise TaskFailed(self.name, f"image generation failed: {msg}")
        task.outputs = [Output(url=u, suffix=".jpeg") for u in urls[:1]]
        task.status, task.provider_status = SUCCEEDED, "succeeded"

    def _submit_video(self, req: GenRequest, task: Task) -> None:
        resolution, ratio, seconds = self._video_params(req)
        commands = f" --resolution {resolution} --ratio {'adaptive' if req.image else ratio} --duration {seconds}"
        if req.seed is not None:
            commands += f" --seed {int(req.seed) % (2**32)}"
        commands += f" --camerafixed {str(bool(req.options.get('camerafixed', False))).lower()} --watermark false"
        content: list[dict[str, Any]] = [{"type": "text", "text": (req.prompt or "") + commands}]
        if req.image is not None:
            content.append({"type": "image_url", "image_url": {"url": image_b64(req.image)}, "role": "first_frame"})
        elif req.references and self.model_info(req.model, "video").references:
            for p in req.references[:4]:
                content.append({"type": "image_url", "image_url": {"url": image_b64(p)}, "role": "reference_image"})
        data = self.http.request("POST", "contents/generations/tasks", json={"model": req.model, "content": content},
                                 headers=self._headers(), idempotent=False)
        task.task_id = str(data.get("id") or "")
        task.status = RUNNING

    def poll(self, task: Task) -> None:
        if task.kind != "video":
            return
        data = self.http.request("GET", f"contents/generations/tasks/{task.task_id}", headers=self._headers())
        status = str(data.get("status", ""))
        task.provider_status = status
        if status == "succeeded":
            url = (data.get("content") or {}).get("video_url")
            if not url:
                task.status, task.error = FAILED, "succeeded without a video_url"
                return
            task.outputs = [Output(url=url, suffix=".mp4")]
            task.report["usage"] = data.get("usage") or {}
            task.report["video"] = {k: data.get(k) for k in ("seed", "resolution", "ratio", "duration", "frames",
                                                              "framespersecond")}
            task.status = SUCCEEDED
        elif status in ("failed", "cancelled"):
            err = data.get("error") or {}
            task.status = FAILED
            task.error = f"{status}: {err.get('code', '')} {err.get('message', '')}".strip()
        else:
            task.status = RUNNING

    def usage(self, task: Task, req: GenRequest) -> list[Units]:
        used = task.report.get("usage") or {}
        if task.kind == "image":
            n = int(used.get("generated_images", len(task.outputs) or 1))
            return [Units("image", Decimal(n), task.model, {"output_tokens": used.get("output_tokens")})]
        tokens = used.get("completion_tokens")
        if tokens is None:
            return self.estimate(req)
        return [Units("output_token", Decimal(int(tokens)), task.model, {"total_tokens": used.get("total_tokens"),
                                                                        **(task.report.get("video") or {})})]
