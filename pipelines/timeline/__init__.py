"""Timeline exports for editors: OTIO, FCPXML, FCP7 XML, CMX3600 EDL and 剪映 drafts.

One registry, :data:`EXPORTERS`, names every format (third-party formats register as
``exporter.<name>`` in the ``reelforge.plugins`` entry-point group). :func:`export_timeline`
plans where each media file will be (``target_root``), packages the media (``package``) and
hands the timeline to the exporter::

    export_timeline(tl, "out/ep01_jianying", "jianying",
                    target_root="C:/Users/NAME/AppData/Local/JianyingPro/User Data/Projects/com.lveditor.draft",
                    package="copy")
"""

from __future__ import annotations

import logging
from pathlib import Path

from core.errors import InputError
from core.registry import Registry
from core.timeline import Timeline
from pipelines.timeline.base import TimelineExporter
from pipelines.timeline.portable import PACKAGE_MODES, ExportOptions, MediaPlan

log = logging.getLogger(__name__)

EXPORTERS: Registry[TimelineExporter] = Registry("exporter", "timeline exports for editors")
EXPORTERS.add("otio", "pipelines.timeline.otio_io:OtioExporter",
              description="OpenTimelineIO JSON (.otio), every track, subtitles as a text track",
              extra="edit", requires=("opentimelineio",))
EXPORTERS.add("fcpxml", "pipelines.timeline.fcpxml:FcpxmlExporter",
              description="Final Cut Pro / DaVinci Resolve (FCPXML 1.9), subtitles as captions")
EXPORTERS.add("fcp7", "pipelines.timeline.fcp7:Fcp7Exporter",
              description="Premiere Pro / FCP7 / Resolve (xmeml 4), subtitles as text items")
EXPORTERS.add("edl", "pipelines.timeline.edl:EdlExporter",
              description="CMX3600 EDL: the picture track, unique reel names",
              extra="edit", requires=("opentimelineio", "otio_cmx3600_adapter"))
EXPORTERS.add("jianying", "pipelines.timeline.jianying:JianyingExporter",
              description="剪映专业版 5.x draft folder (unencrypted), subtitles as text")

# the built-in formats, in the order the CLI lists them (plug-ins add to EXPORTERS)
EXPORT_FORMATS = ("otio", "fcpxml", "fcp7", "edl", "jianying")

__all__ = ["EXPORTERS", "EXPORT_FORMATS", "PACKAGE_MODES", "ExportOptions", "MediaPlan", "TimelineExporter",
           "export_timeline", "exporter"]


def exporter(fmt: str) -> TimelineExporter:
    """The exporter of ``fmt``; an unknown name is an :class:`InputError` listing the known ones."""
    if fmt not in EXPORTERS:
        raise InputError(f"unknown export format {fmt!r}", hint=f"use one of {', '.join(EXPORTERS.names())}")
    return EXPORTERS.create(fmt)


def export_timeline(tl: Timeline, dst: str | Path, fmt: str, *, target_root: str | None = None,
                    package: str | None = None) -> tuple[Path, list[str]]:
    """Write ``tl`` as ``fmt`` to ``dst`` (a file, or the draft folder for 剪映).

    ``package`` ("copy" or "link") puts the media into ``media/`` of the export folder (the folder
    holding ``dst``; for 剪映 the draft folder); ``target_root`` is the folder on the editing
    machine that will hold the export folder, and every path is written as it will be there.
    Returns the file (or folder) and what the format could not keep.
    """
    exp = exporter(fmt)
    tl.validate()
    out = Path(dst)
    if exp.folder and out.exists() and not out.is_dir():
        raise InputError(f"{str(out)!r} exists and is not a folder", hint=f"a {fmt} export is a folder")
    if not exp.folder and out.is_dir():
        raise InputError(f"{str(out)!r} is a folder", hint=f"give a file name ending in {exp.suffix}")
    plan = MediaPlan.build(tl, out if exp.folder else out.parent, ExportOptions(target_root, package))
    notes = list(plan.notes) + exp.write(tl, out, plan)
    for note in notes:
        log.warning("%s export: %s", fmt, note)
    return out, notes
