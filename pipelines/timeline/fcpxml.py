"""Final Cut Pro X / DaVinci Resolve: FCPXML 1.9 writer and an FCPXML 1.8-1.11 reader.

Written here rather than through ``otio-fcpx-xml-adapter``, which in its released version
truncates frame rates to integers (23.976 becomes 23). Every time is exact: FCPXML times are
rational seconds (``1001/24000s`` per frame at 23.976).

What is written validates against Apple's DTD of the version it declares (``FCPXMLv1_9.dtd``;
the tests run ``xmllint --dtdvalid`` when the DTD is present): a note is a ``<note>`` child
element, never an attribute; a shot's video is placed with ``srcEnable="video"`` (its dialogue
comes from the voice track, so it plays once) and a video file used for its sound on an audio
track with ``srcEnable="audio"``; subtitles are ``<caption>`` elements (``iTT`` role) anchored
to the primary storyline.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from core.errors import InputError
from core.timeline import Caption, Clip, MediaRef, Timeline, Track, Transition
from pipelines.timeline.base import TimelineExporter
from pipelines.timeline.portable import MediaPlan, path_from_url

VERSION = "1.9"
TRANSITION_NAMES = {"dissolve": "Cross Dissolve", "fade_in": "Fade In", "fade_out": "Fade Out"}


def _t(frames: int, fps: Fraction) -> str:
    """Rational seconds as FCPXML writes them: ``1001/24000s``, ``4s``, ``0s``."""
    return _frac_t(Fraction(frames) / fps)


def _frac_t(v: Fraction) -> str:
    if v == 0:
        return "0s"
    return f"{v.numerator}s" if v.denominator == 1 else f"{v.numerator}/{v.denominator}s"


def _parse_t(text: str | None) -> Fraction:
    if not text:
        return Fraction(0)
    s = text.strip()
    if not s.endswith("s"):
        raise InputError(f"FCPXML time {text!r} does not end in 's'")
    return Fraction(s[:-1])


def caption_language(tl: Timeline) -> str:
    """The captions' language tag: the timeline's ``language`` metadata, else zh when they hold CJK."""
    lang = tl.metadata.get("language", "")
    if lang:
        return lang
    cjk = any("\u3400" <= ch <= "\u9fff" for c in tl.captions for ch in c.text)
    return "zh" if cjk else "en"


class FcpxmlExporter(TimelineExporter):
    name = "fcpxml"
    description = "Final Cut Pro / DaVinci Resolve (FCPXML 1.9)"
    suffix = ".fcpxml"

    def write(self, tl: Timeline, dst: Path, media: MediaPlan) -> list[str]:
        notes = [f"dip_to_black at frame {t.at} is not exported to fcpxml"
                 for track in tl.tracks for t in track.transitions if t.kind == "dip_to_black"]
        text = fcpxml(tl, media)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(dst)
        return notes


def fcpxml(tl: Timeline, media: MediaPlan | None = None) -> str:
    """FCPXML 1.9: one project, a spine with the first video track, other tracks as connected
    lanes (video above, audio below), dissolves and fades, captions and markers."""
    tl.validate()
    plan = media or MediaPlan(anchor=Path.cwd())
    fps = tl.fps
    root = ET.Element("fcpxml", version=VERSION)
    res = ET.SubElement(root, "resources")
    formats: dict[tuple[Fraction, int, int], str] = {}

    def format_id(rate: Fraction, w: int, h: int, *, name: str = "") -> str:
        key = (rate, w, h)
        if key not in formats:
            formats[key] = f"r{len(formats) + len(assets) + 1}"
            attrs = {"id": formats[key]}
            if name:
                attrs["name"] = name
            attrs.update(frameDuration=_t(1, rate), width=str(w), height=str(h))
            ET.SubElement(res, "format", attrs)
        return formats[key]

    assets: dict[str, str] = {}
    seq_fmt = format_id(fps, tl.width, tl.height, name=f"FFVideoFormat{tl.height}p")
    for track in tl.tracks:
        for c in track.clips:
            m = c.media
            if m.path in assets:
                continue
            afmt = format_id(m.fps, m.width or tl.width, m.height or tl.height) if m.has_video else seq_fmt
            aid = f"r{len(formats) + len(assets) + 1}"
            assets[m.path] = aid
            a = ET.SubElement(res, "asset", id=aid, name=m.label, start="0s",
                              duration=_t(max(m.frames, 1), m.fps), hasVideo="1" if m.has_video else "0",
                              hasAudio="1" if m.has_audio else "0", format=afmt)
            ET.SubElement(a, "media-rep", kind="original-media", src=plan.url(m.path))
    lib = ET.SubElement(root, "library")
    event = ET.SubElement(lib, "event", name=tl.name or "ReelForge")
    project = ET.SubElement(event, "project", name=tl.name or "ReelForge")
    seq = ET.SubElement(project, "sequence", format=seq_fmt, duration=_t(tl.duration, fps), tcStart="0s",
                        tcFormat="NDF", audioLayout="stereo", audioRate="48k")
    spine = ET.SubElement(seq, "spine")
    videos = tl.video_tracks
    main = videos[0] if videos else None
    cursor = 0
    hosts: list[tuple[int, int, ET.Element]] = []  # (offset, duration, element) of the spine's items
    if main is not None:
        dissolves = {t.at: t for t in main.transitions if t.kind == "dissolve"}
        heads = {t.at: t for t in main.transitions if t.kind == "fade_in"}
        tails = {t.at: t for t in main.transitions if t.kind == "fade_out"}
        prev_end = None
        for c in sorted(main.clips, key=lambda c: c.start):
            if c.start > cursor:
                g = ET.SubElement(spine, "gap", name="Gap", offset=_t(cursor, fps), start="0s",
                                  duration=_t(c.start - cursor, fps))
                hosts.append((cursor, c.start - cursor, g))
                prev_end = None
            t = dissolves.get(c.start) if prev_end == c.start else None
            t = t or heads.get(c.start)
            if t is not None:
                _transition(spine, t, fps)
            el = _asset_clip(spine, c, assets[c.media.path], fps, kind="video")
            hosts.append((c.start, c.duration, el))
            if c.end in tails:
                _transition(spine, tails[c.end], fps)
            cursor = c.end
            prev_end = c.end
    end = max(tl.duration, max((c.end for c in tl.captions), default=0))
    if cursor < end:
        g = ET.SubElement(spine, "gap", name="Gap", offset=_t(cursor, fps), start="0s", duration=_t(end - cursor, fps))
        hosts.append((cursor, end - cursor, g))
    if end > tl.duration:
        seq.set("duration", _t(end, fps))

    def host_of(frame: int, what: str) -> tuple[int, ET.Element]:
        for o, d, e in hosts:
            if o <= frame < o + d:
                return o, e
        raise InputError(f"{what} at frame {frame} lies past the main track's end",
                         hint="extend the main video track (a gap is fine)")

    v_lane, a_lane = 0, 0
    for track in tl.tracks:
        if track is main:
            continue
        if track.kind == "video":
            v_lane += 1
            lane = v_lane
        else:
            a_lane -= 1
            lane = a_lane
        for c in sorted(track.clips, key=lambda c: c.start):
            o, e = host_of(c.start, f"clip {c.label!r}")
            _asset_clip(e, c, assets[c.media.path], fps, kind=track.kind, lane=lane,
                        offset=_host_start(e, fps) + c.start - o, role=track.role, track_name=track.name)
    if tl.captions:
        lang = caption_language(tl)
        for i, cap in enumerate(tl.captions, start=1):
            o, e = host_of(cap.start, "caption")
            _caption(e, cap, i, fps, lane=v_lane + 1, offset=_host_start(e, fps) + cap.start - o, lang=lang)
    for mk in tl.markers:
        for o, d, e in hosts:
            if o <= mk.frame < o + d:
                attrs = {"start": _t(_host_start(e, fps) + mk.frame - o, fps),
                         "duration": _t(max(mk.duration, 1), fps), "value": mk.name}
                if mk.note:
                    attrs["note"] = mk.note  # a marker's note is an attribute in the DTD
                ET.SubElement(e, "marker", attrs)
                break
    ET.indent(root)
    for text in root.iter("text"):  # mixed content: indentation inside <text> would be caption text
        text.text = None
        for run in text:
            run.tail = None
    return '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _host_start(el: ET.Element, fps: Fraction) -> int:
    return int(_parse_t(el.get("start")) * fps)


def _asset_clip(parent: ET.Element, c: Clip, ref: str, fps: Fraction, *, kind: str, lane: int | None = None,
                offset: int | None = None, role: str = "", track_name: str = "") -> ET.Element:
    attrs = {"ref": ref}
    if lane is not None:
        attrs["lane"] = str(lane)
    attrs.update({"offset": _t(c.start if offset is None else offset, fps), "name": c.label,
                  "start": _frac_t(Fraction(c.source_in) / c.media.fps), "duration": _t(c.duration, fps)})
    # each sound once: a video track shows the picture only, an audio track plays the sound only
    if kind == "video" and c.media.has_audio and c.media.has_video:
        attrs["srcEnable"] = "video"
    elif kind == "audio" and c.media.has_video:
        attrs["srcEnable"] = "audio"
    attrs["tcFormat"] = "NDF"
    if kind == "audio":
        attrs["audioRole"] = role or "dialogue"
    el = ET.SubElement(parent, "asset-clip", attrs)
    if track_name:
        ET.SubElement(el, "note").text = f"track:{track_name}"
    if c.gain_db and kind == "audio":
        ET.SubElement(el, "adjust-volume", amount=f"{c.gain_db:+.2f}dB")
    return el


def _transition(spine: ET.Element, t: Transition, fps: Fraction) -> None:
    ET.SubElement(spine, "transition", name=TRANSITION_NAMES.get(t.kind, "Cross Dissolve"),
                  offset=_t(t.start, fps), duration=_t(t.before + t.after, fps))


def _caption(host: ET.Element, cap: Caption, n: int, fps: Fraction, *, lane: int, offset: int, lang: str) -> None:
    el = ET.SubElement(host, "caption", lane=str(lane), offset=_t(offset, fps), name=cap.text[:40],
                       start="0s", duration=_t(cap.end - cap.start, fps), role=f"iTT?captionFormat=ITT.{lang}")
    text = ET.SubElement(el, "text", placement="bottom")
    ET.SubElement(text, "text-style", ref=f"ts{n}").text = cap.text
    style = ET.SubElement(ET.SubElement(el, "text-style-def", id=f"ts{n}"), "text-style")
    style.set("font", "PingFang SC" if lang.startswith("zh") else "Helvetica")
    for k, v in (("fontSize", "13"), ("fontFace", "Regular"), ("fontColor", "1 1 1 1"), ("backgroundColor", "0 0 0 1")):
        style.set(k, v)
    if cap.speaker:
        ET.SubElement(el, "note").text = f"speaker:{cap.speaker}"


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------
def read_fcpxml(path: str | Path) -> Timeline:
    """Read an FCPXML 1.8-1.11 project: asset-clips on the spine and connected lanes, transitions,
    captions and markers."""
    p = Path(path)
    try:
        root = ET.parse(p).getroot()
    except (ET.ParseError, FileNotFoundError) as e:
        raise InputError(f"{str(p)!r} is not a readable FCPXML file: {e}") from e
    res = root.find("resources")
    seq = root.find(".//sequence")
    if res is None or seq is None:
        raise InputError(f"{str(p)!r} has no <resources> or no <sequence>", hint="export a project, not an event")
    formats = {f.get("id"): f for f in res.findall("format")}
    sfmt = formats.get(seq.get("format"))
    if sfmt is None or not sfmt.get("frameDuration"):
        raise InputError(f"{str(p)!r}: the sequence's format has no frame duration")
    fps = 1 / _parse_t(sfmt.get("frameDuration"))
    width, height = int(sfmt.get("width", 1920)), int(sfmt.get("height", 1080))
    assets: dict[str, MediaRef] = {}
    for a in res.findall("asset"):
        afmt = formats.get(a.get("format"), sfmt)
        afps = 1 / _parse_t(afmt.get("frameDuration")) if afmt.get("frameDuration") else fps
        rep = a.find("media-rep")
        src = rep.get("src", "") if rep is not None else a.get("src", "")
        path_s = path_from_url(src)
        has_video = a.get("hasVideo", "1") == "1"
        assets[a.get("id", "")] = MediaRef(
            path=path_s, fps=afps if has_video else fps, frames=int(_parse_t(a.get("duration")) * (afps if has_video else fps)),
            width=int(afmt.get("width", 0) or 0) if has_video else 0,
            height=int(afmt.get("height", 0) or 0) if has_video else 0,
            has_video=has_video, has_audio=a.get("hasAudio", "0") == "1", name=a.get("name", ""))

    def frames(t: str | None) -> int:
        return int(_parse_t(t) * fps + Fraction(1, 2))

    spine = seq.find("spine")
    items = list(spine) if spine is not None else []
    tracks: dict[str, list[Clip]] = {"V1": []}
    kinds, roles = {"V1": "video"}, {"V1": ""}
    transitions: list[Transition] = []
    captions: list[Caption] = []
    for i, el in enumerate(items):
        if el.tag == "transition":
            transitions.append(_read_transition(el, items, i, frames))
            continue
        if el.tag not in ("asset-clip", "gap", "clip"):
            continue
        off = frames(el.get("offset"))
        host_start = _parse_t(el.get("start"))
        if el.tag == "asset-clip":
            tracks["V1"].append(_clip_from(el, assets, fps, off))
        for child in el:
            c_off = off + int((_parse_t(child.get("offset")) - host_start) * fps + Fraction(1, 2))
            if child.tag == "caption":
                text = "\n".join("".join(run.text or "" for run in t.iter("text-style")) for t in child.findall("text"))
                note = child.findtext("note") or ""
                captions.append(Caption(c_off, c_off + frames(child.get("duration")), text,
                                        note[8:] if note.startswith("speaker:") else ""))
                continue
            if child.tag != "asset-clip":
                continue
            lane = int(child.get("lane", "0"))
            note = child.findtext("note") or child.get("note") or ""  # the attribute: files of older versions
            name = note[6:] if note.startswith("track:") else (f"V{lane + 1}" if lane > 0 else f"A{-lane}")
            tracks.setdefault(name, []).append(_clip_from(child, assets, fps, c_off))
            kinds[name] = "video" if lane > 0 else "audio"
            roles[name] = child.get("audioRole", "") if lane < 0 else ""
    out = [Track(kinds[n], n, tuple(sorted(cs, key=lambda c: c.start)), tuple(transitions) if n == "V1" else (),
                 roles.get(n, "")) for n, cs in tracks.items() if cs or n == "V1"]
    project = root.find(".//project")
    return Timeline(name=project.get("name", "") if project is not None else "", fps=fps, width=width, height=height,
                    tracks=tuple(out), captions=tuple(sorted(captions, key=lambda c: c.start)))


def _read_transition(el: ET.Element, items: list[ET.Element], i: int, frames: Callable[[str | None], int]) -> Transition:
    """A spine transition: its cut is the next item's offset (or the previous one's end for a fade out)."""
    note = el.get("note", "")
    start, dur = frames(el.get("offset")), frames(el.get("duration"))
    if note.startswith("reelforge:"):  # written by older versions of ReelForge
        _, old_kind, old_before, old_after = note.split(":")
        return Transition(old_kind, start + int(old_before), int(old_before), int(old_after))
    media_tags = ("asset-clip", "clip", "ref-clip", "sync-clip", "mc-clip", "video", "audio")
    prev = next((x for x in reversed(items[:i]) if x.tag != "transition"), None)
    nxt = next((x for x in items[i + 1:] if x.tag != "transition"), None)
    if nxt is not None and nxt.tag in media_tags:
        at = frames(nxt.get("offset"))
        kind = "dissolve" if prev is not None and prev.tag in media_tags else "fade_in"
    elif prev is not None and prev.tag in media_tags:
        at = frames(prev.get("offset")) + frames(prev.get("duration"))
        kind = "fade_out"
    else:
        at, kind = start + dur // 2, "dissolve"
    before = min(max(at - start, 0), dur)
    return Transition(kind, at, before, dur - before)


def _clip_from(el: ET.Element, assets: dict[str, MediaRef], fps: Fraction, offset: int) -> Clip:
    media = assets[el.get("ref", "")]
    src = _parse_t(el.get("start"))
    gain = 0.0
    vol = el.find("adjust-volume")
    if vol is not None and vol.get("amount", "").endswith("dB"):
        gain = float(vol.get("amount", "0dB")[:-2])
    return Clip(media=media, start=offset, duration=int(_parse_t(el.get("duration")) * fps + Fraction(1, 2)),
                source_in=int(src * media.fps + Fraction(1, 2)),
                name=el.get("name", "") if el.get("name") != media.label else "", gain_db=gain)
