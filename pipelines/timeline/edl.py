"""CMX3600 EDL export through ``otio-cmx3600-adapter``, with reel names an editor can relink by.

An EDL holds one picture track; each event names its source by a reel of at most 8 characters.
Cutting file names to 8 characters makes many sources share a reel (``e01s01k00`` and
``e01s01k01`` both become ``e01s01k0``), and a relink by reel then links them all to one file.
:func:`reel_names` gives every source file its own reel: the file's name when it fits (letters and
digits, upper case), else three letters of it and five characters of a hash of the whole name;
the same file gets the same reel in every export. The full file name is in each event's
``* FROM CLIP NAME:`` comment and its location in ``* FROM CLIP:``.

Header lines are ASCII (``TITLE:`` and ``FCM:``): many EDL readers take the header byte by byte.
A title with no ASCII letters in it becomes ``EP01`` (the episode) or ``REELFORGE``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from core.timeline import Timeline
from pipelines.timeline.base import TimelineExporter
from pipelines.timeline.otio_io import _NS, _otio, to_otio, write_text
from pipelines.timeline.portable import MediaPlan, path_from_url

REEL_LEN = 8
_RESERVED_REELS = {"AX", "BL", "BLACK", "BARS"}  # mean "aux source", "black" and "bars" in CMX3600
_B36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _file_name(path: str) -> str:
    return PurePosixPath(path.replace("\\", "/")).name


def _ascii_alnum(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", unicodedata.normalize("NFKD", text)).upper()


def _hash36(text: str, n: int) -> str:
    v = int.from_bytes(hashlib.sha1(text.encode("utf-8")).digest()[:8], "big")
    out = ""
    for _ in range(n):
        v, r = divmod(v, 36)
        out += _B36[r]
    return out


def reel_names(paths: Iterable[str]) -> dict[str, str]:
    """A short (<= 8 characters), stable, unique ASCII reel name for each source path."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for path in sorted(set(paths), key=lambda p: (_file_name(p), p)):
        name = _file_name(path)
        stem = name.rsplit(".", 1)[0] if "." in name else name
        clean = _ascii_alnum(stem)
        reel = clean if 0 < len(clean) <= REEL_LEN and clean not in _RESERVED_REELS else ""
        salt = 0
        while not reel or reel in used:
            reel = (clean[:3] or "R") + _hash36(f"{name}|{salt}", REEL_LEN - len(clean[:3] or "R"))
            salt += 1
        used.add(reel)
        out[path] = reel
    return out


def ascii_title(tl: Timeline) -> str:
    """The timeline's name in printable ASCII (at most 70 characters, as CMX3600 allows)."""
    text = unicodedata.normalize("NFKD", tl.name)
    text = re.sub(r"\s+", " ", "".join(ch for ch in text if " " <= ch <= "~")).strip()
    if sum(ch.isalpha() for ch in text) >= 2:
        return text[:70]
    episode = tl.metadata.get("episode", "")
    return f"EP{int(episode):02d}" if episode.isdigit() else "REELFORGE"


class EdlExporter(TimelineExporter):
    name = "edl"
    description = "CMX3600 EDL"
    suffix = ".edl"

    def write(self, tl: Timeline, dst: Path, media: MediaPlan) -> list[str]:
        otio = _otio()
        notes: list[str] = []
        ot = _picture_track_only(to_otio(tl, fades=False, notes=notes, media=media, subtitles=False), notes)
        if tl.captions:
            notes.append(f"{len(tl.captions)} subtitle(s) are not in the EDL (CMX3600 has no place for them): "
                         "use the SRT written beside the rough cut")
        clips = list(ot.find_clips())
        reels = reel_names(_source(c) for c in clips)
        for c in clips:
            target = _source(c)
            c.metadata["cmx_3600"] = {"reel": reels[target]}
            c.name = _file_name(target)  # the full source name, in "* FROM CLIP NAME:"
        ot.name = ascii_title(tl)
        text = otio.adapters.write_to_string(ot, adapter_name="cmx_3600", rate=float(tl.fps), style="avid")
        title_line = f"TITLE: {ot.name}\n"
        if text.startswith(title_line):  # frame-count mode right after the title, as CMX3600 lays it out
            text = title_line + "FCM: NON-DROP FRAME\n" + text[len(title_line):]
        write_text(dst, text)
        return notes


def _source(clip: Any) -> str:
    """The path of a clip's media as written (on the editing machine when targeted)."""
    return path_from_url(getattr(clip.media_reference, "target_url", "") or "") or clip.name


def _picture_track_only(ot: Any, notes: list[str]) -> Any:
    """CMX3600 holds one picture track: keep the first video track."""
    otio = _otio()
    video = [t for t in ot.tracks if t.kind == otio.schema.TrackKind.Video]
    if len(ot.tracks) > 1:
        notes.append(f"an EDL holds one picture track: kept {video[0].name!r} of {len(ot.tracks)} tracks"
                     if video else "an EDL holds one picture track")
    new = otio.schema.Timeline(name=ot.name)
    new.global_start_time = ot.global_start_time
    for tr in video[:1]:
        ot.tracks.remove(tr)
        new.tracks.append(tr)
    new.metadata[_NS] = dict(ot.metadata.get(_NS, {}) or {})
    return new
