"""What every timeline exporter is: one small class with one required method.

An exporter writes a :class:`~core.timeline.Timeline` to a file (or, for 剪映, a draft folder)
and names every media file through a :class:`~pipelines.timeline.portable.MediaPlan`, which
knows where each file will be on the editing machine (``--target-root``) and whether it was
copied into the export (``--package``). Exporters are registered in
:data:`pipelines.timeline.EXPORTERS`; third-party ones come in through the ``reelforge.plugins``
entry-point group as ``exporter.<name>``.

Two rules hold in every format:

* **Each sound once.** A video track's clips give picture only: the sound of a timeline is what
  its audio tracks place (our renderer mixes only those), so a shot's video is written without
  its audio (a muted 剪映 segment, ``srcEnable="video"`` in FCPXML, a video-only clip item
  elsewhere) and the dialogue plays once, from the audio track.
* **Subtitles travel** wherever the format has a place for them; where it has none the exporter
  says so in its notes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from core.timeline import Timeline
    from pipelines.timeline.portable import MediaPlan


class TimelineExporter(ABC):
    """Writes a timeline for an editor. Subclasses set the class attributes and ``write``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    suffix: ClassVar[str] = ""  # the file suffix (".fcpxml"); "" for a folder format
    folder: ClassVar[bool] = False  # the export is a folder (a 剪映 draft): its own package

    def default_name(self, stem: str) -> str:
        """The export's file (or folder) name for an episode stem such as ``ep01``."""
        return f"{stem}_{self.name}" if self.folder else f"{stem}{self.suffix}"

    @abstractmethod
    def write(self, tl: Timeline, dst: Path, media: MediaPlan) -> list[str]:
        """Write ``tl`` to ``dst`` naming media through ``media``; return what could not be kept."""
