"""Whole files or none: every output is written under a temporary name beside it, then renamed.

A worker killed mid-write (a node that dies, a driver stopped with SIGKILL) leaves at most a
hidden temporary file, never half a file under the real name, so a cache check that finds the
file finds all of it. Temporary names carry the host and the process id: on shared storage two
nodes may run processes with the same pid, and a task retried elsewhere while the first attempt
is still writing must not write into the same temporary file. ``os.replace`` is atomic on one
filesystem (POSIX, and NFS for a rename within one folder).
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path


def temp_name(path: str | os.PathLike[str]) -> Path:
    """A hidden, unique name beside ``path`` that keeps its suffix (muxers choose formats by it)."""
    p = Path(path)
    tag = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return p.with_name(f".{p.stem}.{tag}.tmp{p.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path to write; renamed over ``path`` when the block ends without error, removed
    when it raises (or is interrupted)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_name(p)
    try:
        yield tmp
        os.replace(tmp, p)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    return atomic_write_bytes(path, text.encode(encoding))
