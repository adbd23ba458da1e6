"""Timeline exports: OTIO and its adapters (FCPXML, FCP7 XML, CMX3600 EDL) and 剪映 drafts."""

from __future__ import annotations

from pathlib import Path

from core.errors import InputError
from core.timeline import Timeline

EXPORT_FORMATS = ("otio", "fcpxml", "fcp7", "edl", "jianying")
SUFFIX = {"otio": ".otio", "fcpxml": ".fcpxml", "fcp7": ".xml", "edl": ".edl", "jianying": ""}


def export_timeline(tl: Timeline, dst: str | Path, fmt: str) -> tuple[Path, list[str]]:
    """Write ``tl`` as ``fmt``; returns the file (or draft folder) and what the format could not keep."""
    if fmt == "jianying":
        from pipelines.timeline.jianying import write_draft

        return write_draft(tl, dst)
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"unknown export format {fmt!r}", hint=f"use one of {', '.join(EXPORT_FORMATS)}")
    from pipelines.timeline.otio_io import write_timeline

    return write_timeline(tl, dst, fmt)
