"""Subtitle files from timed script lines (SRT now; styled ASS comes with the cut agent).

Times come from integer frames at a rational fps, so they never drift.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from core.media import frames_to_timecode


@dataclass(frozen=True, slots=True)
class Cue:
    start: int  # first frame shown
    end: int  # first frame no longer shown
    text: str
    speaker: str = ""


def srt_text(cues: Iterable[Cue], fps: Fraction) -> str:
    blocks = []
    for n, cue in enumerate(cues, 1):
        if cue.end <= cue.start:
            continue
        blocks.append(f"{n}\n{frames_to_timecode(cue.start, fps)} --> {frames_to_timecode(cue.end, fps)}\n{cue.text}\n")
    return "\n".join(blocks)


def write_srt(path: str | Path, cues: Iterable[Cue], fps: Fraction) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(srt_text(cues, fps), encoding="utf-8")
    tmp.replace(p)
    return p


def parse_srt(text: str) -> list[tuple[str, str, str]]:
    """(start, end, text) per cue; enough to check what we wrote."""
    cues = []
    for block in text.strip().split("\n\n"):
        rows = block.strip().splitlines()
        if len(rows) >= 3 and "-->" in rows[1]:
            start, _, end = rows[1].partition(" --> ")
            cues.append((start.strip(), end.strip(), "\n".join(rows[2:])))
    return cues
