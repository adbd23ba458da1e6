"""The studio's door when it listens beyond loopback: sessions that expire, throttled logins,
and nothing served to a request without a live session.

Gradio does the login itself (``launch(auth=verifier)``, its ``/login`` form, a random token
in an ``access-token-*`` cookie) but keeps tokens forever, counts no failures and serves a few
routes (the page's API description, heartbeats, streams, ``/gradio_api/user`` ...) without a
login. :class:`StudioGate` is an ASGI middleware, handed to Gradio's FastAPI app through
``launch(app_kwargs={"middleware": [...]})``, that sits in front of every route:

- ``POST /login``: the account and the client address are checked against
  :class:`LoginLimiter` before the password is; each attempt counts as a failure until Gradio
  answers 200, so a burst of parallel guesses cannot slip past the limit. A locked attempt gets
  429 with ``Retry-After``. A successful login's token (read from Gradio's ``Set-Cookie``) starts
  a :class:`Session`.
- every other request: its ``access-token-*`` cookies are kept only when they name a live
  session (not older than ``session_hours``, used within ``idle_minutes``, the account still
  there with the same password); others are cut from the request, so Gradio sees no login. A
  request without a live session gets 401, except the login page itself, its static bundles
  and the login/logout routes. The login page is served with Gradio's API description removed.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from typing import Any

from core.accounts import UserStore

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TOKEN_COOKIE = "access-token-"  # Gradio names its cookies access-token-<id> and access-token-unsecure-<id>
MAX_LOGIN_BODY = 16 * 1024
# served without a login: the login page (API description removed), its static bundles, the
# login and logout routes, and Gradio's own start-up call from launch()
_PUBLIC_EXACT = {"/", "/login", "/login/", "/logout", "/favicon.ico", "/theme.css", "/gradio_api/theme.css",
                 "/robots.txt", "/gradio_api/startup-events", "/gradio_api/login_check",
                 "/gradio_api/login_check/"}
_PUBLIC_PREFIXES = ("/assets/", "/static/", "/svelte/")
_API_INFO = re.compile(rb"window\.gradio_api_info\s*=\s*.*?;\s*</script>", re.S)


# --- failed-login throttling ------------------------------------------------------------------
@dataclass(slots=True)
class _Bucket:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class LoginLimiter:
    """Failed logins per account and per client address, in a sliding window; reaching the
    limit locks that account or address for ``lockout_s`` seconds. Bounded memory: the oldest
    unlocked entries are forgotten first."""

    def __init__(self, *, per_user: int, per_address: int, window_s: float, lockout_s: float,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000) -> None:
        self.per_user, self.per_address = per_user, per_address
        self.window_s, self.lockout_s = window_s, lockout_s
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def _bucket(self, kind: str, key: str, now: float) -> _Bucket:
        b = self._buckets.get((kind, key))
        if b is None:
            b = self._buckets[(kind, key)] = _Bucket()
            while len(self._buckets) > self.max_keys:
                old_key = next((k for k, v in self._buckets.items() if v.locked_until <= now), None)
                if old_key is None:
                    break
                del self._buckets[old_key]
        self._buckets.move_to_end((kind, key))
        while b.failures and b.failures[0] <= now - self.window_s:
            b.failures.popleft()
        return b

    def attempt(self, user: str, address: str) -> float:
        """0 when this attempt may go ahead (it is counted as a failure until :meth:`succeeded`),
        else the seconds until the account or address is unlocked."""
        with self._lock:
            now = self.clock()
            pairs = (("user", user, self.per_user), ("address", address, self.per_address))
            buckets = [(self._bucket(kind, key, now), kind, key, limit) for kind, key, limit in pairs]
            wait = max(b.locked_until - now for b, *_ in buckets)
            if wait > 0:
                return wait
            for b, kind, key, limit in buckets:
                b.failures.append(now)
                if len(b.failures) >= limit:
                    b.locked_until = now + self.lockout_s
                    log.warning("login: %s %r locked for %.0f s after %d failed attempts", kind, key,
                                self.lockout_s, len(b.failures))
            return 0.0

    def succeeded(self, user: str, address: str) -> None:
        """The attempt was right: the account's failures are forgotten, and this attempt is
        taken back from the address's count."""
        with self._lock:
            self._buckets.pop(("user", user), None)
            b = self._buckets.get(("address", address))
            if b is not None and b.failures:
                b.failures.pop()
                if len(b.failures) < self.per_address:
                    b.locked_until = 0.0


