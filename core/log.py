"""Logging set-up for the faces (CLI, UI). Libraries only call ``logging.getLogger(__name__)``.

The console shows messages only; full tracebacks go to the run's log file (:func:`run_log`,
:func:`log_traceback`), where whoever debugs a failure finds them. ``--log-level DEBUG`` shows
them on the console too.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
TRACE_LOGGER = "reelforge.trace"  # records that carry a full traceback, for log files only


class _ConsoleFormatter(logging.Formatter):
    """One line per record: a traceback attached to a record is left to the log file."""

    def __init__(self, fmt: str, datefmt: str, verbose: bool) -> None:
        super().__init__(fmt, datefmt=datefmt)
        self.verbose = verbose

    def format(self, record: logging.LogRecord) -> str:
        if self.verbose or not (record.exc_info or record.stack_info):
            return super().format(record)
        saved = record.exc_info, record.exc_text, record.stack_info
        record.exc_info = record.exc_text = record.stack_info = None
        try:
            return super().format(record)
        finally:
            record.exc_info, record.exc_text, record.stack_info = saved


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of the record (tests and embedders swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


def _not_trace(record: logging.LogRecord) -> bool:
    return record.name != TRACE_LOGGER


def setup_logging(level: str | int | None = None, *, stream: object = None) -> None:
    """Configure the root logger once; ``REELFORGE_LOG`` overrides the level."""
    chosen = level if level is not None else os.environ.get("REELFORGE_LOG", "INFO")
    if isinstance(chosen, str):
        chosen = chosen.upper()
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_reelforge", False):
            root.removeHandler(old)
    handler: logging.Handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()  # type: ignore[arg-type,call-overload]
    verbose = logging.getLevelName(chosen) == logging.DEBUG or chosen == logging.DEBUG
    handler.setFormatter(_ConsoleFormatter(_FORMAT, "%H:%M:%S", verbose))
    if not verbose:
        handler.addFilter(_not_trace)
    handler._reelforge = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(chosen)
    # third-party chatter that drowns our own progress
    for noisy in ("httpx", "urllib3", "PIL", "matplotlib", "asyncio", "libav"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextmanager
def run_log(path: str | os.PathLike[str]) -> Iterator[logging.Handler | None]:
    """Copy the log (INFO and above, with tracebacks) to ``path`` while the block runs.

    A log that cannot be opened (a read-only or full disk) is skipped with a warning: the run
    itself reports the real problem.
    """
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler | None = logging.FileHandler(p, encoding="utf-8")
    except OSError as e:
        logging.getLogger(__name__).warning("no run log at %s: %s", p, e.strerror or e)
        handler = None
    root = logging.getLogger()
    if handler is not None:
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler.setLevel(logging.INFO)
        root.addHandler(handler)
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        if handler is not None:
            root.removeHandler(handler)
            try:
                handler.close()
            except OSError:  # a full disk can fail the final flush; the run's own error is reported
                pass


def log_traceback(exc: BaseException, handler: logging.Handler | None = None,
                  path: str | os.PathLike[str] | None = None) -> Path | None:
    """Write ``exc``'s full traceback to the run's log (``handler``'s file, else ``path``).

    Returns the log's path and sets it on the exception as ``log_path`` so the CLI can name it;
    None when nothing could be written.
    """
    if getattr(exc, "log_path", None):
        return Path(exc.log_path)  # type: ignore[attr-defined]
    text = "".join(traceback.format_exception(exc))
    written: Path | None = None
    try:
        if handler is not None:
            logging.getLogger(TRACE_LOGGER).error("run failed: %s: %s", type(exc).__name__, exc, exc_info=exc)
            handler.flush()
            written = Path(path) if path is not None else Path(getattr(handler, "baseFilename", ""))
        elif path is not None:
            p = Path(path)
            p.parent.mkdir(parents=True, exist_ok=True)
            with open(p, "a", encoding="utf-8") as f:
                f.write(f"{datetime.now(UTC).isoformat(timespec='seconds')} ERROR run failed\n{text}")
            written = p
    except OSError:
        return None
    try:
        exc.log_path = str(written) if written else None  # type: ignore[attr-defined]
    except AttributeError:  # an exception type with __slots__
        pass
    return written


def user_log_dir() -> Path:
    """Where runs outside a project keep their logs: ``$REELFORGE_LOG_DIR``, else the XDG state folder."""
    env = os.environ.get("REELFORGE_LOG_DIR")
    if env:
        return Path(env).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or str(Path("~/.local/state").expanduser())
    return Path(state) / "reelforge" / "logs"
