"""A local ComfyUI server running the user's own workflow (API format). No key needed.

Follows ComfyUI's server routes (checked 2026-12-03 against ``server.py`` of
github.com/comfyanonymous/ComfyUI and https://docs.comfy.org/development/comfyui-server/comms_routes):

* ``POST /prompt`` ``{"prompt": <workflow>, "client_id", "prompt_id"}`` queues a workflow; the
  server honours a ``prompt_id`` it is given, which is our idempotency key (a run stopped
  mid-call finds its prompt again in ``/history`` or ``/queue``); a workflow that does not
  validate answers 400 with ``error`` and ``node_errors``;
* ``GET /history/{prompt_id}`` is ``{}`` until the prompt ran, then holds ``outputs`` (per node:
  ``images``/``gifs``/``videos`` entries ``{filename, subfolder, type}``) and ``status``
  (``status_str`` success | error, ``messages`` with execution timestamps);
* ``GET /view?filename=&subfolder=&type=`` returns a file; ``POST /upload/image`` (multipart
  ``image``, ``type=input``) stores a reference or first-frame image for ``LoadImage``;
* ``GET /system_stats`` (the check that the server is up).

Workflows are JSON files in API format (ComfyUI: *Export (API)*). These placeholders are
replaced wherever a string holds them; a string that is exactly a number placeholder becomes
the number: ``{{prompt}}``, ``{{negative_prompt}}``, ``{{seed}}``, ``{{width}}``,
``{{height}}``, ``{{reference_image}}`` (the first reference, uploaded), ``{{image}}`` (the
first frame, uploaded), ``{{duration}}`` (seconds), ``{{frames}}`` and ``{{fps}}``, and any
``{{name}}`` set in ``[providers.comfyui]`` (``checkpoint = "..."``). The model name picks the
workflow: ``image`` and ``i2v`` are the examples shipped in ``pipelines/providers/workflows/``;
any other name is a ``.json`` file path or a file in ``[providers.comfyui] workflows``.

Usage is local GPU time (``gpu_second``, from the server's execution timestamps): free on your
own card, priced from the price book when the card is rented.
"""

from __future__ import annotations

import json
import re
import time
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from core.errors import InputError
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
)
from pipelines.providers.errors import ProviderError

PLACEHOLDER = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\s*\}\}")
NUMERIC = {"seed", "width", "height", "duration", "frames", "fps"}
VIDEO_SUFFIXES = (".mp4", ".webm", ".webp", ".gif", ".mov")


def fill(workflow: Any, values: dict[str, Any]) -> Any:
    """``workflow`` with every ``{{name}}`` replaced; unknown placeholders raise (named)."""
    if isinstance(workflow, dict):
        return {k: fill(v, values) for k, v in workflow.items()}
    if isinstance(workflow, list):
        return [fill(v, values) for v in workflow]
    if isinstance(workflow, str):
        whole = PLACEHOLDER.fullmatch(workflow.strip())
        if whole and whole.group(1) in values and whole.group(1) in NUMERIC:
            return values[whole.group(1)]

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in values:
                raise InputError(f"the ComfyUI workflow uses {{{{{name}}}}}, which has no value",
                                 hint=f"known: {', '.join(sorted(values))}; or set [providers.comfyui] {name}")
            return str(values[name])

        return PLACEHOLDER.sub(sub, workflow)
    return workflow


