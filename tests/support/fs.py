"""File-system helpers for the hardening tests: snapshots, a tiny disk, a read-only folder.

A tiny disk and a read-only mount are real tmpfs mounts where the tests run as root and may
mount (``mount -t tmpfs -o size=...``); elsewhere those tests are skipped, and the portable tests
simulate a full disk by making ``os.write``-level calls fail with ENOSPC instead.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

TINY_NOVEL = "第一章 开始\n\n阿Q说：“我们先前比你阔多啦！”\n小D说：“你算什么东西。”\n王胡说：“你们都别吵了。”\n"
FAST_MAKE = ["--size", "96x160", "--episode-seconds", "15", "--tts", "silence"]


def write_novel(folder: Path, name: str = "novel.txt") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(TINY_NOVEL, encoding="utf-8")
    return path


def snapshot(root: Path, exclude: tuple[Path, ...] = ()) -> dict[str, tuple[int, int]]:
    """Every file and link under ``root`` (relative path -> size, mtime), outside ``exclude``."""
    out: dict[str, tuple[int, int]] = {}
    skip = tuple(str(p.resolve()) + os.sep for p in exclude)
    for dirpath, dirs, files in os.walk(root):
        full = str(Path(dirpath).resolve()) + os.sep
        if any(full.startswith(s) for s in skip):
            dirs[:] = []
            continue
        for name in files + [d for d in dirs if (Path(dirpath) / d).is_symlink()]:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def _can_mount() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "2m", *, read_only: bool = False) -> Iterator[Path]:
    """A real tmpfs of ``size`` at ``path`` (root only; skips the test elsewhere)."""
    if not _can_mount():
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if read_only else "")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(folder: Path, leave: int = 0) -> None:
    """Fill the disk holding ``folder`` until at most ``leave`` bytes are free (0: completely full)."""
    import shutil

    with open(folder / ".filler", "wb", buffering=0) as f:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 8, 1):
            block = b"\0" * size
            while shutil.disk_usage(folder).free > leave:
                try:
                    f.write(block)
                except OSError as e:
                    if e.errno == errno.ENOSPC:
                        break
                    raise
                if shutil.disk_usage(folder).free < size and leave == 0:
                    break
