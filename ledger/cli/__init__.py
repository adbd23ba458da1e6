"""``reelforge ledger --db FILE ...`` (mounted by ``ui/cli.py`` through :func:`register`) and
``python -m ledger --db FILE ...`` (through :func:`main`).

Exit codes: 0 done; 1 ``verify`` found a broken chain; 2 the request was refused (malformed
input, duplicate, conflict, unknown name, a chain that does not verify before a claim or an export:
the reason is on stderr); 3 the ledger file itself could not be read or written; 4 an unexpected
internal error (a bug: the message says what, ``REELFORGE_LOG=DEBUG`` shows where).
"""

from __future__ import annotations

import argparse
import logging
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from core.errors import ReelForgeError
from ledger.api import Ledger
from ledger.cli.output import EXIT_BROKEN, EXIT_OK, EXIT_REFUSED, EXIT_STORAGE, EXIT_UNEXPECTED
from ledger.cli.parser import configure_parser

__all__ = ["EXIT_BROKEN", "EXIT_OK", "EXIT_REFUSED", "EXIT_STORAGE", "EXIT_UNEXPECTED", "configure_parser", "main",
           "register", "run"]

log = logging.getLogger(__name__)


# --- the ledger object for a command ----------------------------------------------------------
def _db_path(args: argparse.Namespace) -> Path:
    if args.db:
        return Path(args.db).expanduser()
    from core.config import load_config

    return Path(load_config().ledger.db).expanduser()


def _open(args: argparse.Namespace) -> Ledger:
    return Ledger(_db_path(args), archive_dir=args.archive)


def run(args: argparse.Namespace) -> int:
    """Run a parsed ledger command; returns the exit code and writes failures to stderr."""
    handler = getattr(args, "ledger_handler", None)
    if handler is None:
        print("错误 error: no ledger command given (try --help)", file=sys.stderr)
        return EXIT_REFUSED
    try:
        lg = _open(args)
    except ReelForgeError as e:
        _fail(e)
        return EXIT_REFUSED
    except (sqlite3.Error, OSError) as e:
        print(f"错误 error: cannot open the ledger {str(_db_path(args))!r}: {e}", file=sys.stderr)
        return EXIT_STORAGE
    try:
        return int(handler(lg, args))
    except ReelForgeError as e:
        _fail(e)
        return EXIT_REFUSED
    except sqlite3.IntegrityError as e:
        print(f"错误 error: the ledger refused the change: {e}", file=sys.stderr)
        return EXIT_REFUSED
    except (sqlite3.Error, OSError) as e:
        print(f"错误 error: ledger storage failed: {e}", file=sys.stderr)
        return EXIT_STORAGE
    except Exception as e:  # a bug: say what, keep the traceback for the debug log, never for the user
        log.debug("ledger command failed", exc_info=True)
        print(f"错误 error: unexpected internal error: {type(e).__name__}: {e} (nothing more was written; "
              "run with REELFORGE_LOG=DEBUG to see where)", file=sys.stderr)
        return EXIT_UNEXPECTED
    finally:
        lg.close()


def _fail(e: ReelForgeError) -> None:
    print(f"错误 error: {e.message}", file=sys.stderr)
    if e.hint:
        print(f"提示 hint: {e.hint}", file=sys.stderr)


def register(subparsers: Any) -> None:
    """Add the ``ledger`` subcommand to the ``reelforge`` parser's subparsers. After
    ``args = parser.parse_args()``, ``args.func(args)`` runs it and returns the exit code."""
    p = subparsers.add_parser("ledger", help="AI-spend ledger and subsidy claims 费用台账与补贴申报",
                              description="Tamper-evident AI-spend ledger, measure 5/6 claims and exports. "
                                          "防篡改的AI费用台账、措施5/6补贴计算与申报材料导出。")
    configure_parser(p)
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    from core.log import setup_logging

    setup_logging(os.environ.get("REELFORGE_LOG", "WARNING"))
    parser = argparse.ArgumentParser(prog="python -m ledger",
                                     description="ReelForge AI-spend ledger 费用台账 (same as `reelforge ledger`)")
    configure_parser(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already wrote the reason to stderr
        return int(e.code) if isinstance(e.code, int) else EXIT_REFUSED
    return run(args)
