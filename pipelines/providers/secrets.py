"""API keys: read from the environment or a user-level secrets file, never written anywhere.

Lookup order for a variable such as ``ARK_API_KEY``:

1. the environment (``ARK_API_KEY=...``);
2. the user's secrets file, ``$REELFORGE_SECRETS`` or ``~/.config/reelforge/secrets.toml``,
   a flat TOML table (``ARK_API_KEY = "..."``). The file must be readable by its owner only
   (``chmod 600``): a file others can read is refused, with the command that fixes it.

A key is held in a :class:`Secret`, whose ``str``/``repr`` is ``***``; only the adapters'
request builders call :meth:`Secret.reveal`. Every value read is remembered (in memory only) so
that :func:`redact` can scrub it from error messages and log records: provider responses may
echo a request back. Every module of this package logs through :func:`get_logger`, whose
loggers carry :class:`RedactingFilter`.
Keys never go into a project, a log file, ``usage.sqlite``, an export or an error message.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import tomllib
from collections.abc import Mapping
from pathlib import Path

from core.errors import ConfigError

log = logging.getLogger(__name__)

SECRETS_ENV = "REELFORGE_SECRETS"
DEFAULT_SECRETS_FILE = "~/.config/reelforge/secrets.toml"
MASK = "***"

_known: set[str] = set()
_lock = threading.Lock()


class Secret:
    """A secret value that does not print itself."""

    __slots__ = ("_value", "name")

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self._value = value
        remember(value)

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"Secret({self.name}={MASK})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:  # never pickled into a file or another process by accident
        raise TypeError("a Secret cannot be pickled")


def remember(value: str) -> None:
    """Add ``value`` to the values :func:`redact` removes (values shorter than 6 are too common)."""
    if value and len(value) >= 6:
        with _lock:
            _known.add(value)


def redact(text: str) -> str:
    """``text`` with every known secret value replaced by ``***``."""
    if not text:
        return text
    with _lock:
        values = sorted(_known, key=len, reverse=True)
    for v in values:
        if v in text:
            text = text.replace(v, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Scrubs known secrets from a record's message and arguments before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _known:
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001 - a bad format string is the logging module's business
                return True
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, ()
        return True


def secrets_file(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    return Path(env.get(SECRETS_ENV) or DEFAULT_SECRETS_FILE).expanduser()


def _read_file(path: Path) -> dict[str, str]:
    try:
        st = path.stat()
    except FileNotFoundError:
        return {}
    if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"the secrets file {str(path)!r} can be read by other users "
                          f"(mode {stat.S_IMODE(st.st_mode):o}); it was not read",
                          hint=f"chmod 600 {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        # the decoder's message quotes the offending line, which may hold a key: do not repeat it
        raise ConfigError(f"the secrets file {str(path)!r} is not valid TOML ({type(e).__name__})",
                          hint='write one line per key: ARK_API_KEY = "..."') from None
    out: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, str):
            out[str(key)] = value
    return out


def get_secret(name: str, env: Mapping[str, str] | None = None) -> Secret | None:
    """The secret ``name`` from the environment or the secrets file, or None when it is set nowhere."""
    env = os.environ if env is None else env
    value = env.get(name, "").strip()
    if not value:
        value = _read_file(secrets_file(env)).get(name, "").strip()
    return Secret(name, value) if value else None


def where_to_set(name: str) -> str:
    """The hint shown when ``name`` is missing or refused."""
    return (f"set {name} in the environment, or add {name} = \"...\" to {DEFAULT_SECRETS_FILE} "
            f"(chmod 600; ${SECRETS_ENV} names another file)")


_FILTER = RedactingFilter()


def get_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with the redacting filter on it (a logger's filters see only
    its own records, so each module of this package takes its logger from here)."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
