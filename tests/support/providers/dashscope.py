"""Fake of Alibaba Cloud Model Studio (DashScope) async tasks, from
https://help.aliyun.com/zh/model-studio/text-to-image-v2-api-reference, image-to-video-api-reference
and developer-reference/error-code."""

from __future__ import annotations

from tests.support.providers.server import FakeServer, Reply, Request, Route


class FakeDashScope(FakeServer):
    name = "dashscope"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/api/v1"

    def routes(self) -> list[Route]:
        return [("POST", r"/api/v1/services/aigc/text2image/image-synthesis", self.image),
                ("POST", r"/api/v1/services/aigc/video-generation/video-synthesis", self.video),
                ("GET", r"/api/v1/tasks/?", self.list),
                ("GET", r"/api/v1/tasks/([\w-]+)", self.get)]

    def _check(self, req: Request, creating: bool) -> Reply | None:
        if not self.bearer_ok(req):
            return Reply(401, {"code": "InvalidApiKey", "message": "Invalid API-key provided.",
                               "request_id": "fake-req"})
        if creating:
            if req.headers.get("x-dashscope-async") != "enable":
                return Reply(403, {"code": "AccessDenied", "message": "current user api does not support synchronous "
                                   "calls", "request_id": "fake-req"})
            if self.take_rate_limit():
                return Reply(429, {"code": "Throttling.RateQuota", "message": "Requests rate limit exceeded, please "
                                   "try again later.", "request_id": "fake-req"},
                             headers={"Retry-After": self.retry_after})
        return None

    def _create(self, req: Request, kind: str) -> Reply:
        if r := self._check(req, True):
            return r
        body = req.json() or {}
        if not body.get("model") or "input" not in body:
            return Reply(400, {"code": "InvalidParameter", "message": "model and input are required",
                               "request_id": "fake-req"})
        t = self.new_task(kind, body, task_id=f"86ecf553-d340-4e21-af6e-{len(self.tasks):012d}")
        return Reply(200, {"output": {"task_status": "PENDING", "task_id": t.id}, "request_id": "fake-req"})

    def image(self, req: Request, _: tuple[str, ...]) -> Reply:
        return self._create(req, "image")

    def video(self, req: Request, _: tuple[str, ...]) -> Reply:
        body = req.json() or {}
        if "img_url" in (body.get("input") or {}) and not str(body["input"]["img_url"]).startswith(("http", "data:")):
            return Reply(400, {"code": "InvalidParameter", "message": "img_url must be a URL or a data URL",
                               "request_id": "fake-req"})
        return self._create(req, "video")

    def list(self, req: Request, _: tuple[str, ...]) -> Reply:
        if r := self._check(req, False):
            return r
        return Reply(200, {"request_id": "fake-req", "data": [], "total": 0, "page_no": 1, "page_size": 1})

    def get(self, req: Request, groups: tuple[str, ...]) -> Reply:
        if r := self._check(req, False):
            return r
        t = self.tasks.get(groups[0])
        if t is None:
            return Reply(200, {"request_id": "fake-req", "output": {"task_id": groups[0], "task_status": "UNKNOWN"}})
        state = self.state(t)
        out: dict = {"task_id": t.id, "submit_time": "2026-12-03 10:00:00.000"}
        usage: dict = {}
        if state in ("pending", "running"):
            out["task_status"] = "PENDING" if state == "pending" else "RUNNING"
        elif state == "failed":
            out.update(task_status="FAILED", code="DataInspectionFailed",
                       message="Output data may contain inappropriate content.")
        elif t.kind == "video":
            out.update(task_status="SUCCEEDED", video_url=self.result_url(t, ".mp4"))
            usage = {"video_duration": 5, "video_ratio": "720*1280", "video_count": 1}
        else:
            out.update(task_status="SUCCEEDED", results=[{"url": self.result_url(t, ".png")}],
                       task_metrics={"TOTAL": 1, "SUCCEEDED": 1, "FAILED": 0})
            usage = {"image_count": 1}
        reply = {"request_id": "fake-req", "output": out}
        if usage:
            reply["usage"] = usage
        return Reply(200, reply)
