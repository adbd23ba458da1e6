"""Fake of MiniMax (video generation, file retrieve, t2a_v2, get_voice), from
https://platform.minimaxi.com/docs/api-reference and MiniMax's own client (MiniMax-MCP). Errors come
in HTTP 200 bodies as ``base_resp``."""

from __future__ import annotations

from tests.support.providers.server import FakeServer, Reply, Request, Route, content_for


def ok(**data: object) -> dict:
    return {**data, "base_resp": {"status_code": 0, "status_msg": "success"}}


def err(code: int, msg: str) -> dict:
    return {"base_resp": {"status_code": code, "status_msg": msg}}


class FakeMiniMax(FakeServer):
    name = "minimax"

    def routes(self) -> list[Route]:
        return [("POST", r"/v1/video_generation", self.create),
                ("GET", r"/v1/query/video_generation", self.query),
                ("GET", r"/v1/files/retrieve", self.retrieve),
                ("POST", r"/v1/t2a_v2", self.speech),
                ("POST", r"/v1/get_voice", self.voices)]

    def _auth(self, req: Request) -> Reply | None:
        if not self.bearer_ok(req):
            return Reply(200, err(1004, "login fail: Please carry the API secret key in the 'Authorization' field"))
        return None

    def _limited(self) -> Reply | None:
        if self.take_rate_limit():
            return Reply(200, err(1002, "rate limit exceeded(RPM)"))
        return None

    def create(self, req: Request, _: tuple[str, ...]) -> Reply:
        if (r := self._auth(req)) or (r := self._limited()):
            return r
        body = req.json() or {}
        if not body.get("model") or not body.get("prompt"):
            return Reply(200, err(2013, "invalid params, model and prompt are required"))
        t = self.new_task("video", body, task_id=f"{106916112212032 + len(self.tasks)}")
        return Reply(200, ok(task_id=t.id))

    def query(self, req: Request, _: tuple[str, ...]) -> Reply:
        if r := self._auth(req):
            return r
        t = self.tasks.get(req.query.get("task_id", ""))
        if t is None:
            return Reply(200, err(2013, "invalid params, task not found"))
        state = self.state(t)
        if state in ("pending", "running"):
            return Reply(200, ok(task_id=t.id, status="Queueing" if state == "pending" else "Processing", file_id=""))
        if state == "failed":
            return Reply(200, ok(task_id=t.id, status="Fail", file_id=""))
        t.extra["file_id"] = f"{205258526306433 + len(self.tasks)}"
        return Reply(200, ok(task_id=t.id, status="Success", file_id=t.extra["file_id"], video_width=1080,
                             video_height=1920))

    def retrieve(self, req: Request, _: tuple[str, ...]) -> Reply:
        if r := self._auth(req):
            return r
        fid = req.query.get("file_id", "")
        t = next((x for x in self.tasks.values() if x.extra.get("file_id") == fid), None)
        if t is None:
            return Reply(200, err(1026 if not fid else 2013, "file not found"))
        return Reply(200, ok(file={"file_id": fid, "bytes": 1024, "created_at": 1700469398, "filename": "output.mp4",
                                   "purpose": "video_generation", "download_url": self.result_url(t, ".mp4")}))

    def speech(self, req: Request, _: tuple[str, ...]) -> Reply:
        if (r := self._auth(req)) or (r := self._limited()):
            return r
        body = req.json() or {}
        text = str(body.get("text") or "")
        voice = (body.get("voice_setting") or {}).get("voice_id")
        if not text or not voice:
            return Reply(200, err(2013, "invalid params, text and voice_setting.voice_id are required"))
        t = self.new_task("voice", body)
        if t.fail:
            return Reply(200, err(1026, "input new_sensitive"))
        audio = content_for("voice", t.id)
        return Reply(200, ok(data={"audio": audio.hex(), "status": 2},
                             extra_info={"audio_length": 1000 * len(text) // 4, "audio_sample_rate": 32000,
                                         "audio_size": len(audio), "bitrate": 128000, "word_count": len(text),
                                         "usage_characters": len(text), "audio_format": "mp3", "audio_channel": 1},
                             trace_id=f"trace-{t.id}"))

    def voices(self, req: Request, _: tuple[str, ...]) -> Reply:
        if r := self._auth(req):
            return r
        return Reply(200, ok(system_voice=[{"voice_id": "male-qn-qingse", "voice_name": "青涩青年音色"}]))
