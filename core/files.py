"""Writing files safely: atomic replacement, plain messages for OS errors, room checked up front.

Every file the project writes goes to a temporary name beside it and is renamed over the real
name only when complete, so a full disk, a kill or a crash never leaves half a file under the
real name, and the temporary file is removed when the write fails. An :class:`OSError` becomes a
:class:`~core.errors.StorageError` (:class:`~core.errors.DiskFullError` for ENOSPC) whose one-line
message names the path and the cause. :func:`check_writable` runs before long work, so a
read-only folder or a nearly full disk is reported before the work, not after it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from core.errors import DiskFullError, InputError, StorageError

log = logging.getLogger(__name__)

_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}

_HINTS = {
    errno.EACCES: "check the permissions of the folder, or choose another one",
    errno.EPERM: "check the permissions of the folder, or choose another one",
    errno.EROFS: "the disk is mounted read-only: choose a folder on a writable disk",
    errno.EISDIR: "that is a folder: give a file name",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.ENOENT: "check the path",
    errno.ENAMETOOLONG: "use a shorter name",
}


def _cause(e: OSError) -> str:
    text = e.strerror or str(e) or type(e).__name__
    if e.errno in _FULL:
        return f"{text} (disk full)"
    return text


def storage_error(e: OSError, action: str = "write", path: str | os.PathLike[str] | None = None) -> StorageError:
    """The :class:`StorageError` for ``e``: ``cannot write '/p/x.mp4': No space left on device (disk full)``."""
    where = os.fspath(path) if path is not None else (e.filename if e.filename is not None else "")
    where = os.fsdecode(where) if isinstance(where, bytes) else str(where)
    message = f"cannot {action} {where!r}: {_cause(e)}" if where else f"cannot {action}: {_cause(e)}"
    if e.errno in _FULL:
        return DiskFullError(message, path=where,
                             hint="free some space on that disk and run the same command again; finished work is kept")
    return StorageError(message, path=where, hint=_HINTS.get(e.errno or -1))


def os_error_message(e: OSError) -> str:
    """One line naming the path(s) and the cause of ``e``: ``'/p/out.mp4': Read-only file system``."""
    names = [os.fsdecode(n) if isinstance(n, bytes) else str(n) for n in (e.filename, e.filename2) if n is not None]
    where = " -> ".join(repr(n) for n in names)
    return f"{where}: {_cause(e)}" if where else _cause(e)


_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"


def temp_name(path: str | os.PathLike[str], *, hidden: bool = True) -> Path:
    """A unique temporary name beside ``path`` that keeps its suffix (muxers and image writers choose
    formats by it): ``.STEM.HOST-TOKEN.PID.tmp.EXT``. The host and a random token keep two writers
    apart on shared storage (two nodes may run processes with the same pid; a retried task may
    still be writing elsewhere)."""
    p = Path(path)
    return p.with_name(f"{'.' if hidden else ''}{p.stem}.{_HOST}-{uuid.uuid4().hex[:8]}.{os.getpid()}.tmp{p.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, hidden: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path``; renamed over ``path`` when the block ends without error.

    On any error (a full disk, an interrupt) the temporary file is removed and an ``OSError``
    becomes a :class:`StorageError` naming ``path``.
    """
    p = Path(path)
    tmp = temp_name(p, hidden=hidden)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        os.replace(tmp, p)
    except OSError as e:
        _discard(tmp)
        raise storage_error(e, "write", p) from e
    except BaseException:
        _discard(tmp)
        raise


def _discard(tmp: Path) -> None:
    try:
        tmp.unlink(missing_ok=True)
    except OSError as e:  # the cleanup's own error must not hide the real one
        log.warning("could not remove the temporary file %s: %s", tmp, e)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())  # a full disk can surface only here (delayed allocation)
    return Path(path)


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8",
                      newline: str | None = None) -> Path:
    """Write ``text`` to ``path`` atomically."""
    data = text if newline is None else text.replace("\n", newline)
    return atomic_write_bytes(path, data.encode(encoding))


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` exists (ours or another user's)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def part_path(path: str | os.PathLike[str]) -> Path:
    """The hidden name a file is written under until it is complete: ``.NAME.PID.part.SUFFIX``.

    The suffix stays last so that muxers still recognise the format; the pid lets a later run
    tell a part file of a killed process (removed by :func:`sweep_parts`) from one being written.
    """
    p = Path(path)
    return p.with_name(f".{p.stem}.{os.getpid()}.part{p.suffix}")


_WORK_FILE = re.compile(r"^\.+.+\.(\d+)\.(?:part(?:\.[^.]+)?|pre-fps\.[^.]+|tmp(?:\.[^.]+)?)$")
_HOST_TAG = re.compile(r"\.([A-Za-z0-9]+)-[0-9a-f]{8}\.\d+\.tmp(?:\.[^.]+)?$")


def sweep_parts(path: str | os.PathLike[str]) -> list[Path]:
    """Remove the hidden work files that killed runs left in ``path``'s folder (a SIGKILL, a power cut).

    Only names this module makes are touched (``.NAME.PID.part.EXT``, ``.STEM.HOST-TOKEN.PID.tmp.EXT``,
    ``.NAME.PID.pre-fps.EXT``), and only when process PID no longer runs; every writer calls it
    before it starts, so the debris of any earlier output in the folder goes too.
    """
    folder = Path(path).parent
    removed: list[Path] = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return removed
    for cand in entries:
        m = _WORK_FILE.match(cand.name)
        if not m:
            continue
        pid = int(m.group(1))
        host = _HOST_TAG.search(cand.name)
        if host and host.group(1) != _HOST:
            continue  # another machine's writer on shared storage: its pid means nothing here
        if pid == os.getpid() or pid_alive(pid) or not cand.is_file():
            continue
        try:
            cand.unlink()
            removed.append(cand)
            log.info("removed %s, left by a stopped run", cand)
        except OSError as e:
            log.warning("could not remove %s: %s", cand, e)
    return removed


def check_distinct(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Refuse an output that is the input itself (same path, a link to it, or a hard link)."""
    a, b = Path(src), Path(dst)
    same = a.expanduser().resolve() == b.expanduser().resolve()
    if not same and a.exists() and b.exists():
        try:
            same = os.path.samefile(a, b)
        except OSError:
            same = False
    if same:
        raise InputError(f"the output {str(b)!r} is the input itself",
                         hint="choose another output file; the input is kept")


def free_bytes(folder: str | os.PathLike[str]) -> int:
    """Free bytes on the disk holding ``folder`` (or its nearest existing parent)."""
    p = Path(folder).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def check_writable(folder: str | os.PathLike[str], *, need_bytes: int = 0, what: str = "output") -> Path:
    """Refuse early when ``folder`` cannot take a new file, or when its disk has under ``need_bytes`` free.

    Creates ``folder`` (and parents) if needed, then creates and removes a probe file in it, which
    is the only check that holds for permissions, read-only mounts and ACLs alike.
    """
    p = Path(folder)
    try:
        if p.exists() and not p.is_dir():
            raise StorageError(f"the {what} folder {str(p)!r} is a file", path=str(p), hint="give a folder")
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".reelforge-write-check-", dir=p)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise storage_error(e, f"write the {what} to", p) from e
    if need_bytes > 0:
        free = free_bytes(p)
        if free < need_bytes:
            raise DiskFullError(
                f"the disk holding {str(p)!r} has {_mb(free)} free; this needs about {_mb(need_bytes)}",
                path=str(p), hint="free some space or choose a folder on another disk")
    return p


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n / 1024:.0f} kB"
