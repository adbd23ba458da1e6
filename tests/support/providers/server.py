"""The shared machinery of the provider fakes: a threaded loopback HTTP server with switches.

Switches (constructor arguments, also settable later):

* ``key`` - the credential the fake accepts (each fake checks it the way its provider does);
* ``rate_limit`` - answer this many create calls with the provider's rate-limit answer first
  (``retry_after`` is sent as the ``Retry-After`` header where the provider sends one);
* ``fail_tasks`` - this many tasks end in the provider's failed state;
* ``polls_before_done`` - a task reports queued/running for this many status queries;
* ``latency_s`` - a task is not done before this many seconds after its creation;
* ``expire_downloads`` - this many result URLs answer 403 (expired) when fetched; a new status
  query hands out a fresh URL, as the providers' presigned URLs work.

Counters: ``counts["submit"]`` (create calls that made a task), ``counts["status"]``,
``counts["download"]``, ``counts["rate_limited"]``, ``counts["auth_failed"]``; ``requests``
keeps (method, path, headers, body) of every request for assertions.
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlparse


@dataclass(slots=True)
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON, bytes -> raw
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    raw: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.raw or b"null")
        except ValueError:
            return None


@dataclass(slots=True)
class FakeTask:
    id: str
    kind: str
    body: Any
    created: float
    fail: bool
    polls: int = 0
    external_id: str = ""
    tokens: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


Route = tuple[str, str, Callable[[Request, tuple[str, ...]], Reply]]


def tiny_png(seed: str) -> bytes:
    from PIL import Image

    h = abs(hash(seed))
    img = Image.new("RGB", (64, 96), ((h >> 16) & 255, (h >> 8) & 255, h & 255))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


_VIDEO: bytes | None = None
_VIDEO_LOCK = threading.Lock()


def tiny_mp4() -> bytes:
    """A real 1 s H.264 clip (72x128, 24 fps), made once per process."""
    global _VIDEO
    with _VIDEO_LOCK:
        if _VIDEO is None:
            import tempfile
            from fractions import Fraction
            from pathlib import Path

            import numpy as np

            from core.media import VideoWriter

            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "clip.mp4"
                with VideoWriter(path, 72, 128, Fraction(24), crf=30, preset="ultrafast") as w:
                    for i in range(24):
                        frame = np.zeros((128, 72, 3), np.uint8)
                        frame[:, :, 0] = 40 + 8 * i
                        frame[i * 4:i * 4 + 16, :, 1] = 220
                        w.write(frame)
                _VIDEO = path.read_bytes()
        return _VIDEO


def tiny_wav(seed: str, seconds: float = 0.6) -> bytes:
    """A real WAV: a soft tone whose pitch comes from ``seed`` (24 kHz mono, 16-bit)."""
    import math
    import wave

    rate = 24000
    freq = 180 + abs(hash(seed)) % 200
    n = int(rate * seconds)
    pcm = b"".join(int(6000 * math.sin(2 * math.pi * freq * i / rate)).to_bytes(2, "little", signed=True)
                   for i in range(n))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    return buf.getvalue()


def content_for(kind: str, seed: str) -> bytes:
    """Real media for a result: a PNG, an H.264 MP4 or a WAV (decoders sniff the content)."""
    if kind == "image":
        return tiny_png(seed)
    if kind == "video":
        return tiny_mp4()
    return tiny_wav(seed)


class FakeServer:
    """Base of the fakes; subclasses set ``name`` and return their routes from :meth:`routes`."""

    name = "fake"

    def __init__(self, *, key: str = "test-key-0123456789", rate_limit: int = 0, retry_after: str = "3",
                 fail_tasks: int = 0, polls_before_done: int = 0, latency_s: float = 0.0,
                 expire_downloads: int = 0) -> None:
        self.key = key
        self.rate_limit = rate_limit
        self.retry_after = retry_after
        self.fail_tasks = fail_tasks
        self.polls_before_done = polls_before_done
        self.latency_s = latency_s
        self.expire_downloads = expire_downloads
        self.lock = threading.RLock()
        self.tasks: dict[str, FakeTask] = {}
        self.files: dict[str, tuple[bytes, str]] = {}
        self.expired: set[str] = set()
        self.counts: Counter[str] = Counter()
        self.requests: list[Request] = []
        self.latency_for: Callable[[FakeTask], float] | None = None  # per-task latency (benchmarks)
        self.in_flight: set[str] = set()
        self.max_in_flight = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes = [(m, __import__("re").compile(p), fn) for m, p, fn in self.routes()]

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Self:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                url = urlparse(self.path)
                query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
                req = Request(self.command, url.path, query, {k.lower(): v for k, v in self.headers.items()}, raw)
                reply = fake.dispatch(req)
                if isinstance(reply.body, bytes):
                    data = reply.body
                else:
                    data = json.dumps(reply.body, ensure_ascii=False).encode("utf-8")
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(data)))
                for k, v in reply.headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _handle  # noqa: N815

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        assert self._server is not None, "start the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        """What the adapter's ``base_url`` is set to (the provider's documented base)."""
        return self.origin

    # -- dispatch ------------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        return []

    def dispatch(self, req: Request) -> Reply:
        with self.lock:
            self.requests.append(req)
        if req.method == "GET" and req.path.startswith("/files/"):
            return self._file(req.path[len("/files/"):])
        for method, pattern, fn in self._routes:
            if method == req.method:
                m = pattern.fullmatch(req.path)
                if m:
                    return fn(req, m.groups())
        return Reply(404, {"error": {"code": "NotFound", "message": f"no route {req.method} {req.path}"}})

    # -- helpers for subclasses ----------------------------------------------------------------
    def take_rate_limit(self) -> bool:
        with self.lock:
            if self.rate_limit > 0:
                self.rate_limit -= 1
                self.counts["rate_limited"] += 1
                return True
        return False

    def new_task(self, kind: str, body: Any, task_id: str | None = None, external_id: str = "") -> FakeTask:
        with self.lock:
            fail = self.fail_tasks > 0
            if fail:
                self.fail_tasks -= 1
            t = FakeTask(task_id or uuid.uuid4().hex[:20], kind, body, time.monotonic(), fail, external_id=external_id)
            self.tasks[t.id] = t
            self.counts["submit"] += 1
            self.in_flight.add(t.id)
            self.max_in_flight = max(self.max_in_flight, len(self.in_flight))
            return t

    def state(self, t: FakeTask) -> str:
        """pending | running | done | failed, advancing the task's poll count."""
        with self.lock:
            t.polls += 1
            self.counts["status"] += 1
            latency = self.latency_for(t) if self.latency_for is not None else self.latency_s
            if t.polls <= self.polls_before_done or time.monotonic() - t.created < latency:
                return "pending" if t.polls <= 1 else "running"
            self.in_flight.discard(t.id)
            return "failed" if t.fail else "done"

    def result_url(self, t: FakeTask, suffix: str) -> str:
        """A fresh URL for the task's result (expired ones answer 403)."""
        with self.lock:
            token = uuid.uuid4().hex
            t.tokens.append(token)
            self.files[token] = (content_for(t.kind, t.id), suffix)
            if self.expire_downloads > 0:
                self.expire_downloads -= 1
                self.expired.add(token)
        return f"{self.origin}/files/{token}{suffix}"

    def _file(self, name: str) -> Reply:
        token = name.split(".", 1)[0]
        with self.lock:
            self.counts["download"] += 1
            if token in self.expired:
                self.counts["expired"] += 1
                return Reply(403, b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>",
                             content_type="application/xml")
            item = self.files.get(token)
        if item is None:
            return Reply(404, b"not found", content_type="text/plain")
        data, suffix = item
        ctype = {".png": "image/png", ".jpeg": "image/jpeg", ".mp4": "video/mp4", ".mp3": "audio/mpeg"}.get(
            suffix, "application/octet-stream")
        return Reply(200, data, content_type=ctype)

    def bearer_ok(self, req: Request) -> bool:
        ok = req.headers.get("authorization", "") == f"Bearer {self.key}"
        if not ok:
            with self.lock:
                self.counts["auth_failed"] += 1
        return ok