# --- sessions ---------------------------------------------------------------------------------
@dataclass(slots=True)
class Session:
    user: str
    issued: float
    seen: float
    password_set: str  # the account's changed_at when it logged in: a new password ends the session


class SessionTable:
    """Login tokens Gradio issued, with their age: a session ends ``max_age_s`` after the login
    or ``idle_s`` after its last request, whichever comes first."""

    def __init__(self, *, max_age_s: float, idle_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age_s, self.idle_s, self.clock = max_age_s, idle_s, clock
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def issue(self, token: str, user: str, password_set: str) -> None:
        now = self.clock()
        with self._lock:
            self._sessions[token] = Session(user, now, now, password_set)
            for t, s in list(self._sessions.items()):  # forget the dead while we are here
                if self._expired(s, now):
                    del self._sessions[t]

    def _expired(self, s: Session, now: float) -> bool:
        return now - s.issued > self.max_age_s or now - s.seen > self.idle_s

    def get(self, token: str, *, touch: bool = True) -> Session | None:
        now = self.clock()
        with self._lock:
            s = self._sessions.get(token)
            if s is None:
                return None
            if self._expired(s, now):
                del self._sessions[token]
                log.info("session of %r ended (%s)", s.user,
                         "too old" if now - s.issued > self.max_age_s else "idle too long")
                return None
            if touch:
                s.seen = now
            return s

    def end(self, token: str) -> None:
        with self._lock:
            self._sessions.pop(token, None)

    def __len__(self) -> int:
        return len(self._sessions)


# --- the middleware ---------------------------------------------------------------------------
class StudioGate:
    """ASGI middleware: see the module docstring. Built by Starlette from
    ``Middleware(StudioGate, users=..., limiter=..., sessions=...)``."""

    def __init__(self, app: ASGIApp, *, users: UserStore, limiter: LoginLimiter, sessions: SessionTable) -> None:
        self.app = app
        self.users = users
        self.limiter = limiter
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = _local_path(scope)
        method = scope.get("method", "GET")
        user = self._live_user(scope, touch="/heartbeat/" not in path)  # a heartbeat is not activity
        if scope["type"] == "http" and method == "POST" and path in ("/login", "/login/"):
            await self._login(scope, receive, send)
            return
        if user is not None:
            if path == "/logout":
                for token in _tokens(scope).values():
                    self.sessions.end(token)
                log.info("studio: %r logged out", user)
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        if method in ("GET", "HEAD") and path == "/":
            await self.app(scope, receive, _without_api_info(send))
            return
        if path in _PUBLIC_EXACT or (method in ("GET", "HEAD") and path.startswith(_PUBLIC_PREFIXES)):
            await self.app(scope, receive, send)
            return
        await _json(send, 401, {"detail": "Not authenticated: log in at /login"})

    def _live_user(self, scope: Scope, *, touch: bool) -> str | None:
        """The user of a live session named by the request's cookies; every other
        ``access-token-*`` cookie is cut from the request so Gradio does not see it either."""
        tokens = _tokens(scope)
        if not tokens:
            return None
        live: str | None = None
        dead: set[str] = set()
        for name, token in tokens.items():
            s = self.sessions.get(token, touch=touch)
            if s is not None:
                account = self.users.get(s.user)
                if account is None or account.changed_at != s.password_set:
                    self.sessions.end(token)
                    log.info("session of %r ended (account removed or password changed)", s.user)
                    s = None
            if s is None:
                dead.add(name)
            elif live is None:
                live = s.user
        if dead:
            _drop_cookies(scope, dead)
        return live

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_LOGIN_BODY:
                await _json(send, 413, {"detail": "login request too large"})
                return
        username = await _form_username(scope, body)
        address = (scope.get("client") or ("unknown", 0))[0]
        wait = self.limiter.attempt(username, address)
        if wait > 0:
            log.warning("login: refused %r from %s: locked for another %.0f s", username, address, wait)
            await _json(send, 429, {"detail": f"too many failed logins; try again in {int(wait // 60) + 1} "
                                              f"minute(s)"}, headers=[(b"retry-after", str(int(wait) + 1).encode())])
            return
        state = {"sent": False, "replaced": False}

        async def replay() -> Message:
            if not state["sent"]:
                state["sent"] = True
                return {"type": "http.request", "body": body, "more_body": False}
            return {"type": "http.disconnect"}

        async def watch(message: Message) -> None:
            if state["replaced"]:
                return  # Gradio's own answer was withheld
            if message["type"] == "http.response.start":
                if message["status"] != 200:
                    log.warning("login: failed for %r from %s (HTTP %s)", username, address, message["status"])
                else:
                    token = _issued_token(message.get("headers", []))
                    account = self.users.get(username)
                    if not token or account is None:  # fail closed: a login we cannot track is no login
                        log.error("login: Gradio accepted %r but set no token the gate can track", username)
                        state["replaced"] = True
                        await _json(send, 500, {"detail": "login failed; see the server log"})
                        return
                    self.sessions.issue(token, username, account.changed_at)
                    self.limiter.succeeded(username, address)
                    log.info("studio: %r logged in from %s", username, address)
            await send(message)

        await self.app(scope, replay, watch)


def _local_path(scope: Scope) -> str:
    path = str(scope.get("path", "/"))
    root = str(scope.get("root_path", "") or "")
    if root and path.startswith(root):
        path = path[len(root):] or "/"
    return path


def _cookie_header(scope: Scope) -> str:
    return "; ".join(v.decode("latin-1") for k, v in scope.get("headers", []) if k.lower() == b"cookie")


def _tokens(scope: Scope) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(_cookie_header(scope))
    except CookieError:
        return {}
    return {name: m.value for name, m in jar.items() if name.startswith(TOKEN_COOKIE)}


def _drop_cookies(scope: Scope, names: set[str]) -> None:
    kept = [part for part in (p.strip() for p in _cookie_header(scope).split(";"))
            if part and part.split("=", 1)[0].strip() not in names]
    headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"cookie"]
    if kept:
        headers.append((b"cookie", "; ".join(kept).encode("latin-1")))
    scope["headers"] = headers


