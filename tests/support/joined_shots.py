"""Labelled test material: join shots cut from real footage with known cuts, dissolves and fades.

Each shot is a frame range of a real video that holds no transition; between shots we put a
hard cut, a linear cross-dissolve or a fade through black, and inside a shot optionally a
two-frame camera flash (which must *not* be detected). The labels are exact by construction.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from core.media import VideoWriter, iter_frames
from pipelines.detect.base import Boundary


@dataclass(frozen=True, slots=True)
class ShotSpec:
    path: str
    start: int  # frame index as core.media.iter_frames numbers it
    end: int
    transition: str = "cut"  # how this shot is entered: cut | dissolve | fade (ignored for the first)
    length: int = 0  # dissolve frames, or fade-out + fade-in frames
    black: int = 0  # fade: black frames between fade-out and fade-in
    flash_at: int = -1  # offset in the shot of a two-frame flash, -1 for none


def _shot_frames(spec: ShotSpec, size: tuple[int, int]) -> Iterator[np.ndarray]:
    for fr in iter_frames(spec.path, start=spec.start, end=spec.end, size=size):
        yield fr.image


def build_joined(shots: Sequence[ShotSpec], dst: str | Path, *, size: tuple[int, int] = (640, 360),
                 fps: Fraction = Fraction(25), crf: int = 20) -> list[Boundary]:
    """Write the joined video and return its labels (also saved next to it as ``.json``)."""
    w, h = size
    labels: list[Boundary] = []
    written = 0
    with VideoWriter(dst, w, h, fps, crf=crf, preset="veryfast") as writer:
        held: list[np.ndarray] = []  # the tail of the previous shot, kept for its transition
        for n, spec in enumerate(shots):
            frames = list(_shot_frames(spec, size))
            if len(frames) < 4:
                raise ValueError(f"shot {n} ({spec.path} {spec.start}-{spec.end}) decoded only {len(frames)} frames")
            if 0 <= spec.flash_at < len(frames) - 2:
                for k in (spec.flash_at, spec.flash_at + 1):
                    frames[k] = (frames[k].astype(np.float32) * 0.25 + 255 * 0.75).astype(np.uint8)
            nxt = shots[n + 1] if n + 1 < len(shots) else None
            tail = 0
            if nxt is not None and nxt.transition == "dissolve":
                tail = nxt.length
            elif nxt is not None and nxt.transition == "fade":
                tail = nxt.length // 2
            body = frames[:len(frames) - tail] if tail else frames
            head_used = 0
            if n > 0 and spec.transition == "dissolve":
                k = spec.length
                start = written
                for i in range(k):
                    a = (i + 1) / (k + 1)
                    mix = held[i].astype(np.float32) * (1 - a) + body[i].astype(np.float32) * a
                    writer.write(np.clip(mix + 0.5, 0, 255).astype(np.uint8))
                    written += 1
                labels.append(Boundary(start + k // 2, "dissolve", start, start + k - 1))
                head_used = k
            elif n > 0 and spec.transition == "fade":
                out_len = len(held)
                in_len = spec.length - out_len
                start = written
                for i, img in enumerate(held):
                    a = 1 - (i + 1) / (out_len + 1)
                    writer.write((img.astype(np.float32) * a + 0.5).astype(np.uint8))
                    written += 1
                black = np.zeros((h, w, 3), np.uint8)
                for _ in range(spec.black):
                    writer.write(black)
                    written += 1
                first_new = written
                for i in range(in_len):
                    a = (i + 1) / (in_len + 1)
                    writer.write((body[i].astype(np.float32) * a + 0.5).astype(np.uint8))
                    written += 1
                labels.append(Boundary(first_new, "fade", start, written - 1))
                head_used = in_len
            elif n > 0:
                labels.append(Boundary(written, "cut", written - 1, written))
            for img in body[head_used:]:
                writer.write(img)
                written += 1
            held = frames[len(frames) - tail:] if tail else []
    Path(dst).with_suffix(".json").write_text(json.dumps({
        "frames": written, "fps": f"{fps.numerator}/{fps.denominator}",
        "how": "joined from real footage with exact transitions (tests/support/joined_shots.py)",
        "shots": [[s.path, s.start, s.end, s.transition, s.length, s.black, s.flash_at] for s in shots],
        "boundaries": [b.to_dict() for b in labels],
    }, ensure_ascii=False, indent=1), encoding="utf-8")
    return labels
