"""Studio accounts: names, roles and argon2id password hashes in one user-level file.

The file (``~/.config/reelforge/users.json`` unless ``[server] users_file`` says otherwise) is
never inside a project: projects are shared and served, accounts are not. It is written
atomically (a temporary file, fsync, rename) with mode 0600 under an exclusive lock, and a
file that others can read is refused, as ssh refuses a readable private key.

Passwords are hashed with argon2-cffi's ``PasswordHasher`` (argon2id, RFC 9106 low-memory
profile by default); the parameters travel inside each hash, so a stronger profile later
rehashes on the next successful login. An unknown name is checked against a dummy hash, so a
wrong name and a wrong password take the same time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import stat
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import InputError, MissingDependencyError, ReelForgeError
from core.permissions import ROLES, Principal, Role, check_role

log = logging.getLogger(__name__)

USERS_FILE_NAME = "users.json"
FILE_VERSION = 1
MIN_PASSWORD = 8
MAX_PASSWORD = 1024  # argon2 takes any length; this only bounds the work one request can ask for
# letters of any script (Chinese names work), digits, "_", "-", "."; no spaces: Gradio strips them
_NAME = re.compile(r"^[^\W_][\w.\-]{0,31}$", re.UNICODE)
NAME_RULE = "1-32 letters, digits, '_', '-' or '.', starting with a letter or digit"


class AccountError(ReelForgeError):
    """The users file or an account request is unusable."""


def default_users_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "reelforge" / USERS_FILE_NAME


def check_username(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InputError(f"user name {name!r} is not allowed", hint=f"use {NAME_RULE}")
    return name


def check_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD:
        raise InputError(f"a password needs at least {MIN_PASSWORD} characters",
                         hint="choose a longer one (a passphrase of several words is easy to remember)")
    if len(password) > MAX_PASSWORD:
        raise InputError(f"a password may have at most {MAX_PASSWORD} characters")
    if not password.strip():
        raise InputError("a password cannot be only spaces")
    return password


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def default_hasher() -> Any:
    """argon2id with argon2-cffi's default (RFC 9106 low-memory) parameters."""
    try:
        from argon2 import PasswordHasher
    except ImportError as e:
        raise MissingDependencyError("argon2-cffi", "ui") from e
    return PasswordHasher()


@dataclass(frozen=True, slots=True)
class Account:
    """One account as listed; the hash never leaves the store."""

    name: str
    role: Role
    created_at: str
    changed_at: str  # when the password was last set: sessions older than this end

    def principal(self) -> Principal:
        return Principal(self.name, self.role)