def shipped_workflow(name: str) -> dict[str, Any]:
    text = resources.files("pipelines.providers").joinpath("workflows", f"{name}.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


class ComfyUIProvider(Provider):
    name = "comfyui"
    title = "ComfyUI on your own machine (any workflow)"
    vendor = ""  # your own hardware
    default_base_url = "http://127.0.0.1:8188"
    env_keys = ()
    docs = ("https://docs.comfy.org/development/comfyui-server/comms_routes",
            "https://github.com/comfyanonymous/ComfyUI/blob/master/server.py")
    checked = "2026-12-03"
    idempotent_submit = True
    models = {
        "image": ModelInfo("image", "image", "gpu_second", ("t2i",), default=True,
                           note="shipped example: a checkpoint text-to-image workflow"),
        "i2v": ModelInfo("i2v", "video", "gpu_second", ("i2v",), default=True,
                         note="shipped example: Stable Video Diffusion image-to-video"),
    }

    @classmethod
    def model_info(cls, model: str, kind: Any) -> ModelInfo:
        if model in cls.models:
            return super().model_info(model, kind)
        return ModelInfo(model, kind, "gpu_second", note="your workflow")

    def check_auth(self) -> None:
        try:
            self.http.request("GET", "system_stats")
        except ProviderError as e:
            raise ProviderError(self.name, f"the ComfyUI server at {self.base_url} does not answer ({e.message})",
                                hint="start ComfyUI, or set [providers.comfyui] base_url") from None

    # -- workflows -----------------------------------------------------------------------------
    def workflow(self, model: str) -> dict[str, Any]:
        if model in self.models:
            return shipped_workflow(model)
        folder = self.settings.extra.get("workflows", "")
        candidates = [Path(model).expanduser()]
        if folder:
            candidates.append(Path(folder).expanduser() / (model if model.endswith(".json") else f"{model}.json"))
        for path in candidates:
            if path.is_file():
                try:
                    data = json.loads(path.read_text(encoding="utf-8"))
                except (ValueError, UnicodeDecodeError) as e:
                    raise InputError(f"ComfyUI workflow {str(path)!r} is not JSON ({e})") from e
                if not isinstance(data, dict) or not all(isinstance(v, dict) and "class_type" in v
                                                         for v in data.values()):
                    raise InputError(f"ComfyUI workflow {str(path)!r} is not in API format",
                                     hint="in ComfyUI use Workflow > Export (API)")
                return data
        raise InputError(f"no ComfyUI workflow named {model!r}",
                         hint="use image or i2v, a path to an API-format .json, or set [providers.comfyui] workflows")

    def _upload(self, path: Path) -> str:
        with open(path, "rb") as f:
            data = self.http.request("POST", "upload/image", files={"image": (path.name, f.read())},
                                     data={"type": "input", "overwrite": "true"}, idempotent=True)
        name = str(data.get("name") or path.name)
        sub = str(data.get("subfolder") or "")
        return f"{sub}/{name}" if sub else name

    def _values(self, req: GenRequest) -> dict[str, Any]:
        fps = int(req.options.get("fps", self.settings.extra.get("fps", 8)))
        values: dict[str, Any] = {"checkpoint": "sd_xl_base_1.0.safetensors", "video_checkpoint": "svd_xt.safetensors"}
        values.update({k: v for k, v in self.settings.extra.items() if k not in ("workflows",)})
        values.update(prompt=req.prompt, negative_prompt=req.negative_prompt, seed=int(req.seed or 0),
                      width=req.width or 576, height=req.height or 1024, duration=req.duration, fps=fps,
                      frames=max(1, req.duration * fps))
        values.update({k: v for k, v in req.options.items() if isinstance(v, str | int | float)})
        return values

    # -- the steps -----------------------------------------------------------------------------
    def estimate(self, req: GenRequest) -> list[Units]:
        per = Decimal(str(self.settings.extra.get("seconds_per_image" if req.kind == "image" else "seconds_per_video",
                                                  "20" if req.kind == "image" else "120")))
        return [Units("gpu_second", per, req.model, {"estimate": "configured seconds per result"})]

    def submit(self, req: GenRequest, task: Task) -> None:
        values = self._values(req)
        workflow = self.workflow(req.model)
        text = json.dumps(workflow)
        if "reference_image" in text:
            if not req.references:
                raise InputError(f"workflow {req.model!r} needs a reference image and the request has none")
            values["reference_image"] = self._upload(req.references[0])
        if "{{image}}" in text.replace(" ", ""):
            first = req.image or (req.references[0] if req.references else None)
            if first is None:
                raise InputError(f"workflow {req.model!r} needs an image and the request has none")
            values["image"] = self._upload(first)
        prompt = fill(workflow, values)
        task.report["started"] = time.time()
        data = self.http.request("POST", "prompt", json={"prompt": prompt, "client_id": "reelforge",
                                                         "prompt_id": task.idempotency_key}, idempotent=True)
        errors = data.get("node_errors") or {}
        if errors:
            raise ProviderError(self.name, f"the workflow has errors in nodes {', '.join(errors)}")
        task.task_id = str(data.get("prompt_id") or task.idempotency_key)
        task.status = RUNNING

    def find(self, task: Task) -> bool:
        hist = self.http.request("GET", f"history/{task.idempotency_key}")
        if hist:
            task.task_id = task.idempotency_key
            task.status = RUNNING
            return True
        queue = self.http.request("GET", "queue")
        for item in (queue.get("queue_running") or []) + (queue.get("queue_pending") or []):
            if isinstance(item, list) and len(item) > 1 and item[1] == task.idempotency_key:
                task.task_id = task.idempotency_key
                task.status = RUNNING
                return True
        return False

    def poll(self, task: Task) -> None:
        hist = self.http.request("GET", f"history/{task.task_id}")
        entry = hist.get(task.task_id) if isinstance(hist, dict) else None
        if not entry:
            task.status, task.provider_status = RUNNING, "queued"
            return
        status = entry.get("status") or {}
        task.provider_status = str(status.get("status_str", ""))
        messages = status.get("messages") or []
        stamps = {m[0]: m[1].get("timestamp") for m in messages
                  if isinstance(m, list) and len(m) == 2 and isinstance(m[1], dict)}
        if status.get("status_str") == "error":
            err: dict[str, Any] = next((m[1] for m in messages if isinstance(m, list) and m and m[0] == "execution_error"), {})
            task.status = FAILED
            task.error = f"{err.get('node_type', '')}: {err.get('exception_message', 'execution error')}".strip(": ")
            return
        if not status.get("completed", True) and status.get("status_str") != "success":
            task.status = RUNNING
            return
        files = []
        wanted = self.settings.extra.get("output_node", "")
        for node, out in (entry.get("outputs") or {}).items():
            if wanted and node != wanted:
                continue
            for key in ("videos", "gifs", "images"):
                for item in out.get(key) or []:
                    if isinstance(item, dict) and item.get("filename") and item.get("type", "output") == "output":
                        files.append(item)
        if task.kind == "video":
            files.sort(key=lambda f: not str(f["filename"]).lower().endswith(VIDEO_SUFFIXES))
        if not files:
            task.status, task.error = FAILED, "the workflow saved no output file"
            return
        f = files[0]
        from urllib.parse import urlencode

        query = urlencode({"filename": f["filename"], "subfolder": f.get("subfolder", ""), "type": "output"})
        task.outputs = [Output(url=f"view?{query}", suffix=Path(str(f["filename"])).suffix or ".png", via_api=True)]
        start, end = stamps.get("execution_start"), stamps.get("execution_success")
        if isinstance(start, int | float) and isinstance(end, int | float) and end >= start:
            task.report["gpu_seconds"] = str(Decimal(int(end - start)) / 1000)
        task.status = SUCCEEDED

    def usage(self, task: Task, req: GenRequest) -> list[Units]:
        seconds = task.report.get("gpu_seconds")
        if seconds is None:
            started = float(task.report.get("started") or time.time())
            seconds = str(Decimal(int((time.time() - started) * 1000)) / 1000)
        return [Units("gpu_second", Decimal(seconds), task.model, {"local": True})]