def _issued_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    for k, v in headers:
        if k.lower() != b"set-cookie":
            continue
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(v.decode("latin-1"))
        except CookieError:
            continue
        for name, m in jar.items():
            if name.startswith(TOKEN_COOKIE) and m.value:
                return str(m.value)
    return None


async def _form_username(scope: Scope, body: bytes) -> str:
    """The ``username`` field of a login form (urlencoded or multipart), stripped as Gradio does."""
    from starlette.requests import Request

    sent = False

    async def once() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(scope, once).form()
        return str(form.get("username") or "").strip()[:256]
    except Exception:  # noqa: BLE001 - a malformed form: Gradio will refuse it; count it under ""
        return ""


def _without_api_info(send: Send) -> Send:
    """Wrap ``send`` so the login page goes out without Gradio's description of the API."""
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        if message["type"] != "http.response.body":
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        body = b"".join(chunks)
        if b"gradio_api_info" in body:
            body, n = _API_INFO.subn(b"window.gradio_api_info = null;</script>", body)
            if n != 1:  # fail closed: never send a page whose API description we could not remove
                log.error("login page: Gradio's API description was not found where expected; page withheld")
                body = b"ReelForge: log in at /login"
                start["status"] = 500
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return wrapped


async def _json(send: Send, status: int, data: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(data).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body, "more_body": False})