class UserStore:
    """The accounts file. Reads are cheap (cached by the file's mtime and size); every change
    re-reads under the lock, so two `reelforge users` commands never lose each other's edit."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, hasher: Any = None) -> None:
        self.path = Path(path).expanduser() if path else default_users_file()
        self._hasher = hasher
        self._dummy: str | None = None
        self._cache: tuple[tuple[int, int, int], dict[str, dict[str, Any]]] | None = None
        self._mutex = threading.Lock()

    @property
    def hasher(self) -> Any:
        if self._hasher is None:
            self._hasher = default_hasher()
        return self._hasher

    # --- reading ------------------------------------------------------------------------------
    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._mutex:
            if self._cache is not None and self._cache[0] == key:
                return self._cache[1]
        if os.name == "posix" and stat.S_IMODE(st.st_mode) & 0o077:
            raise AccountError(f"users file {str(self.path)!r} can be read by other users "
                               f"(mode {stat.S_IMODE(st.st_mode):o})", hint=f"chmod 600 {self.path}")
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise AccountError(f"users file {str(self.path)!r} cannot be read: {e}",
                               hint="restore it from a backup, or move it away and add the accounts again") from e
        if not isinstance(data, dict) or data.get("version") != FILE_VERSION or not isinstance(data.get("users"), list):
            raise AccountError(f"users file {str(self.path)!r} is not a version {FILE_VERSION} accounts file",
                               hint="move it away and add the accounts again with `reelforge users add`")
        users: dict[str, dict[str, Any]] = {}
        for row in data["users"]:
            if not (isinstance(row, dict) and isinstance(row.get("name"), str) and isinstance(row.get("hash"), str)
                    and row.get("role") in ROLES):
                raise AccountError(f"users file {str(self.path)!r} holds a malformed entry",
                                   hint="fix it or add the account again")
            users[row["name"]] = row
        with self._mutex:
            self._cache = (key, users)
        return users

    def accounts(self) -> list[Account]:
        return [self._account(r) for r in sorted(self._read().values(), key=lambda r: r["name"])]

    def get(self, name: str) -> Account | None:
        row = self._read().get(name)
        return self._account(row) if row else None

    def account(self, name: str) -> Account:
        """The account, or an error saying there is none and how to list or add them."""
        users = self._read()
        return self._account(self._existing(users, name))

    def __len__(self) -> int:
        return len(self._read())

    @staticmethod
    def _account(row: dict[str, Any]) -> Account:
        return Account(row["name"], check_role(row["role"]), str(row.get("created_at", "")),
                       str(row.get("changed_at", "")))

    # --- checking a password --------------------------------------------------------------------
    def verify(self, name: str, password: str) -> Account | None:
        """The account when ``password`` is right, else None (unknown names take as long)."""
        from argon2.exceptions import InvalidHashError, VerificationError

        if not isinstance(password, str) or len(password) > MAX_PASSWORD:
            return None
        row = self._read().get(name) if isinstance(name, str) else None
        if row is None:
            with contextlib.suppress(VerificationError, InvalidHashError):
                self.hasher.verify(self._dummy_hash(), password)
            return None
        try:
            self.hasher.verify(row["hash"], password)
        except (VerificationError, InvalidHashError):
            return None
        if self.hasher.check_needs_rehash(row["hash"]):
            try:
                self._rehash(name, password, row["hash"])
            except (OSError, ReelForgeError) as e:  # the login still succeeds; the old hash stays valid
                log.warning("could not upgrade the password hash of %r: %s", name, e)
        return self._account(row)

    def _dummy_hash(self) -> str:
        if self._dummy is None:
            self._dummy = str(self.hasher.hash("reelforge: no such account"))
        return self._dummy

    def _rehash(self, name: str, password: str, old: str) -> None:
        with self._changing() as users:
            if name in users and users[name]["hash"] == old:
                users[name]["hash"] = self.hasher.hash(password)
                log.info("upgraded the password hash of %r to the current parameters", name)

    # --- changing ---------------------------------------------------------------------------------
    def add(self, name: str, role: str, password: str) -> Account:
        check_username(name)
        role = check_role(role)
        check_password(password)
        digest = self.hasher.hash(password)
        with self._changing() as users:
            clash = next((n for n in users if n.casefold() == name.casefold()), None)
            if clash is not None:
                raise AccountError(f"account {clash!r} exists already",
                                   hint=f"change its password with `reelforge users passwd {clash}` "
                                        f"or its role with `reelforge users role {clash} ROLE`")
            now = _now()
            users[name] = {"name": name, "role": role, "hash": digest, "created_at": now, "changed_at": now}
            return self._account(users[name])

    def set_password(self, name: str, password: str) -> Account:
        check_password(password)
        digest = self.hasher.hash(password)
        with self._changing() as users:
            row = self._existing(users, name)
            row["hash"], row["changed_at"] = digest, _now()
            return self._account(row)

    def set_role(self, name: str, role: str) -> Account:
        role = check_role(role)
        with self._changing() as users:
            row = self._existing(users, name)
            if row["role"] == "admin" and role != "admin":
                self._keep_an_admin(users, name)
            row["role"] = role
            return self._account(row)

    def remove(self, name: str) -> None:
        with self._changing() as users:
            row = self._existing(users, name)
            if row["role"] == "admin":
                self._keep_an_admin(users, name)
            del users[name]

    def _existing(self, users: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
        if name not in users:
            raise AccountError(f"there is no account {name!r}",
                               hint="list them with `reelforge users list`" if users else
                               "add one with `reelforge users add NAME --role admin`")
        return users[name]

    @staticmethod
    def _keep_an_admin(users: dict[str, dict[str, Any]], name: str) -> None:
        if not any(r["role"] == "admin" for n, r in users.items() if n != name):
            raise AccountError(f"{name!r} is the last admin", hint="make another account an admin first")

    @contextlib.contextmanager
    def _changing(self) -> Iterator[dict[str, dict[str, Any]]]:
        """Read, let the caller change, write back atomically; all under an exclusive lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _file_lock(self.path.with_name(self.path.name + ".lock")):
            with self._mutex:
                self._cache = None
            users = {k: dict(v) for k, v in self._read().items()}
            yield users
            self._write(users)

    def _write(self, users: dict[str, dict[str, Any]]) -> None:
        data = {"version": FILE_VERSION, "users": [users[k] for k in sorted(users)]}
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            # mkstemp creates the file 0600, so the hashes are never readable by others, not even briefly
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with self._mutex:
            self._cache = None


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            import fcntl
        except ImportError:  # Windows: one writer at a time is the operator's job there
            log.warning("no file locking on this platform: run one `reelforge users` command at a time")
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
