"""Fake of Volcengine speech synthesis over HTTP (``/api/v1/tts``), from
https://www.volcengine.com/docs/6561/1257584: ``Authorization: Bearer;{token}``, codes 3000/3001/3003..."""

from __future__ import annotations

import base64

from tests.support.providers.server import FakeServer, Reply, Request, Route, content_for


class FakeVolcengine(FakeServer):
    name = "volcengine"

    def __init__(self, *, appid: str = "1234567890", **kwargs: object) -> None:
        self.appid = appid
        super().__init__(**kwargs)  # type: ignore[arg-type]

    def routes(self) -> list[Route]:
        return [("POST", r"/api/v1/tts", self.tts)]

    def tts(self, req: Request, _: tuple[str, ...]) -> Reply:
        body = req.json() or {}
        reqid = str((body.get("request") or {}).get("reqid") or "")
        if req.headers.get("authorization") != f"Bearer;{self.key}" or (body.get("app") or {}).get("appid") != self.appid:
            self.counts["auth_failed"] += 1
            return Reply(401, {"reqid": reqid, "code": 3001,
                               "message": "authenticate request: load grant: requested grant not found"})
        if self.take_rate_limit():
            return Reply(200, {"reqid": reqid, "code": 3003, "message": "quota exceeded for types: concurrency"})
        request = body.get("request") or {}
        if request.get("operation") != "query" or not reqid:
            return Reply(200, {"reqid": reqid, "code": 3001, "message": "invalid request: operation"})
        if any(t.body.get("request", {}).get("reqid") == reqid for t in self.tasks.values()):
            return Reply(200, {"reqid": reqid, "code": 3006, "message": "reqid already used"})
        text = str(request.get("text") or "")
        if not text.strip():
            return Reply(200, {"reqid": reqid, "code": 3011, "message": "illegal input text!"})
        t = self.new_task("voice", body)
        if t.fail:
            return Reply(200, {"reqid": reqid, "code": 3031, "message": "processing error"})
        audio = content_for("voice", t.id)
        return Reply(200, {"reqid": reqid, "code": 3000, "operation": "query", "message": "Success", "sequence": -1,
                           "data": base64.b64encode(audio).decode(), "addition": {"duration": str(250 * len(text))}})
