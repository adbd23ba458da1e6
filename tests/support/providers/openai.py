"""Fake of the OpenAI API (images, speech, models), from https://platform.openai.com/docs/api-reference
and the error-code guide (401, 429 with Retry-After, 500)."""

from __future__ import annotations

import base64

from tests.support.providers.server import FakeServer, Reply, Request, Route, content_for


def error(message: str, kind: str, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class FakeOpenAI(FakeServer):
    name = "openai"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def routes(self) -> list[Route]:
        return [("GET", r"/v1/models", self.models), ("POST", r"/v1/images/generations", self.images),
                ("POST", r"/v1/audio/speech", self.speech)]

    def _auth(self, req: Request) -> Reply | None:
        if not self.bearer_ok(req):
            return Reply(401, error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))
        return None

    def _limited(self) -> Reply | None:
        if self.take_rate_limit():
            return Reply(429, error("Rate limit reached for requests", "requests", "rate_limit_exceeded"),
                         headers={"retry-after": self.retry_after})
        return None

    def models(self, req: Request, _: tuple[str, ...]) -> Reply:
        if r := self._auth(req):
            return r
        return Reply(200, {"object": "list", "data": [{"id": "gpt-image-1", "object": "model", "owned_by": "system"}]})

    def images(self, req: Request, _: tuple[str, ...]) -> Reply:
        if (r := self._auth(req)) or (r := self._limited()):
            return r
        body = req.json() or {}
        if not body.get("prompt"):
            return Reply(400, error("prompt is required", "invalid_request_error"))
        t = self.new_task("image", body)
        if t.fail:
            return Reply(400, error("Your request was rejected by the safety system.", "invalid_request_error",
                                    "moderation_blocked"))
        data = base64.b64encode(content_for("image", t.id)).decode()
        return Reply(200, {"created": 1713833628, "data": [{"b64_json": data}],
                           "usage": {"total_tokens": 1640, "input_tokens": 56, "output_tokens": 1584,
                                     "input_tokens_details": {"text_tokens": 56, "image_tokens": 0}}})

    def speech(self, req: Request, _: tuple[str, ...]) -> Reply:
        if (r := self._auth(req)) or (r := self._limited()):
            return r
        body = req.json() or {}
        if not body.get("input") or not body.get("voice") or not body.get("model"):
            return Reply(400, error("model, input and voice are required", "invalid_request_error"))
        t = self.new_task("voice", body)
        return Reply(200, content_for("voice", t.id), content_type="audio/mpeg")
