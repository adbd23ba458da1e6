"""Who may use the studio, and how each action behind the page checks it.

Three ways the studio can start (:func:`plan_access`):

- bound to loopback with no accounts: single-user mode, as before; its one user acts as an
  admin named after the login user of the machine;
- accounts configured (``reelforge users add``): a login is required on every address, through
  Gradio's own ``launch(auth=...)`` with :meth:`StudioAccess.verify` and its ``/login`` form,
  behind :class:`ui.gate.StudioGate` (sessions that expire, throttled logins, nothing served
  without a session);
- bound to any other address with no accounts: refused, with the command that adds one.

Every studio action checks the person server-side, since Gradio endpoints can be called
without the page::

    access = plan_access(host, config, workspace)

    @access.action("shot.approve")
    def approve(project: str, episode: float, shot: str, request: gr.Request) -> str:
        who = access.who(request)          # the Principal, for the trail
        ...

:meth:`StudioAccess.action` refuses a person whose role does not allow the action and turns
errors into what the browser may see: our own errors' message and hint; anything else a
generic message with a reference that matches the full traceback in the server log.
"""

from __future__ import annotations

import asyncio
import getpass
import html
import inspect
import ipaddress
import logging
import os
import secrets
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from core.accounts import AccountError, UserStore
from core.config import Config
from core.errors import ReelForgeError, StorageError
from core.permissions import ACTIONS, AccessDenied, Principal, require
from ui.gate import LoginLimiter, SessionTable, StudioGate

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
Mode = Literal["single-user", "accounts"]
ACTION_ATTR = "__reelforge_action__"  # set on every guarded handler; tests check every endpoint has it
# the person a guarded handler is running for (the ledger names them in its audit log)
acting: ContextVar[Principal | None] = ContextVar("reelforge_acting", default=None)


def is_loopback(host: str) -> bool:
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def _local_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "local"


