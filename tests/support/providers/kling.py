"""Fake of the Kling API, from https://app.klingai.com/cn/dev/document-api (common info: JWT auth
and the business codes; image generation; image-to-video; text-to-video). The JWT is checked with
PyJWT, an implementation independent of the adapter's."""

from __future__ import annotations

import time

from tests.support.providers.server import FakeServer, Reply, Request, Route


class FakeKling(FakeServer):
    name = "kling"

    def __init__(self, *, secret: str = "kling-secret-key-abcdef-0123456789ab", **kwargs: object) -> None:
        self.secret = secret
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def routes(self) -> list[Route]:
        return [("GET", r"/account/costs", self.costs),
                ("POST", r"/v1/(images/generations|videos/image2video|videos/text2video)", self.create),
                ("GET", r"/v1/(images/generations|videos/image2video|videos/text2video)/([\w-]+)", self.get)]

    def _wrap(self, data: object, code: int = 0, message: str = "SUCCEED", status: int = 200) -> Reply:
        return Reply(status, {"code": code, "message": message, "request_id": "fake-req", "data": data})

    def _auth(self, req: Request) -> Reply | None:
        import jwt

        header = req.headers.get("authorization", "")
        if not header:
            self.counts["auth_failed"] += 1
            return self._wrap(None, 1001, "Authorization is empty", 401)
        if not header.startswith("Bearer "):
            self.counts["auth_failed"] += 1
            return self._wrap(None, 1002, "Authorization is invalid", 401)
        try:
            claims = jwt.decode(header[7:], self.secret, algorithms=["HS256"], options={"require": ["exp", "nbf"]})
        except jwt.ExpiredSignatureError:
            self.counts["auth_failed"] += 1
            return self._wrap(None, 1004, "Authorization is expired", 401)
        except jwt.ImmatureSignatureError:
            self.counts["auth_failed"] += 1
            return self._wrap(None, 1003, "Authorization is not yet valid", 401)
        except jwt.InvalidTokenError:
            self.counts["auth_failed"] += 1
            return self._wrap(None, 1000, "Authentication failed", 401)
        if claims.get("iss") != self.key:
            self.counts["auth_failed"] += 1
            return self._wrap(None, 1000, "Authentication failed", 401)
        return None

    def costs(self, req: Request, _: tuple[str, ...]) -> Reply:
        if r := self._auth(req):
            return r
        if "start_time" not in req.query or "end_time" not in req.query:
            return self._wrap(None, 1200, "start_time and end_time are required", 400)
        return self._wrap({"code": 0, "msg": "", "resource_pack_subscribe_infos": []})

    def create(self, req: Request, groups: tuple[str, ...]) -> Reply:
        if r := self._auth(req):
            return r
        if self.take_rate_limit():
            return self._wrap(None, 1302, "The API request is too fast, please slow down", 429)
        body = req.json() or {}
        endpoint = groups[0]
        if endpoint != "videos/image2video" and not body.get("prompt"):
            return self._wrap(None, 1201, "prompt is required", 400)
        if endpoint == "videos/image2video" and (not body.get("image") or str(body["image"]).startswith("data:")):
            return self._wrap(None, 1201, "image must be a URL or base64 without a data: prefix", 400)
        ext = str(body.get("external_task_id") or "")
        if ext and any(t.external_id == ext for t in self.tasks.values()):
            return self._wrap(None, 1201, "external_task_id already exists", 400)
        kind = "image" if endpoint.startswith("images") else "video"
        t = self.new_task(kind, body, task_id=f"CjMkM2Fk{len(self.tasks):06d}", external_id=ext)
        t.extra["endpoint"] = endpoint
        now = int(time.time() * 1000)
        return self._wrap({"task_id": t.id, "task_status": "submitted", "task_info": {"external_task_id": ext},
                           "created_at": now, "updated_at": now})

    def get(self, req: Request, groups: tuple[str, ...]) -> Reply:
        if r := self._auth(req):
            return r
        endpoint, ident = groups
        t = self.tasks.get(ident) or next((x for x in self.tasks.values() if x.external_id == ident), None)
        if t is None or t.extra.get("endpoint") != endpoint:
            return self._wrap(None, 1203, "task not found", 404)
        state = self.state(t)
        now = int(time.time() * 1000)
        data: dict = {"task_id": t.id, "task_info": {"external_task_id": t.external_id}, "created_at": now,
                      "updated_at": now}
        if state in ("pending", "running"):
            data["task_status"] = "submitted" if state == "pending" else "processing"
        elif state == "failed":
            data.update(task_status="failed", task_status_msg="Failure to pass the risk control system")
        elif t.kind == "video":
            data.update(task_status="succeed", final_unit_deduction="2",
                        task_result={"videos": [{"id": "v1", "url": self.result_url(t, ".mp4"), "duration": "5.1"}]})
        else:
            data.update(task_status="succeed", final_unit_deduction="8",
                        task_result={"images": [{"index": 0, "url": self.result_url(t, ".png")}]})
        return self._wrap(data)
