"""Fake of Volcengine Ark (images, video tasks), from https://www.volcengine.com/docs/82379/1541523,
/1520757, /1521309 and the error codes at /1299023."""

from __future__ import annotations

from tests.support.providers.server import FakeServer, Reply, Request, Route


class FakeArk(FakeServer):
    name = "ark"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/api/v3"

    def routes(self) -> list[Route]:
        return [("POST", r"/api/v3/images/generations", self.images),
                ("POST", r"/api/v3/contents/generations/tasks", self.create),
                ("GET", r"/api/v3/contents/generations/tasks", self.list),
                ("GET", r"/api/v3/contents/generations/tasks/([\w-]+)", self.get)]

    def _auth(self, req: Request) -> Reply | None:
        if not self.bearer_ok(req):
            return Reply(401, {"error": {"code": "AuthenticationError",
                                         "message": "the API key or AK/SK in the request is missing or invalid",
                                         "type": "Unauthorized"}})
        return None

    def _limited(self) -> Reply | None:
        if self.take_rate_limit():
            return Reply(429, {"error": {"code": "RateLimitExceeded.EndpointRPMExceeded",
                                         "message": "Request rate limit exceeded", "type": "TooManyRequests"}},
                         headers={"Retry-After": self.retry_after})
        return None

    def images(self, req: Request, _: tuple[str, ...]) -> Reply:
        if (r := self._auth(req)) or (r := self._limited()):
            return r
        body = req.json() or {}
        if not body.get("model") or not body.get("prompt"):
            return Reply(400, {"error": {"code": "MissingParameter", "message": "model and prompt are required"}})
        t = self.new_task("image", body)
        if t.fail:
            return Reply(200, {"model": body["model"], "created": 1757321139,
                               "data": [{"error": {"code": "OutputImageSensitiveContentDetected",
                                                   "message": "The generated image may contain sensitive content"}}],
                               "usage": {"generated_images": 0, "output_tokens": 0, "total_tokens": 0}})
        return Reply(200, {"model": body["model"], "created": 1757321139,
                           "data": [{"url": self.result_url(t, ".jpeg"), "size": "1440x2560"}],
                           "usage": {"generated_images": 1, "output_tokens": 14400, "total_tokens": 14400}})

    def create(self, req: Request, _: tuple[str, ...]) -> Reply:
        if (r := self._auth(req)) or (r := self._limited()):
            return r
        body = req.json() or {}
        content = body.get("content") or []
        if not body.get("model") or not any(c.get("type") == "text" for c in content):
            return Reply(400, {"error": {"code": "InvalidParameter", "message": "content must hold a text item"}})
        t = self.new_task("video", body, task_id=f"cgt-20261203-{len(self.tasks):05d}")
        return Reply(200, {"id": t.id})

    def list(self, req: Request, _: tuple[str, ...]) -> Reply:
        if r := self._auth(req):
            return r
        return Reply(200, {"total": len(self.tasks), "items": []})

    def get(self, req: Request, groups: tuple[str, ...]) -> Reply:
        if r := self._auth(req):
            return r
        t = self.tasks.get(groups[0])
        if t is None:
            return Reply(404, {"error": {"code": "ResourceNotFound", "message": "task not found"}})
        state = self.state(t)
        out = {"id": t.id, "model": t.body["model"], "created_at": 1743414619, "updated_at": 1743414673}
        if state in ("pending", "running"):
            out["status"] = "queued" if state == "pending" else "running"
        elif state == "failed":
            out.update(status="failed", error={"code": "OutputVideoSensitiveContentDetected",
                                               "message": "The generated video may contain sensitive content"})
        else:
            out.update(status="succeeded", content={"video_url": self.result_url(t, ".mp4")}, seed=10,
                       resolution="720p", ratio="9:16", duration=5, framespersecond=24,
                       usage={"completion_tokens": 108900, "total_tokens": 108900})
        return Reply(200, out)
