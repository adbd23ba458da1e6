"""Render a :class:`~core.timeline.Timeline` to MP4, frame-accurately.

Three paths, tried in this order (``copy="never"`` goes straight to the last; when a render
re-encodes, its notes say why):

* **stream copy** — one video track of clips that butt-join from frame 0, all encoded alike
  (same codec headers, size and rate), each clip starting on a keyframe (and, with B-frames,
  ending on one or at the end of its file), no transitions, no captions to burn and no mark to
  add (the opening 2 s already carry the visible "AI生成" mark, or ``label=False``): the video
  packets are copied untouched and only the sound is mixed and encoded.
* **smart render** — the same, but with transitions (or clips that start mid-GOP): only the
  frames under a transition, and those between a clip's edge and its nearest keyframe, are
  composed and encoded (with the clips' own x264 settings, so the codec headers match); every
  other frame is copied. Shots made with :func:`core.timeline.cut_keyframes` have keyframes exactly where the
  rough cut's dissolves and fades end, so only the transitions themselves are encoded.
* **re-encode** — everything else: each output frame is composed from the clips under it
  (dissolves and fades mix the two pictures with exact per-frame weights; footage of another
  size is fitted without distortion), captions and the visible mark are blended in, and the
  audio tracks are mixed (gain, ducking envelopes) to the exact samples of the frames.

Every output carries the implicit ``AIGC`` label in its metadata.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from core.aigc import AIGCLabel, label_metadata, make_label, read_label
from core.errors import InputError, MediaError
from core.media import VideoWriter, iter_audio, iter_frames, probe, samples_for_frames
from core.streams import Prefetch
from core.timeline import Clip, Timeline, Track, Transition
from pipelines.cards import LabelStyle
from pipelines.video import _EncoderThread

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RenderResult:
    path: Path
    frames: int
    mode: str  # copy | smart | encode
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# audio
# --------------------------------------------------------------------------------------------
def _gain_curve(clip: Clip, fps: Fraction, rate: int, n: int, first_sample: int) -> np.ndarray | float:
    base = 10 ** (clip.gain_db / 20)
    if not clip.envelope:
        return base
    t = first_sample + np.arange(n)
    xs = np.array([samples_for_frames(f, fps, rate) for f, _ in clip.envelope], np.float64)
    ys = np.array([g for _, g in clip.envelope], np.float64)
    return (base * 10 ** (np.interp(t, xs, ys) / 20)).astype(np.float32)


def mix_audio(tl: Timeline, rate: int, channels: int = 1) -> np.ndarray:
    """All audio tracks mixed to float32 ``(samples, channels)`` covering the timeline exactly."""
    total = samples_for_frames(tl.duration, tl.fps, rate)
    out = np.zeros((total, channels), np.float32)
    ramp = max(1, rate // 200)  # 5 ms fades at clip edges: no clicks
    for track in tl.audio_tracks:
        for clip in track.clips:
            info = probe(clip.media.path)
            if info.audio is None:
                continue
            a = samples_for_frames(clip.start, tl.fps, rate)
            b = samples_for_frames(clip.end, tl.fps, rate)
            src0 = math.floor(Fraction(clip.source_in) / clip.media.fps * rate)
            want = b - a
            buf = np.zeros((want, channels), np.float32)
            pos = got = 0
            for chunk in iter_audio(clip.media.path, rate=rate, channels=channels):
                lo, hi = max(src0 + got, pos), min(src0 + want, pos + len(chunk))
                if hi > lo:
                    buf[got:got + hi - lo] = chunk[lo - pos:hi - pos]
                    got += hi - lo
                pos += len(chunk)
                if got >= want:
                    break
            k = min(ramp, want // 2)
            if k:
                env = np.linspace(0, 1, k, dtype=np.float32)[:, None]
                buf[:k] *= env
                buf[want - k:] *= env[::-1]
            gain = _gain_curve(clip, tl.fps, rate, want, a)
            out[a:b] += buf * (gain[:, None] if isinstance(gain, np.ndarray) else gain)
    peak = float(np.abs(out).max()) if len(out) else 0.0
    if peak > 1.0:
        out /= peak  # never clip: scale the whole mix down
    return out


# --------------------------------------------------------------------------------------------
# pictures
# --------------------------------------------------------------------------------------------
def _fit(img: np.ndarray, w: int, h: int) -> np.ndarray:
    if img.shape[0] == h and img.shape[1] == w:
        return img
    canvas = np.zeros((h, w, 3), np.uint8)
    ih, iw = img.shape[:2]
    y, x = (h - ih) // 2, (w - iw) // 2
    canvas[max(0, y):max(0, y) + min(ih, h), max(0, x):max(0, x) + min(iw, w)] = \
        img[max(0, -y):max(0, -y) + min(ih, h), max(0, -x):max(0, -x) + min(iw, w)]
    return canvas


class _ClipReader:
    """Frames of one clip's media for a span of timeline frames (handles held at the file's ends)."""

    def __init__(self, clip: Clip, tl: Timeline, first_t: int) -> None:
        self.clip = clip
        self.tl = tl
        info = probe(clip.media.path)
        if info.video is None:
            raise MediaError(f"clip {clip.label!r}: {clip.media.path!r} has no video")
        dw, dh = info.video.display_size
        scale = min(tl.width / dw, tl.height / dh)
        fw, fh = max(2, int(dw * scale) // 2 * 2), max(2, int(dh * scale) // 2 * 2)
        self.size = (fw, fh)
        self.first_src = max(0, clip.source_frame(first_t, tl.fps))
        # decoded on a background thread, a few frames ahead of the compositor
        self._it: Iterator = iter(Prefetch(lambda: iter_frames(clip.media.path, start=self.first_src,
                                                               size=None if (fw, fh) == (dw, dh) else (fw, fh)),
                                           maxsize=4, name="clip-decode"))
        self._cur: tuple[int, np.ndarray] | None = None

    def frame(self, t: int) -> np.ndarray:
        want = max(0, self.clip.source_frame(t, self.tl.fps))
        while self._cur is None or self._cur[0] < want:
            fr = next(self._it, None)
            if fr is None:
                if self._cur is None:
                    raise MediaError(f"clip {self.clip.label!r}: no frame {want} in {self.clip.media.path!r}")
                break  # past the end of the file: hold the last frame
            self._cur = (fr.index, fr.image)
        assert self._cur is not None
        return _fit(self._cur[1], self.tl.width, self.tl.height)

    def close(self) -> None:
        close = getattr(self._it, "close", None)
        if close:
            close()


def _extent(track: Track, clip: Clip) -> tuple[int, int]:
    """Timeline frames a clip must supply, its handles under transitions included."""
    lo, hi = clip.start, clip.end
    for tr in track.transitions:
        if tr.kind == "dissolve" and tr.at == clip.start:
            lo = min(lo, tr.start)
        if tr.kind == "dissolve" and tr.at == clip.end:
            hi = max(hi, tr.end)
    return lo, hi


def _video_items(tl: Timeline) -> list[tuple[int, Track, list[tuple[int, Clip, int, int]]]]:
    """Per video track, its clips in order with the timeline frames each must supply."""
    return [(ti, tr, [(ci, c, *_extent(tr, c)) for ci, c in enumerate(sorted(tr.clips, key=lambda c: c.start))])
            for ti, tr in enumerate(tl.tracks) if tr.kind == "video"]


def _weight(tr: Transition, t: int) -> float:
    """Share of the incoming picture at frame ``t`` (0 before, 1 after, linear in between)."""
    n = tr.before + tr.after
    return min(1.0, max(0.0, (t - tr.start + 1) / (n + 1)))


class _Overlay:
    """A premultiplied RGBA patch blended at a fixed place (captions, the mark)."""

    def __init__(self, x: int, y: int, color: np.ndarray, alpha: np.ndarray) -> None:
        self.x, self.y, self.color, self.alpha = x, y, color, alpha

    def apply(self, img: np.ndarray) -> np.ndarray:
        h, w = self.alpha.shape[:2]
        region = img[self.y:self.y + h, self.x:self.x + w].astype(np.float32)
        img[self.y:self.y + h, self.x:self.x + w] = np.clip(self.color + region * (1 - self.alpha) + 0.5, 0, 255
                                                            ).astype(np.uint8)
        return img


def caption_overlay(text: str, width: int, height: int) -> _Overlay | None:
    """A subtitle drawn like the animatic cards' (white, black outline, bottom safe area)."""
    from PIL import Image, ImageDraw

    from pipelines.cards import SafeArea, _font, wrap_text

    if not text.strip():
        return None
    x0, _, x1, y1 = SafeArea().box(width, height)
    unit = min(width, height)
    font = _font(max(14, int(unit * 0.055)))
    lines = wrap_text(text, font, x1 - x0)
    line_h = int(font.size * 1.35)
    base = y1 - line_h * len(lines)
    layers = []
    for bg in (0, 255):
        img = Image.new("RGB", (width, height), (bg, bg, bg))
        d = ImageDraw.Draw(img)
        for i, line in enumerate(lines):
            d.text(((x0 + x1) / 2, base + line_h * i + line_h / 2), line, font=font, fill=(255, 255, 255),
                   stroke_width=max(2, unit // 180), stroke_fill=(0, 0, 0), anchor="mm")
        layers.append(np.asarray(img, np.float32))
    b, w = layers
    alpha = 1.0 - (w - b).mean(axis=2, keepdims=True) / 255.0
    ys, xs = np.nonzero(alpha[..., 0] > 1e-3)
    if not len(ys):
        return None
    ya, yb, xa, xb = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    return _Overlay(int(xa), int(ya), b[ya:yb, xa:xb].copy(), np.clip(alpha[ya:yb, xa:xb], 0, 1).copy())


# --------------------------------------------------------------------------------------------
# the render
# --------------------------------------------------------------------------------------------
def _copyable_clips(tl: Timeline, clips: list[Clip], label: bool, burn_captions: bool, style: LabelStyle) -> str:
    """Why the clips' packets cannot be copied into this timeline's output ("" when they can)."""
    from core.media import _copy_compatible

    if burn_captions and tl.captions:
        return "captions are burned in"
    cursor = 0
    for c in clips:
        if c.start != cursor:
            return f"a gap before frame {c.start}"
        cursor = c.end
    if not clips:
        return "no clips"
    infos = [probe(c.media.path) for c in clips]
    why = _copy_compatible(infos)
    if why:
        return why
    v0 = infos[0].video
    assert v0 is not None
    if v0.fps != tl.fps or (v0.width, v0.height) != (tl.width, tl.height):
        return "the clips' size or rate differs from the timeline's"
    if v0.rotation:
        return "the clips are rotated"
    if label:
        from pipelines.label import LabelReport, find_visible_mark

        need = int(2 * tl.fps + 0.999)
        for c in clips:
            if c.start >= need:
                break
            rep = LabelReport(c.media.path, "video", None, None)
            find_visible_mark(Path(c.media.path), rep, style, seconds=float(min(Fraction(c.duration), Fraction(need - c.start))
                                                                            / tl.fps))
            if not rep.visible:
                return f"clip {c.label!r} in the opening 2 s has no visible AI mark to keep"
    return ""


@dataclass(frozen=True, slots=True)
class _Part:
    """A run of output frames ``[start, end)``: copied from ``clip`` (source frame ``src``) or encoded."""

    start: int
    end: int
    clip: Clip | None = None
    src: int = 0


def _packet_plan(tl: Timeline, label: bool, burn_captions: bool, style: LabelStyle) -> tuple[list[_Part] | None, str]:
    """Copied and encoded runs covering the timeline, or None and why no packet can be copied.

    All runs copied: a stream copy. Some encoded (transitions, clip edges off the keyframes): a
    smart render.
    """
    from core.media import _keyframe_indices

    videos = tl.video_tracks
    if len(videos) != 1:
        return None, f"{len(videos)} video tracks"
    track = videos[0]
    clips = sorted(track.clips, key=lambda c: c.start)
    why = _copyable_clips(tl, clips, label, burn_captions, style)
    if why:
        return None, why
    covered = [(tr.start, tr.end) for tr in track.transitions]  # frames whose pictures are new
    parts: list[_Part] = []
    for c in clips:
        lo, hi = c.start, c.end
        for a, b in covered:  # transitions sit at a clip's edges: trim them off
            if a <= lo < b:
                lo = b
            if a < hi <= b:
                hi = a
        if hi <= lo:
            continue
        info = probe(c.media.path)
        v = info.video
        assert v is not None
        keys, _ = _keyframe_indices(info.path, v.fps, v.time_base)
        s_lo, s_hi = c.source_in + (lo - c.start), c.source_in + (hi - c.start)
        first = next((k for k in keys if k >= s_lo), None)
        if v.has_b_frames and s_hi != v.frames:  # a copy that ends mid-GOP would cut B-frame references
            last = max((k for k in keys if k <= s_hi), default=None)
        else:
            last = min(s_hi, v.frames)
        if first is None or last is None or last <= first:
            continue
        parts.append(_Part(lo + first - s_lo, lo + last - s_lo, c, first))
    if not parts:
        return None, "no clip has a keyframe-to-keyframe stretch outside the transitions"
    plan: list[_Part] = []
    cursor = 0
    for p in parts:
        if p.start > cursor:
            plan.append(_Part(cursor, p.start))
        plan.append(p)
        cursor = p.end
    if cursor < tl.duration:
        plan.append(_Part(cursor, tl.duration))
    return plan, ""


def render_timeline(tl: Timeline, dst: str | Path, *, copy: str = "auto", label: bool = True,
                    style: LabelStyle | None = None, aigc: AIGCLabel | None = None, burn_captions: bool = False,
                    audio_rate: int = 48000, crf: int = 20, preset: str = "veryfast",
                    title: str = "", aigc_tag: bool = True) -> RenderResult:
    """Render ``tl`` to ``dst`` (MP4, H.264 + AAC)."""
    tl.validate()
    if copy not in ("auto", "never"):
        raise InputError(f"copy must be auto or never, got {copy!r}")
    if tl.duration <= 0:
        raise InputError("the timeline is empty", hint="add clips to a video track")
    if tl.width % 2 or tl.height % 2:
        raise InputError(f"timeline size {tl.width}x{tl.height} must be even for H.264")
    style = style or LabelStyle()
    dst = Path(dst)
    # the implicit AIGC tag: always on AI-made output; ``aigc_tag=False`` only for footage a person shot
    meta = label_metadata(aigc or _label_for(tl)) if aigc_tag else {}
    if title:
        meta["title"] = title
    notes: list[str] = []
    if copy == "auto":
        parts, why = _packet_plan(tl, label, burn_captions, style)
        if parts is not None and all(p.clip is not None for p in parts):
            return _render_copy(tl, parts, dst, meta, audio_rate)
        if parts is not None:
            done = _render_smart(tl, parts, dst, meta, label, style, audio_rate, preset)
            if isinstance(done, RenderResult):
                return done
            why = done
        notes.append(f"re-encoded: {why}")
        log.info("render %s re-encodes: %s", dst.name, why)
    return _render_encode(tl, dst, meta, label, style, burn_captions, audio_rate, crf, preset, notes)


def _label_for(tl: Timeline) -> AIGCLabel:
    producer = tl.metadata.get("producer", "ReelForge")
    for track in tl.video_tracks:
        for c in track.clips:
            try:
                lab = read_label(probe(c.media.path).metadata)
            except MediaError:
                lab = None
            if lab is not None:
                producer = lab.ContentProducer or producer
                break
    return make_label(producer, f"{tl.name}|{tl.fps}|" + "|".join(map(str, tl.cuts())))


def _render_copy(tl: Timeline, parts: list[_Part], dst: Path, meta: dict[str, str], rate: int) -> RenderResult:
    from core.media import _copy_segments

    clips = [p.clip for p in parts if p.clip is not None]
    v = probe(clips[0].media.path).video
    assert v is not None
    audio = mix_audio(tl, rate) if tl.audio_tracks else None
    segs = [(Path(c.media.path), p.src, p.src + p.end - p.start, Path(c.media.path))
            for p in parts if (c := p.clip) is not None]
    # the packets of each clip, and the sound from the mix, in one pass
    frames = _copy_segments(dst, segs, v, rate if audio is not None else None, 1, meta, mix=audio)
    return RenderResult(dst, frames, "copy")


def _render_smart(tl: Timeline, parts: list[_Part], dst: Path, meta: dict[str, str], label: bool,
                  style: LabelStyle, rate: int, preset: str) -> RenderResult | str:
    """Copy the planned runs, compose and encode the rest; a reason string if the pieces will not join."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from core.media import _copy_segments, video_extradata, x264_options
    from pipelines.label import LabelOverlay

    first = next(p.clip for p in parts if p.clip is not None)
    assert first is not None
    opts = x264_options(first.media.path)
    if "crf" not in opts:
        return "the clips were not made by x264 with a CRF (their settings cannot be matched)"
    v = probe(first.media.path).video
    assert v is not None
    headers = video_extradata(first.media.path)
    track = tl.video_tracks[0]
    tracks = _video_items(tl)
    fades = [(tr.start, tr.end) for tr in track.transitions if tr.kind != "dissolve"]
    # the clips carry the visible mark (checked by the plan); a fade dims it, so it is put back there
    mark = LabelOverlay.build(tl.width, tl.height, style) if label and fades else None
    black = np.zeros((tl.height, tl.width, 3), np.uint8)
    todo = [(i, p) for i, p in enumerate(parts) if p.clip is None]

    def encode(i: int, p: _Part, folder: Path) -> Path:
        piece = folder / f"piece{i:04d}.mp4"
        readers: dict[tuple[int, int], _ClipReader] = {}
        with VideoWriter(piece, tl.width, tl.height, tl.fps, preset=preset, extra_options={"crf": opts["crf"]}) as writer:
            encoder = _EncoderThread(writer)
            try:
                _compose(tl, tracks, readers, black, [], mark, None, rate, encoder, range(p.start, p.end),
                         mark_at=lambda t: any(a <= t < b for a, b in fades))
            finally:
                for r in readers.values():
                    r.close()
                encoder.finish()
        return piece

    with tempfile.TemporaryDirectory(prefix="reelforge-render-") as tmp:
        folder = Path(tmp)
        # short pieces keep x264's own threads idle (little to look ahead): encode a few at once
        with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1, len(todo)))) as pool:
            pieces = dict(zip((i for i, _ in todo), pool.map(lambda ip: encode(ip[0], ip[1], folder), todo), strict=True))
        for piece in pieces.values():
            if video_extradata(piece) != headers:
                return (f"x264 crf {opts.get('crf')} with preset {preset!r} does not reproduce the clips' codec "
                        "headers (they were encoded with other settings)")
        segs: list[tuple[Path, int, int, Path]] = []
        for i, p in enumerate(parts):
            if p.clip is not None:
                path = Path(p.clip.media.path)
                segs.append((path, p.src, p.src + (p.end - p.start), path))
            else:
                segs.append((pieces[i], 0, p.end - p.start, pieces[i]))
        audio = mix_audio(tl, rate) if tl.audio_tracks else None
        frames = _copy_segments(dst, segs, v, rate if audio is not None else None, 1, meta, mix=audio)
    encoded = sum(p.end - p.start for _, p in todo)
    note = f"smart render: {frames - encoded} frames copied, {encoded} encoded in {len(todo)} pieces"
    log.info("render %s: %s", dst.name, note)
    return RenderResult(dst, frames, "smart", [note])


def _render_encode(tl: Timeline, dst: Path, meta: dict[str, str], label: bool, style: LabelStyle,
                   burn_captions: bool, rate: int, crf: int, preset: str, notes: list[str]) -> RenderResult:
    from pipelines.label import LabelOverlay

    mark = LabelOverlay.build(tl.width, tl.height, style) if label else None
    caps = [(c.start, c.end, caption_overlay(c.text, tl.width, tl.height)) for c in tl.captions] if burn_captions else []
    audio = mix_audio(tl, rate) if tl.audio_tracks else None
    readers: dict[tuple[int, int], _ClipReader] = {}
    tracks = _video_items(tl)
    black = np.zeros((tl.height, tl.width, 3), np.uint8)
    with VideoWriter(dst, tl.width, tl.height, tl.fps, crf=crf, preset=preset,
                     audio_rate=rate if audio is not None else None, metadata=meta) as writer:
        encoder = _EncoderThread(writer)  # x264 works on its own thread while the next frame is composed
        try:
            _compose(tl, tracks, readers, black, caps, mark, audio, rate, encoder)
        except BaseException:
            try:
                encoder.finish()
            except BaseException:  # noqa: BLE001 - the first error is the one to report
                pass
            for r in readers.values():
                r.close()
            raise
        encoder.finish()
    for r in readers.values():
        r.close()
    return RenderResult(dst, writer.frames_written, "encode", notes)


def _compose(tl: Timeline, tracks: list[Any], readers: dict[Any, Any], black: np.ndarray, caps: list[Any], mark: Any,
             audio: np.ndarray | None, rate: int, encoder: _EncoderThread, frames: range | None = None,
             mark_at: Callable[[int], bool] | None = None) -> None:
    """Compose timeline frames (all, or ``frames``) with dissolves, fades, captions and the mark
    (on every frame, or where ``mark_at`` says) and hand them to the encoder."""
    sent = 0
    for t in frames if frames is not None else range(tl.duration):
        picture = None
        for ti, track, items in tracks:
            layer = None
            active = []
            for ci, clip, lo, hi in items:
                key = (ti, ci)
                if t >= hi and key in readers:
                    readers.pop(key).close()
                if lo <= t < hi:
                    if key not in readers:
                        readers[key] = _ClipReader(clip, tl, t)  # from the first frame asked for (a seek)
                    active.append((clip, readers[key].frame(t)))
            if len(active) == 1:
                layer = active[0][1]  # uint8: no arithmetic unless a fade touches it
            elif len(active) >= 2:  # a dissolve: the outgoing and the incoming clip
                (_, a_img), (b_clip, b_img) = active[0], active[1]
                tr = next((x for x in track.transitions if x.kind == "dissolve" and x.at == b_clip.start), None)
                w_in = _weight(tr, t) if tr is not None else float(t >= b_clip.start)
                layer = a_img.astype(np.float32) * (1 - w_in) + b_img.astype(np.float32) * w_in
            if layer is not None:
                for tr in track.transitions:
                    if tr.kind == "fade_in" and tr.start <= t < tr.end:
                        layer = layer * _weight(tr, t)
                    elif tr.kind == "fade_out" and tr.start <= t < tr.end:
                        layer = layer * (1 - _weight(tr, t))
                picture = layer  # upper tracks cover lower ones
        if picture is None:
            frame = black.copy()
        elif picture.dtype == np.uint8:
            frame = picture.copy()  # the overlays below draw in place; the reader keeps its frame
        else:
            frame = np.clip(picture + 0.5, 0, 255).astype(np.uint8)
        for a, b, ov in caps:
            if ov is not None and a <= t < b:
                ov.apply(frame)
        if mark is not None and (mark_at is None or mark_at(t)):
            frame = mark.apply(frame)
        encoder.put("video", frame)
        if audio is not None:
            want = samples_for_frames(t + 1, tl.fps, rate)
            encoder.put("audio", audio[sent:want])
            sent = want
