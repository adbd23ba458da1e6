"""A loopback OpenAI-compatible server with scripted replies, for tests and benchmarks.

Real HTTP on 127.0.0.1 (the client under test cannot tell it from vLLM or llama-server):
streaming and non-streaming chat completions, usage counts, and scripted trouble — status codes
(429 with ``Retry-After``, 5xx), malformed JSON, replies that arrive late, streams that stall
half-way, and servers that refuse ``response_format``. The default responder plays a tiny
screenwriter that answers every level of :mod:`agents.script.llm.engine` with valid JSON whose
lines are copied from the source text in the prompt (so they trace back to the novel).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_TASK = re.compile(r"\[task:(\w+)\]")
_SOURCE = re.compile(r"<<<\n(.*?)\n>>>", re.S)
_NUMBER = re.compile(r"第\s*(\d+)\s*集|[Ee]pisode\s+(\d+)")


@dataclass(slots=True)
class Reply:
    """What the server does with one request."""

    content: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None  # raw body for errors
    delay_s: float = 0.0  # before the status line
    chunk_delay_s: float = 0.0  # between stream events
    stall_after: int | None = None  # stream events sent before going silent
    stall_s: float = 0.0
    usage: bool = True  # include token usage
    stream: bool | None = None  # None: as the client asked


Responder = Callable[[dict[str, Any], int], Reply]


def task_of(request: dict[str, Any]) -> str:
    for msg in reversed(request.get("messages", [])):
        if msg.get("role") == "user":
            m = _TASK.search(msg.get("content", ""))
            if m:
                return m.group(1)
    return ""


def last_user(request: dict[str, Any]) -> str:
    for msg in reversed(request.get("messages", [])):
        if msg.get("role") == "user":
            return str(msg.get("content", ""))
    return ""


def first_user(request: dict[str, Any]) -> str:
    for msg in request.get("messages", []):
        if msg.get("role") == "user":
            return str(msg.get("content", ""))
    return ""


def _sentences(text: str, limit: int) -> list[str]:
    out = []
    for raw in re.split(r"(?<=[。！？])", text):
        s = raw.strip()
        if 4 <= len(s) <= 30 and not re.search(r"[“”‘’「」《》（）()\[\]]", s):
            out.append(s)
        if len(out) >= limit:
            break
    return out


def screenwriter(request: dict[str, Any], n: int) -> Reply:
    """Valid answers for every level; dialogue and narration copied from the prompt's source."""
    prompt = first_user(request)
    task = _TASK.search(prompt)
    kind = task.group(1) if task else ""
    src = _SOURCE.search(prompt)
    source = src.group(1) if src else ""
    if kind == "summary":
        sents = _sentences(source, 3)
        data: dict[str, Any] = {"summary": "".join(sents)[:200] or "故事继续。", "characters": [], "events": sents[:2]}
    elif kind == "logline":
        data = {"title": "测试剧", "logline": "一个人的故事。", "genre": "剧情"}
    elif kind == "characters":
        names = re.findall(r"^([^：\n]{1,8})：\d+", prompt, re.M)[:5] or ["主角"]
        data = {"characters": [{"name": nm, "aliases": [], "description": "", "appearance": "", "voice": "",
                                "role": "lead" if i == 0 else "supporting"} for i, nm in enumerate(names)]}
    elif kind == "outline":
        nums = sorted({int(a) for a, _b in re.findall(r"^第(\d+)集：()", prompt, re.M)})
        data = {"episodes": [{"number": k, "title": f"第{k}集", "synopsis": "剧情推进。", "hook": "开场", "cliffhanger": "悬念",
                              "paywall": False} for k in nums]}
    elif kind == "scenes":
        first = (_sentences(source, 1) or [""])[0]
        data = {"scenes": [{"int_ext": "EXT", "place": "某地", "time_of_day": "day", "characters": [],
                            "summary": "本场", "source_quote": first[:12]}]}
    elif kind == "shots":
        sents = _sentences(source, 12) or ["故事继续。"]
        shots = [{"size": "LS", "camera": "static", "visual_prompt": "全景", "characters": [], "sfx": [],
                  "lines": [{"speaker": "旁白", "text": sents[0], "kind": "narration"}]}]
        for i in range(1, len(sents), 2):
            shots.append({"size": "MS", "camera": "static", "visual_prompt": "中景", "characters": [], "sfx": [],
                          "lines": [{"speaker": "旁白", "text": s, "kind": "narration"} for s in sents[i:i + 2]]})
        data = {"shots": shots}
    elif kind == "repair":
        return screenwriter({"messages": [{"role": "user", "content": prompt}]}, n)
    else:
        data = {"echo": last_user(request)[:50]}
    return Reply(content=json.dumps(data, ensure_ascii=False))


class FakeOpenAIServer:
    """``with FakeOpenAIServer(responder) as srv: client = OpenAICompatClient(srv.url, "fake")``."""

    def __init__(self, responder: Responder | None = None, *, model: str = "fake-model") -> None:
        self.responder: Responder = responder or screenwriter
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.count = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1" if isinstance(host, str) else f"http://127.0.0.1:{port}/v1"

    def __enter__(self) -> FakeOpenAIServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = json.loads(self.rfile.read(length).decode("utf-8"))
                with outer.lock:
                    outer.count += 1
                    n = outer.count
                    outer.requests.append(request)
                    outer.active += 1
                    outer.max_active = max(outer.max_active, outer.active)
                try:
                    outer._serve(self, request, n)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with outer.lock:
                        outer.active -= 1

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _serve(self, h: BaseHTTPRequestHandler, request: dict[str, Any], n: int) -> None:
        reply = self.responder(request, n)
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.status != 200:
            body = (reply.body if reply.body is not None else json.dumps({"error": {"message": "scripted"}})).encode()
            h.send_response(reply.status)
            for k, v in reply.headers.items():
                h.send_header(k, v)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return
        prompt_chars = sum(len(m.get("content", "")) for m in request.get("messages", []))
        usage = {"prompt_tokens": prompt_chars, "completion_tokens": len(reply.content),
                 "total_tokens": prompt_chars + len(reply.content)}
        stream = request.get("stream", False) if reply.stream is None else reply.stream
        if not stream:
            body_obj: dict[str, Any] = {
                "id": f"cmpl-{n}", "object": "chat.completion", "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.content},
                             "finish_reason": "stop"}],
            }
            if reply.usage:
                body_obj["usage"] = usage
            body = json.dumps(body_obj, ensure_ascii=False).encode("utf-8")
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Connection", "close")
        h.end_headers()
        pieces = [reply.content[i:i + 16] for i in range(0, len(reply.content), 16)] or [""]
        for i, piece in enumerate(pieces):
            if reply.stall_after is not None and i >= reply.stall_after:
                h.wfile.flush()
                time.sleep(reply.stall_s)
                return
            event = {"id": f"cmpl-{n}", "object": "chat.completion.chunk", "model": self.model,
                     "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            h.wfile.write(f"data: {json.dumps(event, ensure_ascii=False)}\n\n".encode())
            h.wfile.flush()
            if reply.chunk_delay_s:
                time.sleep(reply.chunk_delay_s)
        final = {"id": f"cmpl-{n}", "object": "chat.completion.chunk", "model": self.model,
                 "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        h.wfile.write(f"data: {json.dumps(final)}\n\n".encode())
        if reply.usage:
            h.wfile.write(f"data: {json.dumps({'choices': [], 'usage': usage, 'model': self.model})}\n\n".encode())
        h.wfile.write(b"data: [DONE]\n\n")
        h.wfile.flush()
