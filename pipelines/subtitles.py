"""Subtitles from the script text, timed to the voice track: SRT, styled ASS, a soft MP4 track.

Times come from integer frames at a rational fps, so they never drift.

Cue text is screenplay data, which anyone may edit, so it is normalised for each format before it
is written: a cue is one line (line breaks and control characters become spaces, so no text can
end a cue early and start a forged one with its own timing line), SRT's ``-->`` and HTML-like tags
are defused, and in ASS the override characters ``{``, ``}`` and ``\\`` are replaced by their
full-width forms, which look alike and are never parsed. Names and titles in ASS header and
``Name`` fields lose commas and line breaks, which would shift fields or add lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from core.files import atomic_write_text
from core.media import frames_to_timecode

# line and paragraph separators of every kind, and the other control characters
_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f\ufeff]")
_SPACES = re.compile(r"[ \t]{2,}")


def one_line(text: str) -> str:
    """``text`` as one display line: breaks and tabs become spaces, control characters go."""
    text = _CONTROL.sub("", _BREAKS.sub(" ", text)).replace("\t", " ")
    return _SPACES.sub(" ", text).strip()


def srt_escape(text: str) -> str:
    """Cue text safe in an SRT block: one line, no timing arrow, no markup a player would obey."""
    text = one_line(text).replace("-->", "→")
    text = re.sub(r"<(?=[A-Za-z/!?])", "＜", text)  # <i>, <font>, </b>: tags most players render
    return text.replace("{\\", "｛\\")  # {\an8}: ASS override codes that libass honours in SRT too


@dataclass(frozen=True, slots=True)
class Cue:
    start: int  # first frame shown
    end: int  # first frame no longer shown
    text: str
    speaker: str = ""


def srt_text(cues: Iterable[Cue], fps: Fraction) -> str:
    blocks: list[str] = []
    for cue in cues:
        if cue.end <= cue.start:
            continue
        text = srt_escape(cue.text) or " "  # an empty text line would end the block early
        blocks.append(f"{len(blocks) + 1}\n{frames_to_timecode(cue.start, fps)} --> "
                      f"{frames_to_timecode(cue.end, fps)}\n{text}\n")
    return "\n".join(blocks)


def write_srt(path: str | Path, cues: Iterable[Cue], fps: Fraction) -> Path:
    return atomic_write_text(path, srt_text(cues, fps))


def parse_srt(text: str) -> list[tuple[str, str, str]]:
    """(start, end, text) per cue; enough to check what we wrote."""
    cues = []
    for block in text.strip().split("\n\n"):
        rows = block.strip().splitlines()
        if len(rows) >= 3 and "-->" in rows[1]:
            start, _, end = rows[1].partition(" --> ")
            cues.append((start.strip(), end.strip(), "\n".join(rows[2:])))
    return cues


# --------------------------------------------------------------------------------------------
# styled ASS
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SubtitleStyle:
    font: str = ""  # empty: the CJK font ReelForge found (core.fonts)
    size_ratio: float = 0.055  # of the picture's shorter side, like the animatic cards
    primary: str = "&H00FFFFFF"  # ASS colours are &HAABBGGRR
    outline_colour: str = "&H00000000"
    outline: float = 3.0
    bottom_margin_ratio: float = 0.2  # the platforms' bottom safe area on vertical video
    narration_colour: str = "&H00A0ECFF"  # warm yellow for narration, as on the cards


def _ass_time(frame: int, fps: Fraction) -> str:
    cs = int(round(Fraction(frame) / fps * 100))  # centiseconds
    h, rem = divmod(cs, 360000)
    m, rem = divmod(rem, 6000)
    s, cs = divmod(rem, 100)
    return f"{h}:{m:02d}:{s:02d}.{cs:02d}"


def _ass_escape(text: str) -> str:
    """Event text: one line; ``{ } \\`` as full-width look-alikes, so no override block or ``\\N`` is read."""
    return one_line(text).replace("\\", "＼").replace("{", "｛").replace("}", "｝")


def _ass_field(text: str) -> str:
    """A header value or a comma-separated field (``Name``, ``Fontname``): one line, no commas."""
    return _ass_escape(text).replace(",", "，")


def ass_text(cues: Iterable[Cue], fps: Fraction, width: int, height: int, style: SubtitleStyle | None = None,
             title: str = "") -> str:
    """An ASS script (libass, 剪映, Aegisub, VLC): a dialogue style and a narration style."""
    st = style or SubtitleStyle()
    font = _ass_field(st.font)
    if not font:
        try:
            from core.fonts import find_cjk_font

            font = _ass_field(find_cjk_font().name)
        except Exception:  # noqa: BLE001 - a name is only a hint to the player
            font = "Noto Sans CJK SC"
    size = max(14, int(min(width, height) * st.size_ratio))
    margin_v = int(height * st.bottom_margin_ratio)
    head = [
        "[Script Info]", f"Title: {_ass_escape(title) or 'ReelForge'}", "ScriptType: v4.00+", f"PlayResX: {width}",
        f"PlayResY: {height}", "WrapStyle: 0", "ScaledBorderAndShadow: yes", "YCbCr Matrix: TV.709", "",
        "[V4+ Styles]",
        "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, "
        "Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, "
        "MarginR, MarginV, Encoding",
        f"Style: Dialogue,{font},{size},{st.primary},&H000000FF,{st.outline_colour},&H64000000,0,0,0,0,100,100,0,0,1,"
        f"{st.outline:g},0,2,{int(width * 0.06)},{int(width * 0.12)},{margin_v},1",
        f"Style: Narration,{font},{size},{st.narration_colour},&H000000FF,{st.outline_colour},&H64000000,0,0,0,0,100,"
        f"100,0,0,1,{st.outline:g},0,2,{int(width * 0.06)},{int(width * 0.12)},{margin_v},1",
        "", "[Events]", "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
    ]
    rows = []
    for cue in cues:
        if cue.end <= cue.start:
            continue
        kind = "Narration" if cue.speaker in ("", "旁白") else "Dialogue"
        rows.append(f"Dialogue: 0,{_ass_time(cue.start, fps)},{_ass_time(cue.end, fps)},{kind},{_ass_field(cue.speaker)},0,0,0,,"
                    f"{_ass_escape(cue.text)}")
    return "\n".join(head + rows) + "\n"


def write_ass(path: str | Path, cues: Iterable[Cue], fps: Fraction, width: int, height: int,
              style: SubtitleStyle | None = None, title: str = "") -> Path:
    return atomic_write_text(path, ass_text(cues, fps, width, height, style, title), encoding="utf-8-sig")


def parse_ass_events(text: str) -> list[tuple[str, str, str, str]]:
    """(start, end, style, text) of each Dialogue event."""
    out = []
    for line in text.splitlines():
        if line.startswith("Dialogue:"):
            parts = line[len("Dialogue:"):].strip().split(",", 9)
            out.append((parts[1], parts[2], parts[3], parts[9]))
    return out


# --------------------------------------------------------------------------------------------
# timing from the voice track, and the soft subtitle track
# --------------------------------------------------------------------------------------------
def align_to_speech(lines: Sequence[tuple[str, str]], runs: Sequence[tuple[int, int]]) -> list[Cue]:
    """Time script lines ``(speaker, text)`` to speech runs ``[start, end)`` found in the voice track.

    The script's words are kept (nothing is re-recognised): with one run per line they map one to
    one; otherwise the speech time is shared out in proportion to each line's length in characters,
    never splitting a line across a silence longer than the run gap."""
    if not lines or not runs:
        return []
    if len(runs) == len(lines):
        return [Cue(a, b, t, s) for (s, t), (a, b) in zip(lines, runs, strict=True)]
    weights = [max(1, len(t)) for _, t in lines]
    wsum = sum(weights)
    total = sum(b - a for a, b in runs)

    def at(pos: int, closing: bool) -> int:
        # speech-time position -> timeline frame (a line's end stays in the run it ends in)
        for a, b in runs:
            n = b - a
            if pos < n or (closing and pos == n):
                return a + pos
            pos -= n
        return runs[-1][1]

    cues: list[Cue] = []
    acc = 0
    for (speaker, text), w in zip(lines, weights, strict=True):
        c0 = acc * total // wsum
        acc += w
        c1 = acc * total // wsum
        start, end = at(c0, False), at(c1, True)
        cues.append(Cue(start, max(end, start + 1), text, speaker))
    return cues


def add_soft_subtitles(src: str | Path, dst: str | Path, cues: Sequence[Cue], fps: Fraction,
                       language: str = "chi") -> Path:
    """Copy ``src`` (MP4) to ``dst`` with a selectable ``mov_text`` subtitle track (no re-encode)."""
    from core.files import part_path, storage_error, sweep_parts
    from core.media import _av, open_input
    from core.media.encode import discard_output

    av = _av()
    src, dst = Path(src), Path(dst)
    tmp = part_path(dst)
    with open_input(src) as inp:
        try:
            sweep_parts(dst)
            out = av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart+use_metadata_tags"})
        except OSError as e:
            raise storage_error(e, "write", dst) from e
        try:
            for k, v in inp.metadata.items():
                if k not in {"major_brand", "minor_version", "compatible_brands", "encoder"}:
                    out.metadata[k] = v
            mapping = {}
            for s in inp.streams:
                if s.type in ("video", "audio"):
                    mapping[s.index] = out.add_stream_from_template(s)
            sub = out.add_stream("mov_text")
            # the mov_text encoder is opened with an ASS header (its default style)
            sub.codec_context.subtitle_header = ass_text([], fps, 1920, 1080).encode("utf-8")
            sub.time_base = Fraction(1) / fps
            sub.metadata["language"] = language
            for packet in inp.demux(*[s for s in inp.streams if s.index in mapping]):
                if packet.dts is None:
                    continue
                packet.stream = mapping[packet.stream.index]
                out.mux(packet)
            for cue in cues:
                if cue.end <= cue.start:
                    continue
                data = one_line(cue.text).encode("utf-8")
                pkt = av.Packet(len(data).to_bytes(2, "big") + data)
                pkt.stream = sub
                pkt.time_base = sub.time_base
                pkt.pts = pkt.dts = cue.start
                pkt.duration = cue.end - cue.start
                out.mux(pkt)
            out.close()
            tmp.replace(dst)
        except OSError as e:
            discard_output(out, tmp)
            raise storage_error(e, "write", dst) from e
        except BaseException:
            discard_output(out, tmp)
            raise
    return dst
