"""Exports that open right on the editor's machine: where each media file will be, and packaging.

Two options, used by every exporter through one :class:`MediaPlan`:

``package`` (``"copy"`` or ``"link"``)
    Copy (or hard-link) every media file the timeline uses into ``media/`` inside the export
    folder, under names that are safe on Windows and macOS. The export folder is the folder that
    holds the timeline file (``reelforge cut export`` gives each packaged export its own, such as
    ``out/ep01_fcpxml/``); for 剪映 it is the draft folder itself.

``target_root``
    The folder on the editing machine that will hold the export folder: for 剪映 its drafts
    folder (``C:/Users/NAME/AppData/Local/JianyingPro/User Data/Projects/com.lveditor.draft``),
    for the others any folder (``C:/Users/NAME/Videos/drama``, ``/Users/NAME/Movies/drama``).
    Every media path and folder path in the timeline is written as it will be there, in that
    OS's form. The rule is one for all: a file at ``P`` here is written as ``target_root`` joined
    with ``P`` relative to the folder that holds the export folder. Packaged media therefore sit
    under ``target_root/<export folder>/media/``; media that are not packaged keep their place
    relative to the export (a project folder copied whole to the other machine keeps working),
    and the export's notes list where the editing machine must have them.

Without either option the paths are this machine's absolute paths, as before.

Windows paths are written with forward slashes (``C:/Users/...``), as 剪映 and the editors write
them; :meth:`MediaPlan.folder` gives the backslash form for the one field 剪映 keeps that way.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from urllib.parse import unquote, urlparse

from core.errors import InputError, MediaError
from core.paths import is_safe_name
from core.timeline import Timeline

log = logging.getLogger(__name__)

PACKAGE_MODES = ("copy", "link")
MEDIA_FOLDER = "media"

_DRIVE = re.compile(r"^([A-Za-z]):[\\/]")
_UNC = re.compile(r"^(?:\\\\|//)([^\\/]+)[\\/]([^\\/]+)")
_WIN_BAD = re.compile(r'[<>:"|?*\x00-\x1f]')
_NAME_BAD = re.compile(r"[^\w.\-]+", re.UNICODE)
ROOT_HINT = ("give the folder on the editing machine as an absolute path, e.g. C:/Users/NAME/Videos/drama "
             "(Windows) or /Users/NAME/Movies/drama (macOS)")


@dataclass(frozen=True, slots=True)
class ExportOptions:
    """How an export should travel: ``target_root`` on the editing machine, ``package`` mode."""

    target_root: str | None = None
    package: str | None = None  # None, "copy" or "link"

    def check(self) -> ExportOptions:
        if self.package is not None and self.package not in PACKAGE_MODES:
            raise InputError(f"package mode {self.package!r} is unknown", hint=f"use one of {', '.join(PACKAGE_MODES)}")
        if self.target_root is not None:
            TargetRoot.parse(self.target_root)
        return self


@dataclass(frozen=True, slots=True)
class TargetRoot:
    """An absolute folder on the editing machine: ``anchor`` ("C:", "//server/share" or "") + parts."""

    windows: bool
    anchor: str
    parts: tuple[str, ...]

    @classmethod
    def parse(cls, value: str) -> TargetRoot:
        text = (value or "").strip()
        if not text:
            raise InputError("the target root is empty", hint=ROOT_HINT)
        if any(ord(ch) < 32 for ch in text):
            raise InputError(f"target root {value!r} holds a control character", hint=ROOT_HINT)
        if m := _DRIVE.match(text):
            anchor, rest, windows = m.group(1).upper() + ":", text[m.end():], True
        elif m := _UNC.match(text):
            anchor, rest, windows = f"//{m.group(1)}/{m.group(2)}", text[m.end():], True
        elif text.startswith("/") and not text.startswith("//"):
            anchor, rest, windows = "", text, False
        else:
            raise InputError(f"target root {value!r} is not an absolute path", hint=ROOT_HINT)
        sep = r"[\\/]+" if windows else r"/+"
        parts = tuple(p for p in re.split(sep, rest) if p and p != ".")
        for p in parts:
            if p == "..":
                raise InputError(f"target root {value!r} holds '..'", hint=ROOT_HINT)
            if windows and (_WIN_BAD.search(p) or p.endswith((".", " "))):
                raise InputError(f"target root {value!r}: {p!r} is not a valid Windows folder name", hint=ROOT_HINT)
        return cls(windows, anchor, parts)

    def join(self, rel: PurePosixPath) -> tuple[str, ...]:
        """The parts of ``rel`` (relative, may start with ``..``) placed under this root."""
        stack = list(self.parts)
        for p in rel.parts:
            if p in ("", "."):
                continue
            if p == "..":
                if not stack:
                    raise InputError(f"{rel} leads above {self.text()}",
                                     hint="package the media (--package) or choose a deeper target root")
                stack.pop()
                continue
            stack.append(p)
        return tuple(stack)

    def text(self, parts: tuple[str, ...] | None = None, *, native: bool = False) -> str:
        parts = self.parts if parts is None else parts
        sep = "\\" if (native and self.windows) else "/"
        anchor = self.anchor.replace("/", sep) if self.windows else self.anchor
        if not parts:
            return anchor + sep if self.windows else "/"
        return anchor + sep + sep.join(parts)

    def url(self, parts: tuple[str, ...]) -> str:
        if self.windows:
            return PureWindowsPath(self.text(parts)).as_uri()
        return PurePosixPath(self.text(parts)).as_uri()


@dataclass(slots=True)
class MediaPlan:
    """Where each media file of a timeline is written as being, after packaging if asked.

    Build it with :meth:`build` (which copies or links the media when packaging), then ask
    :meth:`path`, :meth:`url` and :meth:`folder` while writing.
    """

    anchor: Path  # the local folder that stands for the target root (holds the export folder)
    root: TargetRoot | None = None
    placed: dict[str, Path] = field(default_factory=dict)  # timeline media path -> local file used
    notes: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, tl: Timeline, export_dir: Path, options: ExportOptions | None = None) -> MediaPlan:
        opts = (options or ExportOptions()).check()
        export_dir = Path(os.path.abspath(export_dir))
        root = TargetRoot.parse(opts.target_root) if opts.target_root is not None else None
        plan = cls(anchor=export_dir.parent, root=root)
        sources = list(dict.fromkeys(c.media.path for t in tl.tracks for c in t.clips if c.media.path))
        for src in sources:
            plan.placed[src] = Path(os.path.abspath(src))
        if opts.package:
            plan._package(sources, export_dir / MEDIA_FOLDER, opts.package)
        elif root is not None:
            outside = [p for p in dict.fromkeys(plan.placed.values()) if not _inside(p, export_dir)]
            if outside:
                shown = "; ".join(plan.path(str(p)) for p in outside[:3])
                plan.notes.append(f"{len(outside)} media file(s) are not in the export (no --package): the editing "
                                  f"machine must have them at {shown}{' …' if len(outside) > 3 else ''}")
        if opts.package and root is None:
            plan.notes.append("the packaged media are named by this machine's paths: give --target-root for the "
                              "editing machine so the timeline finds them there")
        if root is not None:  # check every path now, so nothing is half-written
            for src in sources:
                plan.path(src)
        return plan

    # -- naming ------------------------------------------------------------------------------
    def local(self, media_path: str) -> Path:
        return self.placed.get(media_path) or Path(os.path.abspath(media_path))

    def _parts(self, local: Path) -> tuple[str, ...]:
        assert self.root is not None
        rel = PurePosixPath(Path(os.path.relpath(local, self.anchor)).as_posix())
        parts = self.root.join(rel)
        if self.root.windows:
            for p in parts[len(self.root.parts):]:
                if _WIN_BAD.search(p) or p.endswith((".", " ")):
                    raise InputError(f"{str(local)!r} cannot be named on Windows ({p!r})",
                                     hint="package the media (--package), which gives them safe names")
        return parts

    def path(self, media_path: str) -> str:
        """The media file's path as the timeline writes it (on the editing machine when targeted)."""
        if not media_path:
            return ""
        local = self.local(media_path)
        return str(local) if self.root is None else self.root.text(self._parts(local))

    def url(self, media_path: str) -> str:
        """The same as a ``file://`` URL (percent-encoded)."""
        if not media_path:
            return ""
        local = self.local(media_path)
        return local.as_uri() if self.root is None else self.root.url(self._parts(local))

    def folder(self, local: Path, *, native: bool = False) -> str:
        """A local folder (the export folder or its parent) as written for the editing machine.
        ``native``: Windows backslashes (剪映's ``draft_root_path``)."""
        local = Path(os.path.abspath(local))
        if self.root is None:
            return str(local)
        return self.root.text(self._parts(local), native=native)

    # -- packaging ---------------------------------------------------------------------------
    def _package(self, sources: list[str], folder: Path, mode: str) -> None:
        missing = [s for s in sources if not self.placed[s].is_file()]
        if missing:
            raise InputError(f"{len(missing)} media file(s) of the timeline are missing: {', '.join(missing[:3])}",
                             hint="re-run the stage that made them, or export without --package")
        folder.mkdir(parents=True, exist_ok=True)
        names: dict[Path, Path] = {}  # one copy per file, however often it is used
        taken: set[str] = set()
        for src in sources:
            real = self.placed[src]
            if real not in names:
                names[real] = folder / _unique(_safe_file_name(real.name), taken)
        need = sum(r.stat().st_size for r, d in names.items() if not _up_to_date(r, d, mode))
        free = shutil.disk_usage(folder).free
        if mode == "copy" and need > free:
            raise MediaError(f"packaging needs {need / 1e6:.1f} MB but {folder} has {free / 1e6:.1f} MB free",
                             hint="free some space, or package with hard links (--package link) on the same disk")
        linked_fallback = 0
        for real, dst in names.items():
            if _up_to_date(real, dst, mode):
                continue
            if mode == "link" and _link(real, dst):
                continue
            if mode == "link":
                linked_fallback += 1
            _copy(real, dst)
        if linked_fallback:
            note = (f"{linked_fallback} media file(s) could not be hard-linked into {folder} (another disk or a "
                    "file system without links): copied instead")
            self.notes.append(note)  # export_timeline logs every note as a warning
        for src in sources:
            self.placed[src] = names[self.placed[src]]
        log.info("packaged %d media file(s) into %s (%s)", len(names), folder, mode)


