"""The edit timeline: plain data, integer frames at a rational frame rate.

One model for every export (OTIO, FCPXML, FCP7 XML, CMX3600 EDL, 剪映 drafts) and for our own
renderer. A :class:`Timeline` has a frame rate (a :class:`~fractions.Fraction`), a picture size,
tracks of clips, transitions between adjacent clips, captions and markers. Every time is an
integer frame count on the timeline's rate; a clip's ``source_in`` counts frames of its media at
the media's own rate, so footage at another rate stays exact.

A video track's clips give picture only; the sound of a timeline is what its audio tracks place
(a shot's dialogue comes from its WAV on the dialogue track). The renderer mixes only the audio
tracks and every export writes video clips without their sound, so each sound plays once.

Clips on a track never overlap; a gap is simply a hole between two clips. A transition sits on
the cut between two clips that touch (or at a track's head/tail for fades from/to black) and
spans ``before`` frames before the cut and ``after`` frames after it, the way OTIO and the
editors describe it: the neighbouring clips are extended under it with media handles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from core.errors import InputError
from core.files import atomic_write_text

TRACK_KINDS = ("video", "audio")
TRANSITION_KINDS = ("dissolve", "fade_in", "fade_out", "dip_to_black")

# the rough cut's transitions, in frames (agents.cut.RoughCutSettings defaults to these)
SCENE_DISSOLVE = 8
EPISODE_FADE = 12


def cut_keyframes(frames: int, *, head: int = 0, tail: int = 0) -> tuple[int, ...]:
    """Where a shot of ``frames`` frames needs keyframes so an edit can copy all but its transitions.

    ``head``: frames at its start that a transition will cover (a dissolve in, or the episode's
    fade-in); ``tail``: the same at its end. The first frame is always a keyframe.
    """
    return tuple(sorted({k for k in (head, frames - tail) if 0 < k < frames}))


def fps_text(fps: Fraction) -> str:
    return f"{fps.numerator}/{fps.denominator}" if fps.denominator != 1 else str(fps.numerator)


@dataclass(frozen=True, slots=True)
class MediaRef:
    """A media file a clip takes its picture and/or sound from."""

    path: str
    fps: Fraction  # the media's own rate (audio-only media: the timeline's)
    frames: int  # length in media frames (0 when unknown)
    width: int = 0
    height: int = 0
    has_video: bool = True
    has_audio: bool = True
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or Path(self.path).stem


@dataclass(frozen=True, slots=True)
class Clip:
    """``duration`` timeline frames of ``media``, placed at timeline frame ``start``."""

    media: MediaRef
    start: int  # record in, timeline frames
    duration: int  # timeline frames
    source_in: int = 0  # first media frame used (media frames at media.fps)
    name: str = ""
    gain_db: float = 0.0  # audio clips: level; the renderer applies it
    # audio clips: (timeline frame, gain dB) keyframes (ducking); linear in between
    envelope: tuple[tuple[int, float], ...] = ()

    @property
    def end(self) -> int:
        return self.start + self.duration

    def source_frame(self, timeline_frame: int, timeline_fps: Fraction) -> int:
        """The media frame shown at ``timeline_frame`` (exact rational mapping, floor)."""
        t = Fraction(timeline_frame - self.start) / timeline_fps
        return self.source_in + int(t * self.media.fps)

    @property
    def label(self) -> str:
        return self.name or self.media.label


@dataclass(frozen=True, slots=True)
class Transition:
    """A transition on the cut at timeline frame ``at`` of its track."""

    kind: str  # dissolve | fade_in | fade_out | dip_to_black
    at: int  # the cut frame (first frame of the incoming clip); track start/end for fades
    before: int  # frames of the transition before the cut
    after: int  # frames after the cut

    @property
    def start(self) -> int:
        return self.at - self.before

    @property
    def end(self) -> int:
        return self.at + self.after


@dataclass(frozen=True, slots=True)
class Track:
    kind: str  # video | audio
    name: str
    clips: tuple[Clip, ...] = ()
    transitions: tuple[Transition, ...] = ()
    role: str = ""  # audio: dialogue | music | effects

    @property
    def end(self) -> int:
        return max((c.end for c in self.clips), default=0)


@dataclass(frozen=True, slots=True)
class Caption:
    start: int
    end: int
    text: str
    speaker: str = ""


@dataclass(frozen=True, slots=True)
class Marker:
    frame: int
    name: str
    duration: int = 0
    color: str = "RED"
    note: str = ""


@dataclass(frozen=True, slots=True)
class Timeline:
    name: str
    fps: Fraction
    width: int
    height: int
    tracks: tuple[Track, ...] = ()
    captions: tuple[Caption, ...] = ()
    markers: tuple[Marker, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def duration(self) -> int:
        return max((t.end for t in self.tracks), default=0)

    @property
    def video_tracks(self) -> list[Track]:
        return [t for t in self.tracks if t.kind == "video"]

    @property
    def audio_tracks(self) -> list[Track]:
        return [t for t in self.tracks if t.kind == "audio"]

    def cuts(self) -> list[tuple[str, int, int, int, str]]:
        """``(track, start, end, source_in, media)`` for every clip: what a round trip must keep."""
        return [(t.name, c.start, c.end, c.source_in, Path(c.media.path).name) for t in self.tracks for c in t.clips]

    def validate(self) -> Timeline:
        if self.fps <= 0:
            raise InputError(f"timeline fps must be positive, got {self.fps}")
        if self.width <= 0 or self.height <= 0:
            raise InputError(f"timeline size {self.width}x{self.height} must be positive")
        for track in self.tracks:
            if track.kind not in TRACK_KINDS:
                raise InputError(f"track {track.name!r} has kind {track.kind!r}", hint=f"use one of {TRACK_KINDS}")
            prev_end = 0
            for clip in sorted(track.clips, key=lambda c: c.start):
                if clip.duration <= 0 or clip.start < 0 or clip.source_in < 0:
                    raise InputError(f"clip {clip.label!r} on track {track.name!r} has start {clip.start}, "
                                     f"duration {clip.duration}, source_in {clip.source_in}: all must be >= 0 "
                                     "and the duration > 0")
                if clip.start < prev_end:
                    raise InputError(f"clip {clip.label!r} on track {track.name!r} starts at frame {clip.start}, "
                                     f"before the previous clip ends ({prev_end})", hint="clips on a track may not overlap")
                prev_end = clip.end
            for tr in track.transitions:
                if tr.kind not in TRANSITION_KINDS:
                    raise InputError(f"transition kind {tr.kind!r} on track {track.name!r}",
                                     hint=f"use one of {TRANSITION_KINDS}")
                if tr.before < 0 or tr.after < 0 or tr.before + tr.after <= 0:
                    raise InputError(f"transition at frame {tr.at} on track {track.name!r} has no length "
                                     f"(before {tr.before}, after {tr.after})")
        return self

    # -- JSON --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        media: dict[str, MediaRef] = {}
        for t in self.tracks:
            for c in t.clips:
                media.setdefault(_media_key(c.media), c.media)
        return {
            "format": "reelforge-timeline",
            "version": 1,
            "name": self.name,
            "fps": fps_text(self.fps),
            "width": self.width,
            "height": self.height,
            "media": {k: {"path": m.path, "fps": fps_text(m.fps), "frames": m.frames, "width": m.width,
                          "height": m.height, "has_video": m.has_video, "has_audio": m.has_audio, "name": m.name}
                      for k, m in media.items()},
            "tracks": [{
                "kind": t.kind, "name": t.name, "role": t.role,
                "clips": [{"media": _media_key(c.media), "start": c.start, "duration": c.duration,
                           "source_in": c.source_in, "name": c.name, "gain_db": c.gain_db,
                           "envelope": [list(p) for p in c.envelope]} for c in t.clips],
                "transitions": [{"kind": tr.kind, "at": tr.at, "before": tr.before, "after": tr.after}
                                for tr in t.transitions],
            } for t in self.tracks],
            "captions": [{"start": c.start, "end": c.end, "text": c.text, "speaker": c.speaker} for c in self.captions],
            "markers": [{"frame": m.frame, "name": m.name, "duration": m.duration, "color": m.color, "note": m.note}
                        for m in self.markers],
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timeline:
        try:
            media = {k: MediaRef(path=m["path"], fps=Fraction(m["fps"]), frames=int(m["frames"]),
                                 width=int(m.get("width", 0)), height=int(m.get("height", 0)),
                                 has_video=bool(m.get("has_video", True)), has_audio=bool(m.get("has_audio", True)),
                                 name=m.get("name", "")) for k, m in data["media"].items()}
            tracks = tuple(Track(
                kind=t["kind"], name=t["name"], role=t.get("role", ""),
                clips=tuple(Clip(media=media[c["media"]], start=int(c["start"]), duration=int(c["duration"]),
                                 source_in=int(c.get("source_in", 0)), name=c.get("name", ""),
                                 gain_db=float(c.get("gain_db", 0.0)),
                                 envelope=tuple((int(f), float(g)) for f, g in c.get("envelope", [])))
                            for c in t["clips"]),
                transitions=tuple(Transition(tr["kind"], int(tr["at"]), int(tr["before"]), int(tr["after"]))
                                  for tr in t.get("transitions", [])),
            ) for t in data["tracks"])
            return cls(
                name=data.get("name", ""), fps=Fraction(data["fps"]), width=int(data["width"]),
                height=int(data["height"]), tracks=tracks,
                captions=tuple(Caption(int(c["start"]), int(c["end"]), c["text"], c.get("speaker", ""))
                               for c in data.get("captions", [])),
                markers=tuple(Marker(int(m["frame"]), m["name"], int(m.get("duration", 0)), m.get("color", "RED"),
                                     m.get("note", "")) for m in data.get("markers", [])),
                metadata={str(k): str(v) for k, v in data.get("metadata", {}).items()},
            ).validate()
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
            raise InputError(f"timeline JSON is malformed: {e!r}",
                             hint="re-create it with `reelforge cut rough PROJECT`") from e

    def save(self, path: str | Path) -> Path:
        return atomic_write_text(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Timeline:
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError as e:
            raise InputError(f"timeline {str(p)!r} does not exist", hint="run `reelforge cut rough PROJECT` first") from e
        except json.JSONDecodeError as e:
            raise InputError(f"timeline {str(p)!r} is not valid JSON: {e}") from e
        return cls.from_dict(data)

    def with_tracks(self, tracks: list[Track] | tuple[Track, ...]) -> Timeline:
        return replace(self, tracks=tuple(tracks))


def _media_key(m: MediaRef) -> str:
    return f"{m.label}|{m.path}"


def seconds_to_frames(seconds: Fraction, fps: Fraction) -> int:
    """Nearest frame to an exact time (ties go up, never accumulated floats)."""
    x = seconds * fps
    return int(x + Fraction(1, 2)) if x >= 0 else -int(-x + Fraction(1, 2))


def picture_pieces(track: Track, fps: Fraction) -> tuple[list[tuple[int, int, str, int]], list[tuple[int, int]]]:
    """What a track shows, independent of how a format writes it: ``(start, end, media file name,
    media frame at start)`` for every run of frames outside transitions, and the transition spans.

    Two timelines whose pieces and spans are equal make the same cuts to the frame (an EDL writes
    a dissolve as clip A up to the dissolve's start and clip B from there; OTIO as two clips that
    touch at the cut with the transition over both: the pieces are the same)."""
    spans = sorted((t.start, t.end) for t in track.transitions)
    pieces: list[tuple[int, int, str, int]] = []
    for clip in sorted(track.clips, key=lambda c: c.start):
        cuts = [clip.start, clip.end]
        for s, e in spans:
            cuts += [min(max(s, clip.start), clip.end), min(max(e, clip.start), clip.end)]
        cuts = sorted(set(cuts))
        for a, b in zip(cuts, cuts[1:], strict=False):
            if any(s <= a and b <= e for s, e in spans):
                continue
            name = Path(clip.media.path).name
            src = clip.source_frame(a, fps)
            if pieces and pieces[-1][1] == a and pieces[-1][2] == name and \
                    pieces[-1][3] + int((Fraction(a - pieces[-1][0]) / fps) * clip.media.fps) == src:
                pieces[-1] = (pieces[-1][0], b, name, pieces[-1][3])
            else:
                pieces.append((a, b, name, src))
    return pieces, spans
