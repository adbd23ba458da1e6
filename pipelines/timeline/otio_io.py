"""Timeline <-> OpenTimelineIO: the ``otio`` export, and reading OTIO, FCP7 XML and EDL files.

OTIO keeps rates as floats; every time we write is an integer frame count at the timeline's
rate (``float(fps)``) and every time we read back is rounded to the nearest frame, so 23.976 and
29.97 survive the trip to the frame. Adapters: ``otio_json`` ships with opentimelineio;
``fcp_xml`` and ``cmx_3600`` come from the plug-ins ``otio-fcp-adapter`` and
``otio-cmx3600-adapter`` (``pip install 'reelforge[edit]'``). FCPXML is read by our own reader
(:mod:`pipelines.timeline.fcpxml`).

Subtitles: OTIO has no subtitle schema yet, so they travel as a video track named "Subtitles"
whose clips are ``Text`` generators (``GeneratorReference(generator_kind="Text",
parameters={"text": ...})``), the same shape ``otio-fcp-adapter`` gives the text items of an
FCP7 XML file; reading turns such a track back into captions.
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

from core.errors import InputError, MissingDependencyError
from core.timeline import Caption, Clip, Marker, MediaRef, Timeline, Track, Transition, fps_text
from pipelines.timeline.base import TimelineExporter
from pipelines.timeline.portable import MediaPlan, path_from_url

log = logging.getLogger(__name__)

# our format name -> (OTIO adapter name, file suffix, plug-in package)
FORMATS: dict[str, tuple[str, str, str]] = {
    "otio": ("otio_json", ".otio", "opentimelineio"),
    "fcpxml": ("fcpx_xml", ".fcpxml", "otio-fcpx-xml-adapter"),
    "fcp7": ("fcp_xml", ".xml", "otio-fcp-adapter"),
    "edl": ("cmx_3600", ".edl", "otio-cmx3600-adapter"),
}
_NS = "reelforge"


def _otio() -> Any:
    try:
        import opentimelineio as otio
    except ImportError as e:
        raise MissingDependencyError("opentimelineio", "edit") from e
    return otio


def _adapter(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InputError(f"unknown timeline format {fmt!r}", hint=f"use one of {sorted(FORMATS)} or jianying")
    otio = _otio()
    name, _, package = FORMATS[fmt]
    if name not in otio.adapters.available_adapter_names():
        raise InputError(f"the OTIO adapter {name!r} for {fmt} is not installed",
                         hint=f"pip install {package} (or 'reelforge[edit]')")
    return name


def _rt(frames: int, fps: Fraction) -> Any:
    return _otio().opentime.RationalTime(frames, float(fps))


def _frames(rt: Any, fps: Fraction) -> int:
    """Nearest integer frame at ``fps`` of an OTIO RationalTime (whatever its own rate)."""
    return int(math.floor(rt.value * float(fps) / rt.rate + 0.5))


def to_otio(tl: Timeline, *, fades: bool = True, notes: list[str] | None = None, media: MediaPlan | None = None,
            subtitles: bool = True) -> Any:
    """Build an ``otio.schema.Timeline``. ``fades=False`` leaves out fades from/to black (EDL/XML
    adapters cannot place a transition at a track's head or tail); what is left out goes in ``notes``.
    ``media`` names the files (this machine's paths without it); ``subtitles`` adds the captions
    as a "Subtitles" track of text generators."""
    otio = _otio()
    plan = media or MediaPlan(anchor=Path.cwd())
    rate = float(tl.fps)
    out = otio.schema.Timeline(name=tl.name or "ReelForge")
    out.global_start_time = otio.opentime.RationalTime(0, rate)
    out.metadata[_NS] = {
        "fps": fps_text(tl.fps), "width": tl.width, "height": tl.height, "metadata": dict(tl.metadata),
    }
    for track in tl.tracks:
        kind = otio.schema.TrackKind.Video if track.kind == "video" else otio.schema.TrackKind.Audio
        ot = otio.schema.Track(name=track.name, kind=kind)
        ot.metadata[_NS] = {"role": track.role}
        by_cut = {tr.at: tr for tr in track.transitions if tr.kind == "dissolve"}
        heads = {tr.at: tr for tr in track.transitions if tr.kind == "fade_in"}
        tails = {tr.at: tr for tr in track.transitions if tr.kind in ("fade_out",)}
        for left in track.transitions:
            if left.kind == "dip_to_black" or (not fades and left.kind in ("fade_in", "fade_out")):
                if notes is not None:
                    notes.append(f"{left.kind} at frame {left.at} on track {track.name!r} is not exported in this format")
        cursor = 0
        prev: Clip | None = None
        for clip in sorted(track.clips, key=lambda c: c.start):
            if clip.start > cursor:
                ot.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(_rt(0, tl.fps),
                                                                                 _rt(clip.start - cursor, tl.fps))))
                prev = None
            tr: Transition | None = by_cut.get(clip.start) if prev is not None else None
            if tr is None and fades and clip.start in heads:
                tr = heads[clip.start]
            if tr is not None:
                ot.append(otio.schema.Transition(
                    name=tr.kind, transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                    in_offset=_rt(tr.before, tl.fps), out_offset=_rt(tr.after, tl.fps),
                    metadata={_NS: {"kind": tr.kind}}))
            m = clip.media
            ref = otio.schema.ExternalReference(
                target_url=plan.url(m.path),
                available_range=otio.opentime.TimeRange(otio.opentime.RationalTime(0, float(m.fps)),
                                                        otio.opentime.RationalTime(max(m.frames, 1), float(m.fps))))
            ref.name = m.label
            # source in at the media's rate; the duration is what the clip fills on the timeline
            src_start = otio.opentime.RationalTime(clip.source_in, float(m.fps))
            src_dur = (otio.opentime.RationalTime(clip.duration, rate) if m.fps == tl.fps else
                       otio.opentime.RationalTime(clip.duration, rate).rescaled_to(float(m.fps)))
            oc = otio.schema.Clip(name=clip.label, media_reference=ref,
                                  source_range=otio.opentime.TimeRange(src_start, src_dur))
            oc.metadata[_NS] = {
                "media": {"fps": fps_text(m.fps), "frames": m.frames, "width": m.width, "height": m.height,
                          "has_video": m.has_video, "has_audio": m.has_audio, "name": m.name},
                "gain_db": clip.gain_db, "envelope": [list(p) for p in clip.envelope], "name": clip.name,
            }
            ot.append(oc)
            cursor = clip.end
            prev = clip
            if fades and clip.end in tails:
                t2 = tails[clip.end]
                ot.append(otio.schema.Transition(
                    name=t2.kind, transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                    in_offset=_rt(t2.before, tl.fps), out_offset=_rt(t2.after, tl.fps),
                    metadata={_NS: {"kind": t2.kind}}))
        out.tracks.append(ot)
    if subtitles and tl.captions:
        for ot in _subtitle_tracks(tl, otio):
            out.tracks.append(ot)
    if tl.markers:
        target = out.tracks[0] if len(out.tracks) else out.tracks
        for mk in tl.markers:
            target.markers.append(otio.schema.Marker(
                name=mk.name, color=mk.color,
                marked_range=otio.opentime.TimeRange(_rt(mk.frame, tl.fps), _rt(mk.duration, tl.fps)),
                metadata={_NS: {"note": mk.note}}))
    return out


def _subtitle_tracks(tl: Timeline, otio: Any) -> list[Any]:
    """The captions as tracks of ``Text`` generator clips (a second track only where captions overlap)."""
    lanes: list[tuple[int, Any]] = []  # (end frame, track)
    for cap in sorted(tl.captions, key=lambda c: c.start):
        lane = next((i for i, (end, _) in enumerate(lanes) if end <= cap.start), None)
        if lane is None:
            name = "Subtitles" if not lanes else f"Subtitles {len(lanes) + 1}"
            track = otio.schema.Track(name=name, kind=otio.schema.TrackKind.Video)
            track.metadata[_NS] = {"role": "subtitles"}
            lanes.append((0, track))
            lane = len(lanes) - 1
        end, track = lanes[lane]
        if cap.start > end:
            track.append(otio.schema.Gap(source_range=otio.opentime.TimeRange(_rt(0, tl.fps), _rt(cap.start - end, tl.fps))))
        dur = _rt(cap.end - cap.start, tl.fps)
        ref = otio.schema.GeneratorReference(
            name="Text", generator_kind="Text", parameters={"text": cap.text, "speaker": cap.speaker},
            available_range=otio.opentime.TimeRange(_rt(0, tl.fps), dur))
        track.append(otio.schema.Clip(name=cap.text[:40], media_reference=ref,
                                      source_range=otio.opentime.TimeRange(_rt(0, tl.fps), dur)))
        lanes[lane] = (cap.end, track)
    return [t for _, t in lanes]


def _caption_text(item: Any) -> str:
    """A text generator's words: our ``parameters``, else the FCP7 ``str`` parameter the fcp adapter
    keeps in its metadata, else the clip's name."""
    ref = item.media_reference
    params = dict(getattr(ref, "parameters", {}) or {})
    if params.get("text"):
        return str(params["text"])
    fcp = dict((ref.metadata.get("fcp_xml") or {}) if ref is not None else {})
    found = _find_param(fcp, "str")
    return found if found is not None else str(item.name or "")


def _find_param(node: Any, pid: str) -> str | None:
    if isinstance(node, dict):
        if node.get("parameterid") == pid and "value" in node:
            return str(node["value"])
        for v in node.values():
            got = _find_param(v, pid)
            if got is not None:
                return got
    elif isinstance(node, list):
        for v in node:
            got = _find_param(v, pid)
            if got is not None:
                return got
    return None


def _is_subtitle_track(track: Any, otio: Any) -> bool:
    meta = dict(track.metadata.get(_NS, {}) or {})
    if meta.get("role") == "subtitles":
        return True
    clips = [c for c in track if isinstance(c, otio.schema.Clip)]
    return bool(clips) and all(isinstance(c.media_reference, otio.schema.GeneratorReference)
                               and c.media_reference.generator_kind == "Text" for c in clips)


def from_otio(ot: Any, *, fps: Fraction | None = None, width: int = 0, height: int = 0) -> Timeline:
    """Our timeline from an OTIO one. ``fps`` (a Fraction) overrides the float rates of the file;
    without it the rate is taken from our metadata, else recovered from the first clip's float."""
    otio = _otio()
    ours = dict(ot.metadata.get(_NS, {}) or {})
    if fps is None:
        if ours.get("fps"):
            fps = Fraction(ours["fps"])
        else:
            fps = _guess_fps(ot)
    width = width or int(ours.get("width", 0) or 0) or 1920
    height = height or int(ours.get("height", 0) or 0) or 1080
    tracks: list[Track] = []
    subtitles: list[Caption] = []
    for n, ot_track in enumerate(ot.tracks):
        if _is_subtitle_track(ot_track, otio):
            for i, item in enumerate(ot_track):
                if isinstance(item, otio.schema.Clip):
                    rng = ot_track.range_of_child_at_index(i)
                    start = _frames(rng.start_time, fps)
                    params = dict(getattr(item.media_reference, "parameters", {}) or {})
                    subtitles.append(Caption(start, start + _frames(rng.duration, fps), _caption_text(item),
                                             str(params.get("speaker", "") or "")))
            continue
        kind = "video" if ot_track.kind == otio.schema.TrackKind.Video else "audio"
        clips: list[Clip] = []
        transitions: list[Transition] = []
        children = list(ot_track)
        for i, item in enumerate(children):
            if isinstance(item, otio.schema.Transition):
                rng = ot_track.range_of_child_at_index(i)
                at = _frames(rng.start_time, fps) + _frames(item.in_offset, fps)
                meta = dict(item.metadata.get(_NS, {}) or {})
                kind_t = meta.get("kind") or _transition_kind(children, i, otio)
                transitions.append(Transition(kind_t, at, _frames(item.in_offset, fps), _frames(item.out_offset, fps)))
                continue
            if not isinstance(item, otio.schema.Clip):
                continue
            rng = ot_track.range_of_child_at_index(i)
            start = _frames(rng.start_time, fps)
            dur = _frames(rng.duration, fps)
            meta = dict(item.metadata.get(_NS, {}) or {})
            mm = dict(meta.get("media", {}) or {})
            ref = item.media_reference
            path = path_from_url(getattr(ref, "target_url", "") or "") if ref is not None else ""
            mfps = Fraction(mm["fps"]) if mm.get("fps") else fps
            avail = getattr(ref, "available_range", None) if ref is not None else None
            frames = int(mm.get("frames", 0)) or (_frames(avail.duration, mfps) if avail is not None else 0)
            media = MediaRef(path=path, fps=mfps, frames=frames, width=int(mm.get("width", 0)),
                             height=int(mm.get("height", 0)), has_video=bool(mm.get("has_video", kind == "video")),
                             has_audio=bool(mm.get("has_audio", True)),
                             name=mm.get("name", "") or (getattr(ref, "name", "") or ""))
            src = item.source_range.start_time
            if avail is not None:  # some adapters store source times relative to the media's start timecode
                src = src - avail.start_time
            source_in = _frames(src, mfps)
            clips.append(Clip(media=media, start=start, duration=dur, source_in=source_in,
                              name=meta.get("name", item.name if item.name != media.label else ""),
                              gain_db=float(meta.get("gain_db", 0.0)),
                              envelope=tuple((int(f), float(g)) for f, g in meta.get("envelope", []))))
        tmeta = dict(ot_track.metadata.get(_NS, {}) or {})
        tracks.append(Track(kind=kind, name=ot_track.name or f"{kind[0].upper()}{n + 1}", clips=tuple(clips),
                            transitions=tuple(transitions), role=tmeta.get("role", "")))
    markers: list[Marker] = []
    holders = [ot.tracks] + list(ot.tracks)
    for holder in holders:
        for mk in holder.markers:
            meta = dict(mk.metadata.get(_NS, {}) or {})
            markers.append(Marker(_frames(mk.marked_range.start_time, fps), mk.name,
                                  _frames(mk.marked_range.duration, fps), str(mk.color), meta.get("note", "")))
    # older files kept the captions in the timeline's metadata
    old = tuple(Caption(int(s), int(e), str(t), str(sp)) for s, e, t, sp in ours.get("captions", []))
    captions = tuple(sorted(subtitles, key=lambda c: c.start)) or old
    return Timeline(name=ot.name or "", fps=fps, width=width, height=height, tracks=tuple(tracks),
                    captions=captions, markers=tuple(markers),
                    metadata={str(k): str(v) for k, v in (ours.get("metadata") or {}).items()})


def _transition_kind(children: list[Any], i: int, otio: Any) -> str:
    before = children[i - 1] if i > 0 else None
    after = children[i + 1] if i + 1 < len(children) else None
    if before is None or isinstance(before, otio.schema.Gap):
        return "fade_in"
    if after is None or isinstance(after, otio.schema.Gap):
        return "fade_out"
    return "dissolve"


def _guess_fps(ot: Any) -> Fraction:
    otio = _otio()
    for clip in ot.find_clips():
        return nominal_fps(clip.source_range.duration.rate)
    _ = otio
    return Fraction(25)


def nominal_fps(rate: float) -> Fraction:
    """The rational rate a float stands for: 23.976 -> 24000/1001, 29.97 -> 30000/1001, 25 -> 25."""
    for base in (24, 30, 48, 60, 120):
        ntsc = Fraction(base * 1000, 1001)
        if abs(rate - float(ntsc)) < 0.01:
            return ntsc
    return Fraction(rate).limit_denominator(1001)


class OtioExporter(TimelineExporter):
    name = "otio"
    description = "OpenTimelineIO JSON"
    suffix = ".otio"

    def write(self, tl: Timeline, dst: Path, media: MediaPlan) -> list[str]:
        otio = _otio()
        notes: list[str] = []
        ot = to_otio(tl, fades=True, notes=notes, media=media)
        write_text(dst, otio.adapters.write_to_string(ot, adapter_name="otio_json"))
        return notes


def write_text(dst: Path, text: str) -> None:
    """Write ``text`` to ``dst`` through a temporary file, so a failed write leaves the old file."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(dst)


def read_timeline(path: str | Path, fmt: str | None = None, *, fps: Fraction | None = None) -> Timeline:
    """Read a timeline file written by us or an editor; ``fps`` gives the exact rate for EDLs."""
    otio = _otio()
    p = Path(path)
    if not p.exists():
        raise InputError(f"timeline file {str(p)!r} does not exist")
    if fmt is None:
        fmt = next((k for k, (_, suf, _) in FORMATS.items() if p.suffix.lower() == suf), None)
        if fmt is None:
            raise InputError(f"cannot tell the format of {str(p)!r} from its suffix",
                             hint=f"pass one of {sorted(FORMATS)}")
    if fmt == "fcpxml":
        from pipelines.timeline.fcpxml import read_fcpxml

        return read_fcpxml(p)
    adapter = _adapter(fmt)
    kwargs: dict[str, Any] = {}
    if fmt == "edl":
        kwargs["rate"] = float(fps or 25)
    try:
        ot = otio.adapters.read_from_file(str(p), adapter_name=adapter, **kwargs)
    except Exception as e:  # noqa: BLE001 - adapters raise many kinds
        raise InputError(f"cannot read {str(p)!r} as {fmt}: {e}") from e
    if isinstance(ot, otio.schema.SerializableCollection):
        ot = next(iter(ot.find_children(descended_from_type=otio.schema.Timeline)), None) or ot[0]
    tl = from_otio(ot, fps=fps)
    if fmt == "edl":
        tl = _edl_fix_media(tl, p.read_text(encoding="utf-8", errors="replace"))
    return tl


def _edl_fix_media(tl: Timeline, text: str) -> Timeline:
    """otio-cmx3600-adapter 1.0.0 gives the incoming clip of a dissolve the outgoing clip's media
    (it reads only ``FROM CLIP``); the ``TO CLIP NAME``/``TO CLIP`` comments name the right file."""
    urls: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        s = line.strip()
        for tag in ("* FROM CLIP NAME:", "* TO CLIP NAME:"):
            if s.startswith(tag):
                name = s[len(tag):].strip()
        for tag in ("* FROM CLIP:", "* TO CLIP:"):
            if s.startswith(tag) and name:
                urls[name] = path_from_url(s[len(tag):].strip())
    from dataclasses import replace

    tracks = []
    for track in tl.tracks:
        clips = []
        for c in track.clips:
            want = urls.get(c.name or c.media.label)
            if want and want != c.media.path:
                c = replace(c, media=replace(c.media, path=want, name=""))
            clips.append(c)
        tracks.append(replace(track, clips=tuple(clips)))
    return tl.with_tracks(tracks)