def path_from_url(url: str) -> str:
    """The path a ``file://`` URL (or a plain path) names: ``file:///C:/x`` -> ``C:/x``,
    ``file://server/share/x`` -> ``//server/share/x``, ``file:///Users/x`` -> ``/Users/x``."""
    if not url.startswith("file:"):
        return unquote(url)
    u = urlparse(url)
    path = unquote(u.path)
    if len(path) > 2 and path[0] == "/" and path[2] == ":":
        return path[1:]
    if u.netloc and u.netloc != "localhost":
        return f"//{u.netloc}{path}"
    return path


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
    except ValueError:
        return False
    return True


def _safe_file_name(name: str) -> str:
    """A file name every OS accepts: letters (any script), digits, '_', '-', '.'; at most 64."""
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    ext = _NAME_BAD.sub("", ext)[:10].lower()
    stem = _NAME_BAD.sub("_", stem).strip("._-")[: 63 - len(ext)] or "media"
    out = f"{stem}.{ext}" if ext else stem
    return out if is_safe_name(out) else (f"media.{ext}" if ext else "media")


def _unique(name: str, taken: set[str]) -> str:
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    out, n = name, 1
    while out.lower() in taken:  # Windows and macOS file names ignore case
        n += 1
        out = f"{stem}_{n}.{ext}" if ext else f"{stem}_{n}"
    taken.add(out.lower())
    return out


def _up_to_date(src: Path, dst: Path, mode: str) -> bool:
    try:
        if mode == "link" and os.path.samefile(src, dst):
            return True
        s, d = src.stat(), dst.stat()
    except OSError:
        return False
    return mode == "copy" and s.st_size == d.st_size and s.st_mtime_ns == d.st_mtime_ns


def _link(src: Path, dst: Path) -> bool:
    tmp = dst.with_name(f".{dst.name}.part")
    try:
        tmp.unlink(missing_ok=True)
        os.link(src, tmp)
        os.replace(tmp, dst)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        log.debug("hard link %s -> %s failed: %s", src, dst, e)
        return False
    return True


def _copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.part")
    try:
        shutil.copyfile(src, tmp)
        shutil.copystat(src, tmp)
        os.replace(tmp, dst)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        why = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        raise MediaError(f"cannot copy {src} into the package at {dst}: {why}",
                         hint="free some space or choose another output folder") from e
