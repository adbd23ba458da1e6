"""Logging set-up for the faces (CLI, UI). Libraries only call ``logging.getLogger(__name__)``."""

from __future__ import annotations

import logging
import os
import sys

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(level: str | int | None = None, *, stream: object = None) -> None:
    """Configure the root logger once; ``REELFORGE_LOG`` overrides the level."""
    chosen = level if level is not None else os.environ.get("REELFORGE_LOG", "INFO")
    if isinstance(chosen, str):
        chosen = chosen.upper()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_reelforge", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
    handler._reelforge = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(chosen)
    # third-party chatter that drowns our own progress
    for noisy in ("httpx", "urllib3", "PIL", "matplotlib", "asyncio", "libav"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