@dataclass(slots=True)
class StudioAccess:
    """The access policy of one running studio."""

    mode: Mode
    users: UserStore
    config: Config
    limiter: LoginLimiter | None = None
    sessions: SessionTable | None = None
    _verifying: asyncio.Semaphore | None = field(default=None, repr=False)

    # --- login ---------------------------------------------------------------------------------
    async def verify(self, username: str, password: str) -> bool:
        """Gradio's ``auth`` callable. A coroutine function on purpose: Gradio awaits it only
        when ``inspect.iscoroutinefunction`` says so, and argon2 (tens of MB, ~0.1-1 s) runs in
        a worker thread, at most two at a time, so logins never stall the server."""
        if self._verifying is None:
            self._verifying = asyncio.Semaphore(2)
        async with self._verifying:
            try:
                account = await asyncio.to_thread(self.users.verify, username, password)
            except ReelForgeError as e:
                log.error("login: the accounts file cannot be used: %s", e)
                return False
        return account is not None

    def launch_kwargs(self) -> dict[str, Any]:
        """What ``Blocks.launch`` needs for this policy (besides host, port and paths)."""
        out: dict[str, Any] = {"show_error": False, "max_file_size": self.config.server.max_upload_mb * 1024 * 1024}
        if self.mode == "accounts":
            from starlette.middleware import Middleware

            if self.limiter is None or self.sessions is None:
                raise ValueError("an accounts studio needs its login limiter and session table")
            s = self.config.server
            out["auth"] = self.verify
            out["auth_message"] = (
                f"ReelForge 影锻 · 请登录 Please log in. 登录 {s.session_hours:g} 小时后或闲置 {s.idle_minutes:g} "
                f"分钟后失效；连续 {s.login_attempts} 次失败将锁定 {s.lockout_minutes:g} 分钟。"
                f" A session ends after {s.session_hours:g} h or {s.idle_minutes:g} min idle; "
                f"{s.login_attempts} failed logins lock the account for {s.lockout_minutes:g} min.")
            out["app_kwargs"] = {"middleware": [Middleware(StudioGate, users=self.users, limiter=self.limiter,
                                                           sessions=self.sessions)]}
        return out

    # --- who is acting -----------------------------------------------------------------------------
    def who(self, request: Any) -> Principal:
        """The person behind a Gradio request (``gr.Request``)."""
        if self.mode == "single-user":
            return Principal(_local_user(), "admin", local=True)
        name = getattr(request, "username", None)
        if not name:
            raise AccessDenied("not logged in", hint="log in again (sessions expire)")
        account = self.users.get(str(name))
        if account is None:
            raise AccessDenied(f"account {name!r} no longer exists", hint="ask an admin")
        return account.principal()

    @staticmethod
    def single_user(config: Config) -> StudioAccess:
        """The policy of a loopback studio without accounts (tests build apps with it)."""
        return StudioAccess("single-user", UserStore(config.server.users_file or None), config)

    def require(self, request: Any, action: str) -> Principal:
        return require(self.who(request), action)

    def action(self, name: str) -> Callable[[F], F]:
        """Decorator for a studio handler: check ``name`` for the requesting person before the
        handler runs, and turn its errors into browser-safe ones. A handler that takes
        ``request`` gets Gradio's ``gr.Request``; one that does not (the ledger's) is given a
        ``request`` parameter that Gradio fills in and the handler never sees. While it runs,
        :data:`acting` holds the person."""
        if name not in ACTIONS:
            raise ValueError(f"unknown action {name!r}")

        def wrap(fn: F) -> F:
            import gradio as gr

            sig = inspect.signature(fn)
            params = list(sig.parameters.values())
            takes_request = "request" in sig.parameters
            if not takes_request:
                params.append(inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None))
            names = [p.name for p in params]
            index = names.index("request")

            def split(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
                kwargs = dict(kwargs)
                if "request" in kwargs:
                    request = kwargs["request"] if takes_request else kwargs.pop("request")
                elif index < len(args):
                    request = args[index]
                    if not takes_request:
                        args = args[:index] + args[index + 1:]
                else:
                    request = None
                return request, args, kwargs

            def guard(request: Any) -> Token[Principal | None]:
                return acting.set(self.require(request, name))

            def translated(e: BaseException) -> BaseException:
                err = browser_error(e, name)
                if err is not e:
                    err.__cause__ = e
                return err

            wrapper: Any
            if inspect.isasyncgenfunction(fn):
                async def wrapper(*args: Any, **kwargs: Any) -> Any:
                    request, args, kwargs = split(args, kwargs)
                    try:
                        guard(request)
                        async for item in fn(*args, **kwargs):
                            yield item
                    except BaseException as e:
                        raise translated(e)  # noqa: B904 - the cause is set in translated()
            elif inspect.iscoroutinefunction(fn):
                async def wrapper(*args: Any, **kwargs: Any) -> Any:
                    request, args, kwargs = split(args, kwargs)
                    try:
                        guard(request)
                        return await fn(*args, **kwargs)
                    except BaseException as e:
                        raise translated(e)  # noqa: B904
            elif inspect.isgeneratorfunction(fn):
                def wrapper(*args: Any, **kwargs: Any) -> Any:
                    request, args, kwargs = split(args, kwargs)
                    try:
                        guard(request)
                        yield from fn(*args, **kwargs)
                    except BaseException as e:
                        raise translated(e)  # noqa: B904
            else:
                def wrapper(*args: Any, **kwargs: Any) -> Any:
                    request, args, kwargs = split(args, kwargs)
                    token = None
                    try:
                        token = guard(request)
                        return fn(*args, **kwargs)
                    except BaseException as e:
                        raise translated(e)  # noqa: B904
                    finally:
                        if token is not None:
                            acting.reset(token)
            wrapper.__name__ = getattr(fn, "__name__", "handler")
            wrapper.__qualname__ = getattr(fn, "__qualname__", wrapper.__name__)
            wrapper.__doc__ = fn.__doc__
            # Gradio finds the request parameter by its resolved type hint: give it exactly that
            # (our modules' postponed annotations name `gr` where it is not a global)
            wrapper.__signature__ = sig.replace(parameters=[p.replace(annotation=inspect.Parameter.empty)
                                                            for p in params])
            wrapper.__annotations__ = {"request": gr.Request}
            setattr(wrapper, ACTION_ATTR, name)
            return wrapper  # type: ignore[no-any-return]
        return wrap


def browser_error(e: BaseException, action: str) -> BaseException:
    """What the browser may see of ``e``: our own errors' message and hint (HTML-escaped, since
    Gradio renders error text as HTML and messages quote user data); any other error a generic
    message with a reference that matches the full traceback in the server log. A storage error
    (a file the server could not read or write) is the server's: it names server paths, so the
    browser gets the reference too."""
    import gradio as gr

    if isinstance(e, KeyboardInterrupt | SystemExit | GeneratorExit):
        return e
    if isinstance(e, gr.Error):
        return e
    if isinstance(e, ReelForgeError) and not isinstance(e, StorageError):
        if isinstance(e, AccessDenied):
            log.warning("studio: refused %s: %s", action, e.message)
        text = html.escape(e.message) + (f" — 提示 hint: {html.escape(e.hint)}" if e.hint else "")
        return gr.Error(text, title="无法完成 Cannot do that", print_exception=False)
    ref = secrets.token_hex(4)
    log.error("studio action %s failed [ref %s]", action, ref, exc_info=e)
    return gr.Error(f"内部错误，编号 {ref}：请把编号告诉管理员（服务器日志里有详情）。"
                    f" Internal error, reference {ref}: the server log has the details.",
                    title="内部错误 Internal error", print_exception=False)


def plan_access(host: str, config: Config, workspace: Path) -> StudioAccess:
    """The policy for a studio bound to ``host`` serving ``workspace``; refuses to start one
    that would be open to the network."""
    users = UserStore(config.server.users_file or None)
    _check_users_file(users.path, workspace)
    count = len(users)
    if count == 0:
        if not is_loopback(host):
            raise AccessDenied(
                f"the studio will not listen on {host} without accounts: anyone who can reach that address "
                f"could make, change and delete projects and read the ledger",
                hint="add an account first: reelforge users add NAME --role admin  (then start again; "
                     f"accounts live in {users.path}), or listen on 127.0.0.1 only")
        log.info("studio: single-user mode (listening on %s, no accounts in %s)", host, users.path)
        return StudioAccess("single-user", users, config)
    s = config.server
    lockout = s.lockout_minutes * 60
    log.info("studio: login required (%d accounts in %s)", count, users.path)
    return StudioAccess("accounts", users, config,
                        limiter=LoginLimiter(per_user=s.login_attempts, per_address=s.address_attempts,
                                             window_s=lockout, lockout_s=lockout),
                        sessions=SessionTable(max_age_s=s.session_hours * 3600, idle_s=s.idle_minutes * 60))


def _check_users_file(path: Path, workspace: Path) -> None:
    real, ws = os.path.realpath(path), os.path.realpath(workspace)
    if real == ws or real.startswith(ws.rstrip(os.sep) + os.sep):
        raise AccountError(f"the accounts file {str(path)!r} is inside the studio's workspace {str(workspace)!r}, "
                           f"whose files the studio serves", hint="move it out, e.g. to ~/.config/reelforge/users.json, "
                                                                  "and set [server] users_file accordingly")
