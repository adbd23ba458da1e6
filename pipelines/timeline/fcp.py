"""Final Cut Pro X / Resolve (FCPXML 1.9) and Premiere / FCP7 (xmeml 4) writers, and an FCPXML reader.

Written here rather than through the OTIO plug-ins because, in the released plug-ins,
``otio-fcpx-xml-adapter`` 1.0.0 truncates frame rates to integers (23.976 becomes 23) and
``otio-fcp-adapter`` 1.0.0 writes clip ends of ``-1`` next to transitions that its own reader then
fails on. Every time here is exact: FCPXML times are rational seconds (``1001/24000s`` per frame
at 23.976), xmeml times are frames on an integer timebase with the NTSC flag.
The FCP7 files we write are read back by ``otio-fcp-adapter`` in the tests (an independent reader).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

from core.errors import InputError
from core.timeline import Clip, MediaRef, Timeline, Track, Transition


def _ntsc(fps: Fraction) -> tuple[int, bool]:
    """xmeml rate: integer timebase and the NTSC flag (23.976 -> 24 TRUE)."""
    if fps.denominator == 1001:
        return fps.numerator // 1000, True
    if fps.denominator != 1:
        raise InputError(f"frame rate {fps} cannot be written to FCP7 XML", hint="use an integer or NTSC rate")
    return fps.numerator, False


def _rate_el(parent: ET.Element, fps: Fraction) -> None:
    tb, ntsc = _ntsc(fps)
    rate = ET.SubElement(parent, "rate")
    ET.SubElement(rate, "timebase").text = str(tb)
    ET.SubElement(rate, "ntsc").text = "TRUE" if ntsc else "FALSE"


def _text(parent: ET.Element, tag: str, value: object) -> ET.Element:
    el = ET.SubElement(parent, tag)
    el.text = str(value)
    return el


def _pathurl(path: str) -> str:
    return Path(path).resolve().as_uri() if path else ""


def fcp7_xml(tl: Timeline) -> str:
    """xmeml version 4 (Premiere Pro, FCP7, Resolve): one sequence, every track, dissolves."""
    tl.validate()
    root = ET.Element("xmeml", version="4")
    seq = ET.SubElement(root, "sequence", id="sequence-1")
    _text(seq, "name", tl.name or "ReelForge")
    _text(seq, "duration", tl.duration)
    _rate_el(seq, tl.fps)
    media = ET.SubElement(seq, "media")
    files: dict[str, str] = {}
    for kind in ("video", "audio"):
        holder = ET.SubElement(media, kind)
        if kind == "video":
            fmt = ET.SubElement(ET.SubElement(holder, "format"), "samplecharacteristics")
            _rate_el(fmt, tl.fps)
            _text(fmt, "width", tl.width)
            _text(fmt, "height", tl.height)
        n = 0
        for track in tl.tracks:
            if track.kind != kind:
                continue
            tr_el = ET.SubElement(holder, "track")
            dissolves = {t.at: t for t in track.transitions if t.kind == "dissolve"}
            fades_in = {t.at: t for t in track.transitions if t.kind == "fade_in"}
            fades_out = {t.at: t for t in track.transitions if t.kind == "fade_out"}
            prev_end = None
            for clip in sorted(track.clips, key=lambda c: c.start):
                t = dissolves.get(clip.start) if prev_end == clip.start else None
                t = t or fades_in.get(clip.start)
                if t is not None:
                    _transition_item(tr_el, t, tl.fps, "center" if t.kind == "dissolve" else "start-black")
                n += 1
                item = ET.SubElement(tr_el, "clipitem", id=f"clipitem-{kind}-{n}")
                _text(item, "name", clip.label)
                _text(item, "duration", clip.media.frames or clip.source_in + clip.duration)
                _rate_el(item, tl.fps)
                _text(item, "start", clip.start)
                _text(item, "end", clip.end)
                src_in = _to_rate(clip.source_in, clip.media.fps, tl.fps)
                _text(item, "in", src_in)
                _text(item, "out", src_in + clip.duration)
                key = clip.media.path
                if key in files:
                    ET.SubElement(item, "file", id=files[key])
                else:
                    files[key] = f"file-{len(files) + 1}"
                    f = ET.SubElement(item, "file", id=files[key])
                    _text(f, "name", Path(clip.media.path).name)
                    _text(f, "pathurl", _pathurl(clip.media.path))
                    _rate_el(f, clip.media.fps)
                    _text(f, "duration", clip.media.frames)
                    fm = ET.SubElement(f, "media")
                    if clip.media.has_video:
                        sc = ET.SubElement(ET.SubElement(fm, "video"), "samplecharacteristics")
                        _text(sc, "width", clip.media.width)
                        _text(sc, "height", clip.media.height)
                    if clip.media.has_audio:
                        ET.SubElement(ET.SubElement(fm, "audio"), "channelcount").text = "1"
                if kind == "audio" and clip.gain_db:
                    flt = ET.SubElement(item, "filter")
                    eff = ET.SubElement(flt, "effect")
                    _text(eff, "name", "Audio Levels")
                    _text(eff, "effectid", "audiolevels")
                    par = ET.SubElement(eff, "parameter")
                    _text(par, "parameterid", "level")
                    _text(par, "value", f"{10 ** (clip.gain_db / 20):.4f}")
                if clip.end in fades_out:
                    _transition_item(tr_el, fades_out[clip.end], tl.fps, "end-black")
                prev_end = clip.end
    if tl.markers:
        for mk in tl.markers:
            m = ET.SubElement(seq, "marker")
            _text(m, "name", mk.name)
            _text(m, "comment", mk.note)
            _text(m, "in", mk.frame)
            _text(m, "out", mk.frame + mk.duration if mk.duration else -1)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE xmeml>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _transition_item(parent: ET.Element, t: Transition, fps: Fraction, alignment: str) -> None:
    el = ET.SubElement(parent, "transitionitem")
    _text(el, "start", t.start)
    _text(el, "end", t.end)
    _text(el, "alignment", alignment)
    _rate_el(el, fps)
    eff = ET.SubElement(el, "effect")
    _text(eff, "name", "Cross Dissolve")
    _text(eff, "effectid", "Cross Dissolve")
    _text(eff, "effectcategory", "Dissolve")
    _text(eff, "effecttype", "transition")
    _text(eff, "mediatype", "video")


def _to_rate(frames: int, src: Fraction, dst: Fraction) -> int:
    return int(Fraction(frames) / src * dst + Fraction(1, 2))


# --------------------------------------------------------------------------------------------
# FCPXML 1.9
# --------------------------------------------------------------------------------------------
def _t(frames: int, fps: Fraction) -> str:
    """Rational seconds as FCPXML writes them: ``1001/24000s``, ``4s``, ``0s``."""
    v = Fraction(frames) / fps
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


def fcpxml(tl: Timeline) -> str:
    """FCPXML 1.9 (Final Cut Pro 10.4.1+, DaVinci Resolve 17+): one project, a spine with the first
    video track, other tracks as connected lanes, audio as audio-only clips, dissolves, markers."""
    tl.validate()
    root = ET.Element("fcpxml", version="1.9")
    res = ET.SubElement(root, "resources")
    fmt_id = "r1"
    ET.SubElement(res, "format", id=fmt_id, name=f"FFVideoFormat{tl.height}p", frameDuration=_t(1, tl.fps),
                  width=str(tl.width), height=str(tl.height))
    assets: dict[str, str] = {}
    n = 1
    for track in tl.tracks:
        for c in track.clips:
            if c.media.path in assets:
                continue
            n += 1
            aid = f"r{n}"
            assets[c.media.path] = aid
            mfmt = fmt_id
            if c.media.fps != tl.fps and c.media.has_video:
                n += 1
                mfmt = f"r{n}"
                ET.SubElement(res, "format", id=mfmt, frameDuration=_t(1, c.media.fps),
                              width=str(c.media.width or tl.width), height=str(c.media.height or tl.height))
            a = ET.SubElement(res, "asset", id=aid, name=c.media.label, start="0s",
                              duration=_t(max(c.media.frames, 1), c.media.fps),
                              hasVideo="1" if c.media.has_video else "0", hasAudio="1" if c.media.has_audio else "0",
                              format=mfmt)
            ET.SubElement(a, "media-rep", kind="original-media", src=_pathurl(c.media.path))
    lib = ET.SubElement(root, "library")
    event = ET.SubElement(lib, "event", name=tl.name or "ReelForge")
    project = ET.SubElement(event, "project", name=tl.name or "ReelForge")
    seq = ET.SubElement(project, "sequence", format=fmt_id, duration=_t(tl.duration, tl.fps), tcStart="0s",
                        tcFormat="NDF", audioLayout="stereo", audioRate="48k")
    spine = ET.SubElement(seq, "spine")
    videos = tl.video_tracks
    main = videos[0] if videos else None
    others = [t for t in tl.tracks if t is not main]
    # the spine: main track clips and gaps back to back, transitions between them
    cursor = 0
    spine_items: list[tuple[int, int, ET.Element]] = []  # (offset, duration, element) for lanes
    if main is not None:
        dissolves = {t.at: t for t in main.transitions if t.kind == "dissolve"}
        heads = {t.at: t for t in main.transitions if t.kind == "fade_in"}
        tails = {t.at: t for t in main.transitions if t.kind == "fade_out"}
        prev_end = None
        for c in sorted(main.clips, key=lambda c: c.start):
            if c.start > cursor:
                g = ET.SubElement(spine, "gap", name="Gap", offset=_t(cursor, tl.fps), start="0s",
                                  duration=_t(c.start - cursor, tl.fps))
                spine_items.append((cursor, c.start - cursor, g))
                prev_end = None
            t = dissolves.get(c.start) if prev_end == c.start else None
            t = t or heads.get(c.start)
            if t is not None:
                _fcpx_transition(spine, t, tl.fps)
            el = _asset_clip(spine, c, assets[c.media.path], tl.fps, lane=None)
            spine_items.append((c.start, c.duration, el))
            if c.end in tails:
                _fcpx_transition(spine, tails[c.end], tl.fps)
            cursor = c.end
            prev_end = c.end
    if cursor < tl.duration:
        g = ET.SubElement(spine, "gap", name="Gap", offset=_t(cursor, tl.fps), start="0s",
                          duration=_t(tl.duration - cursor, tl.fps))
        spine_items.append((cursor, tl.duration - cursor, g))
    # connected lanes: video above (1, 2, ...), audio below (-1, -2, ...)
    v_lane, a_lane = 0, 0
    for track in others:
        if track.kind == "video":
            v_lane += 1
            lane = v_lane
        else:
            a_lane -= 1
            lane = a_lane
        for c in sorted(track.clips, key=lambda c: c.start):
            host = next(((o, d, e) for o, d, e in spine_items if o <= c.start < o + d), None)
            if host is None:
                raise InputError(f"clip {c.label!r} at frame {c.start} lies past the main track's end",
                                 hint="extend the main video track (a gap is fine)")
            o, _, e = host
            start_in_host = _host_start(e, tl.fps) + (c.start - o)
            _asset_clip(e, c, assets[c.media.path], tl.fps, lane=lane, offset=start_in_host, role=track.role,
                        track_name=track.name)
    for mk in tl.markers:
        host = next(((o, d, e) for o, d, e in spine_items if o <= mk.frame < o + d), None)
        if host is not None:
            o, _, e = host
            ET.SubElement(e, "marker", start=_t(_host_start(e, tl.fps) + mk.frame - o, tl.fps),
                          duration=_t(max(mk.duration, 1), tl.fps), value=mk.name, note=mk.note)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _host_start(el: ET.Element, fps: Fraction) -> int:
    return int(_parse_t(el.get("start")) * fps)


def _asset_clip(parent: ET.Element, c: Clip, ref: str, fps: Fraction, *, lane: int | None,
                offset: int | None = None, role: str = "", track_name: str = "") -> ET.Element:
    src_start = Fraction(c.source_in) / c.media.fps  # exact media time
    attrs = {"ref": ref, "name": c.label, "offset": _t(c.start if offset is None else offset, fps),
             "start": _frac_t(src_start), "duration": _t(c.duration, fps), "tcFormat": "NDF"}
    if lane is not None:
        attrs["lane"] = str(lane)
    if not c.media.has_video or (lane is not None and lane < 0):
        attrs["audioRole"] = role or "dialogue"
    if track_name:
        attrs["note"] = f"track:{track_name}"
    el = ET.SubElement(parent, "asset-clip", attrs)
    if c.gain_db:
        ET.SubElement(el, "adjust-volume", amount=f"{c.gain_db:+.2f}dB")
    return el


def _frac_t(v: Fraction) -> str:
    if v == 0:
        return "0s"
    return f"{v.numerator}s" if v.denominator == 1 else f"{v.numerator}/{v.denominator}s"


def _fcpx_transition(spine: ET.Element, t: Transition, fps: Fraction) -> None:
    name = "Cross Dissolve" if t.kind == "dissolve" else ("Fade In" if t.kind == "fade_in" else "Fade Out")
    ET.SubElement(spine, "transition", name=name, offset=_t(t.start, fps), duration=_t(t.before + t.after, fps),
                  note=f"reelforge:{t.kind}:{t.before}:{t.after}")


def read_fcpxml(path: str | Path) -> Timeline:
    """Read an FCPXML 1.8-1.11 project (asset-clips on the spine and connected lanes, transitions)."""
    p = Path(path)
    try:
        root = ET.parse(p).getroot()
    except (ET.ParseError, FileNotFoundError) as e:
        raise InputError(f"{str(p)!r} is not a readable FCPXML file: {e}") from e
    res = root.find("resources")
    if res is None:
        raise InputError(f"{str(p)!r} has no <resources>")
    formats = {f.get("id"): f for f in res.findall("format")}
    seq = root.find(".//sequence")
    if seq is None:
        raise InputError(f"{str(p)!r} has no <sequence>")
    sfmt = formats[seq.get("format")]
    fps = 1 / _parse_t(sfmt.get("frameDuration"))
    width, height = int(sfmt.get("width", 1920)), int(sfmt.get("height", 1080))
    assets: dict[str, MediaRef] = {}
    for a in res.findall("asset"):
        afmt = formats.get(a.get("format"), sfmt)
        afps = 1 / _parse_t(afmt.get("frameDuration")) if afmt.get("frameDuration") else fps
        rep = a.find("media-rep")
        src = rep.get("src", "") if rep is not None else a.get("src", "")
        from urllib.parse import unquote, urlparse

        path_s = unquote(urlparse(src).path) if src.startswith("file:") else src
        assets[a.get("id", "")] = MediaRef(
            path=path_s, fps=afps, frames=int(_parse_t(a.get("duration")) * afps),
            width=int(afmt.get("width", 0) or 0), height=int(afmt.get("height", 0) or 0),
            has_video=a.get("hasVideo", "1") == "1", has_audio=a.get("hasAudio", "0") == "1", name=a.get("name", ""))

    def frames(t: str | None) -> int:
        return int(_parse_t(t) * fps + Fraction(1, 2))

    spine = seq.find("spine")
    tracks: dict[str, list[Clip]] = {}
    kinds: dict[str, str] = {}
    roles: dict[str, str] = {}
    transitions: list[Transition] = []
    main_name = "V1"
    tracks[main_name] = []
    kinds[main_name] = "video"
    for el in list(spine) if spine is not None else []:
        if el.tag == "transition":
            note = el.get("note", "")
            start, dur = frames(el.get("offset")), frames(el.get("duration"))
            if note.startswith("reelforge:"):
                _, kind, before, after = note.split(":")
                transitions.append(Transition(kind, start + int(before), int(before), int(after)))
            else:
                transitions.append(Transition("dissolve", start + dur // 2, dur // 2, dur - dur // 2))
            continue
        if el.tag not in ("asset-clip", "gap", "clip"):
            continue
        off = frames(el.get("offset"))
        host_start = _parse_t(el.get("start"))
        if el.tag == "asset-clip":
            tracks[main_name].append(_clip_from(el, assets, fps, off))
        for child in el.findall("asset-clip"):
            lane = int(child.get("lane", "0"))
            note = child.get("note", "")
            name = note[6:] if note.startswith("track:") else (f"V{lane + 1}" if lane > 0 else f"A{-lane}")
            c_off = off + int((_parse_t(child.get("offset")) - host_start) * fps + Fraction(1, 2))
            tracks.setdefault(name, []).append(_clip_from(child, assets, fps, c_off))
            kinds[name] = "video" if lane > 0 else "audio"
            roles[name] = child.get("audioRole", "") if lane < 0 else ""
    out = [Track(kinds[n], n, tuple(cs), tuple(transitions) if n == main_name else (), roles.get(n, ""))
           for n, cs in tracks.items() if cs or n == main_name]
    return Timeline(name=seq.getparent().get("name", "") if hasattr(seq, "getparent") else
                    (root.find(".//project").get("name", "") if root.find(".//project") is not None else ""),
                    fps=fps, width=width, height=height, tracks=tuple(out))


def _clip_from(el: ET.Element, assets: dict[str, MediaRef], fps: Fraction, offset: int) -> Clip:
    media = assets[el.get("ref", "")]
    src = _parse_t(el.get("start"))
    gain = 0.0
    vol = el.find("adjust-volume")
    if vol is not None and vol.get("amount", "").endswith("dB"):
        gain = float(vol.get("amount", "0dB")[:-2])
    return Clip(media=media, start=offset, duration=int(_parse_t(el.get("duration")) * fps + Fraction(1, 2)),
                source_in=int(src * media.fps + Fraction(1, 2)), name=el.get("name", "") if el.get("name") != media.label
                else "", gain_db=gain)
