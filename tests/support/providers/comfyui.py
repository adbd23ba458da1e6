"""Fake of a ComfyUI server (``/prompt``, ``/history/{id}``, ``/view``, ``/upload/image``, ``/queue``,
``/system_stats``), from ComfyUI's ``server.py`` and https://docs.comfy.org/development/comfyui-server/comms_routes.
It validates that every placeholder was filled and that node links point at existing nodes."""

from __future__ import annotations

import json
import re
import time
import uuid

from tests.support.providers.server import FakeServer, Reply, Request, Route, content_for


class FakeComfyUI(FakeServer):
    name = "comfyui"

    def routes(self) -> list[Route]:
        return [("GET", r"/system_stats", self.stats), ("POST", r"/prompt", self.prompt),
                ("GET", r"/history/([\w-]+)", self.history), ("GET", r"/queue", self.queue),
                ("GET", r"/view", self.view), ("POST", r"/upload/image", self.upload)]

    def stats(self, req: Request, _: tuple[str, ...]) -> Reply:
        return Reply(200, {"system": {"os": "posix", "comfyui_version": "0.3.60"}, "devices": []})

    def prompt(self, req: Request, _: tuple[str, ...]) -> Reply:
        body = req.json() or {}
        graph = body.get("prompt")
        if not isinstance(graph, dict) or not graph:
            return Reply(400, {"error": {"type": "no_prompt", "message": "No prompt provided", "details": "",
                                         "extra_info": {}}, "node_errors": {}})
        text = json.dumps(graph)
        if re.search(r"\{\{\s*\w+\s*\}\}", text):
            return Reply(400, {"error": {"type": "prompt_outputs_failed_validation", "message": "unfilled placeholder",
                                         "details": "", "extra_info": {}}, "node_errors": {}})
        for node in graph.values():
            for value in (node.get("inputs") or {}).values():
                if isinstance(value, list) and len(value) == 2 and str(value[0]) not in graph:
                    return Reply(400, {"error": {"type": "prompt_outputs_failed_validation",
                                                 "message": f"missing node {value[0]}", "details": "",
                                                 "extra_info": {}}, "node_errors": {}})
        pid = str(body.get("prompt_id") or uuid.uuid4())
        kind = "video" if any(n.get("class_type", "").startswith(("SVD", "SaveAnimated")) for n in graph.values()) \
            else "image"
        t = self.new_task(kind, body, task_id=pid)
        return Reply(200, {"prompt_id": t.id, "number": len(self.tasks), "node_errors": {}})

    def history(self, req: Request, groups: tuple[str, ...]) -> Reply:
        t = self.tasks.get(groups[0])
        if t is None:
            return Reply(200, {})
        state = self.state(t)
        if state in ("pending", "running"):
            return Reply(200, {})
        start = int(t.created * 1000)
        if state == "failed":
            return Reply(200, {t.id: {"prompt": [], "outputs": {}, "status": {
                "status_str": "error", "completed": False,
                "messages": [["execution_start", {"prompt_id": t.id, "timestamp": start}],
                             ["execution_error", {"prompt_id": t.id, "node_type": "KSampler",
                                                  "exception_message": "CUDA out of memory"}]]}}})
        name = t.extra.setdefault("file", f"reelforge_{t.id[:8]}_00001_{'.webp' if t.kind == 'video' else '.png'}")
        self.files[name] = (content_for(t.kind, t.id), name[-5:])
        key = "images"
        return Reply(200, {t.id: {"prompt": [], "outputs": {"9": {key: [{"filename": name, "subfolder": "reelforge",
                                                                           "type": "output"}]}},
                                   "status": {"status_str": "success", "completed": True,
                                              "messages": [["execution_start", {"timestamp": start}],
                                                           ["execution_success", {"timestamp": start + 4200}]]}}})

    def queue(self, req: Request, _: tuple[str, ...]) -> Reply:
        running = [[0, t.id, {}, {}, []] for t in self.tasks.values() if time.monotonic() - t.created < self.latency_s]
        return Reply(200, {"queue_running": running, "queue_pending": []})

    def view(self, req: Request, _: tuple[str, ...]) -> Reply:
        self.counts["download"] += 1
        item = self.files.get(req.query.get("filename", ""))
        if item is None or req.query.get("type") != "output":
            return Reply(404, b"", content_type="text/plain")
        return Reply(200, item[0], content_type="image/png")

    def upload(self, req: Request, _: tuple[str, ...]) -> Reply:
        m = re.search(rb'filename="([^"]+)"', req.raw)
        if not m:
            return Reply(400, b"no image", content_type="text/plain")
        self.counts["upload"] += 1
        return Reply(200, {"name": m.group(1).decode(), "subfolder": "", "type": "input"})
