"""Premiere Pro / Final Cut Pro 7 / DaVinci Resolve: the xmeml version 4 writer ("FCP7 XML").

Written here rather than through ``otio-fcp-adapter``, whose released version writes clip ends
of ``-1`` next to transitions that its own reader then fails on; the tests read our files back
with that adapter (an independent reader). Times are frames on an integer timebase with the
NTSC flag (23.976 is timebase 24, NTSC TRUE).

Each clip item names the component it takes (``<sourcetrack>``): a shot's video item takes the
picture only and its dialogue plays once, from the voice track. Subtitles are FCP7 ``Text``
generator items on the top video track (Premiere and Resolve import them as
text clips; position and style are left to the editor).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path, PurePosixPath

from core.errors import InputError
from core.timeline import Timeline, Transition
from pipelines.timeline.base import TimelineExporter
from pipelines.timeline.portable import MediaPlan


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


def _to_rate(frames: int, src: Fraction, dst: Fraction) -> int:
    return int(Fraction(frames) / src * dst + Fraction(1, 2))


class Fcp7Exporter(TimelineExporter):
    name = "fcp7"
    description = "Premiere Pro / FCP7 / Resolve (xmeml 4)"
    suffix = ".xml"

    def write(self, tl: Timeline, dst: Path, media: MediaPlan) -> list[str]:
        notes = [f"dip_to_black at frame {t.at} is not exported to fcp7"
                 for track in tl.tracks for t in track.transitions if t.kind == "dip_to_black"]
        text = fcp7_xml(tl, media)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(dst)
        return notes


def fcp7_xml(tl: Timeline, media: MediaPlan | None = None) -> str:
    """xmeml version 4: one sequence, every track, dissolves and fades, subtitles, markers."""
    tl.validate()
    plan = media or MediaPlan(anchor=Path.cwd())
    root = ET.Element("xmeml", version="4")
    seq = ET.SubElement(root, "sequence", id="sequence-1")
    _text(seq, "name", tl.name or "ReelForge")
    _text(seq, "duration", max(tl.duration, max((c.end for c in tl.captions), default=0)))
    _rate_el(seq, tl.fps)
    media_el = ET.SubElement(seq, "media")
    files: dict[str, str] = {}
    for kind in ("video", "audio"):
        holder = ET.SubElement(media_el, kind)
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
                    _text(f, "name", PurePosixPath(plan.path(key)).name)
                    _text(f, "pathurl", plan.url(key))
                    _rate_el(f, clip.media.fps)
                    _text(f, "duration", clip.media.frames)
                    fm = ET.SubElement(f, "media")
                    if clip.media.has_video:
                        sc = ET.SubElement(ET.SubElement(fm, "video"), "samplecharacteristics")
                        _text(sc, "width", clip.media.width)
                        _text(sc, "height", clip.media.height)
                    if clip.media.has_audio:
                        ET.SubElement(ET.SubElement(fm, "audio"), "channelcount").text = "1"
                # each sound once: the item takes only its own track's component of the file
                st = ET.SubElement(item, "sourcetrack")
                _text(st, "mediatype", kind)
                if kind == "audio":
                    _text(st, "trackindex", 1)
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
        if kind == "video" and tl.captions:
            _subtitle_track(holder, tl)
    for mk in tl.markers:
        m = ET.SubElement(seq, "marker")
        _text(m, "name", mk.name)
        _text(m, "comment", mk.note)
        _text(m, "in", mk.frame)
        _text(m, "out", mk.frame + mk.duration if mk.duration else -1)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE xmeml>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _subtitle_track(holder: ET.Element, tl: Timeline) -> None:
    tr_el = ET.SubElement(holder, "track")
    for i, cap in enumerate(tl.captions, start=1):
        item = ET.SubElement(tr_el, "generatoritem", id=f"subtitle-{i}")
        _text(item, "name", cap.text[:40])
        _text(item, "duration", cap.end - cap.start)
        _rate_el(item, tl.fps)
        _text(item, "start", cap.start)
        _text(item, "end", cap.end)
        _text(item, "in", 0)
        _text(item, "out", cap.end - cap.start)
        _text(item, "enabled", "TRUE")
        _text(item, "anamorphic", "FALSE")
        _text(item, "alphatype", "black")
        eff = ET.SubElement(item, "effect")
        _text(eff, "name", "Text")
        _text(eff, "effectid", "Text")
        _text(eff, "effectcategory", "Text")
        _text(eff, "effecttype", "generator")
        _text(eff, "mediatype", "video")
        par = ET.SubElement(eff, "parameter")
        _text(par, "parameterid", "str")
        _text(par, "name", "Text")
        _text(par, "value", cap.text)
    _text(tr_el, "enabled", "TRUE")


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
