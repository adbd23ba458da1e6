"""Paths built from user data go through here: ids and names in a screenplay are user data.

:func:`check_name` validates one path component at load time (a shot id, an episode folder, a
character name used as a file name) against a safe pattern; :func:`safe_join` builds a path
under a root and refuses anything that would resolve outside it (``..``, absolute paths, drive
letters, links pointing out). Every write of a path made from screenplay data uses
``safe_join(project, ...)``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path, PurePosixPath, PureWindowsPath

from core.errors import InputError

# Letters (any script, so Chinese names work), digits, "_", "-", "." inside; no leading dot,
# no separators, no control characters; at most 64 characters.
_SAFE = re.compile(r"^[^\W_][\w.\-]{0,63}$", re.UNICODE)
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}

SAFE_NAME_RULE = "1-64 letters, digits, '_', '-' or '.', starting with a letter or digit"


def is_safe_name(value: str) -> bool:
    """True when ``value`` can be used as one file or folder name on every OS."""
    return (isinstance(value, str) and bool(_SAFE.match(value)) and ".." not in value
            and not value.endswith(".") and value.split(".")[0].lower() not in _RESERVED)


def check_name(value: str, field: str) -> str:
    """``value`` if it is a safe single path component, else an :class:`InputError` naming ``field``."""
    if not is_safe_name(value):
        raise InputError(f"{field} {value!r} cannot be used as a file name",
                         hint=f"use {SAFE_NAME_RULE} (no '/', '\\\\' or '..')")
    return value


def safe_join(root: str | os.PathLike[str], *parts: str | os.PathLike[str]) -> Path:
    """``root / parts...``, refusing any result that is not inside ``root``.

    Each part may hold several components (``"synth/ep01"``); absolute parts, drive letters,
    ``..`` components and symbolic links that lead out of ``root`` are refused.
    """
    base = Path(root)
    out = base
    for part in parts:
        text = os.fspath(part)
        if not text:
            raise InputError("an empty name cannot be part of a path", hint="give the item a name")
        if "\x00" in text:
            raise InputError(f"path part {text!r} holds a NUL character", hint="remove it")
        pure_posix, pure_win = PurePosixPath(text), PureWindowsPath(text)
        if pure_posix.is_absolute() or pure_win.is_absolute() or pure_win.drive:
            raise InputError(f"path part {text!r} is absolute", hint=f"use a name inside {base}")
        if ".." in pure_posix.parts or ".." in pure_win.parts:
            raise InputError(f"path part {text!r} leads out of its folder", hint=f"use a name inside {base}")
        out = out / text
    real_root = os.path.realpath(base)
    real = os.path.realpath(out)
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise InputError(f"{out} resolves outside {base}", hint="remove the link or rename the item")
    return out
