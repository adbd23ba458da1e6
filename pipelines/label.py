"""AIGC labels on finished media: burn the visible "AI生成" mark, write and check the implicit one.

The visible mark is exactly the one the animatic cards draw (:func:`pipelines.cards.draw_label`):
we render it once on black and on white, recover its colour and alpha per pixel, and blend only
that corner box into each frame (cheap enough for every frame of a long video).

``check_media`` reads the implicit label back from a video/audio container tag, a PNG's text
chunks / XMP, or a WAV's ``LIST/INFO`` comment, and for videos looks for the visible mark in the
first 2 seconds by comparing each corner with the rendered template.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.aigc import AIGC_KEY, AIGCLabel, label_metadata, read_label
from core.errors import InputError, UnsupportedMediaError
from pipelines.cards import LabelStyle

log = logging.getLogger(__name__)

CORNERS = ("top-right", "top-left", "bottom-right", "bottom-left")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
AUDIO_SUFFIXES = {".wav", ".wave"}


@dataclass(frozen=True, slots=True)
class LabelOverlay:
    """The visible mark for one frame size: a box position, premultiplied colour and alpha."""

    x: int
    y: int
    color: np.ndarray  # (h, w, 3) float32, colour * alpha
    alpha: np.ndarray  # (h, w, 1) float32 in [0, 1]
    style: LabelStyle

    @classmethod
    def build(cls, width: int, height: int, style: LabelStyle | None = None) -> LabelOverlay:
        from PIL import Image

        from pipelines.cards import draw_label

        style = style or LabelStyle()
        if style.position not in CORNERS:
            raise InputError(f"label position {style.position!r} is not a corner", hint=f"use one of {CORNERS}")
        if not 0.0 < style.opacity <= 1.0:
            raise InputError(f"label opacity must be in (0, 1], got {style.opacity}")
        on_black = Image.new("RGB", (width, height), (0, 0, 0))
        on_white = Image.new("RGB", (width, height), (255, 255, 255))
        draw_label(on_black, style)
        draw_label(on_white, style)
        b = np.asarray(on_black, np.float32)
        w = np.asarray(on_white, np.float32)
        alpha = 1.0 - (w - b).mean(axis=2, keepdims=True) / 255.0  # b = a*c, w = a*c + (1-a)*255
        ys, xs = np.nonzero(alpha[..., 0] > 1e-3)
        if len(ys) == 0:
            raise InputError(f"label {style.text!r} renders nothing at {width}x{height}")
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        return cls(int(x0), int(y0), b[y0:y1, x0:x1].copy(), np.clip(alpha[y0:y1, x0:x1], 0, 1).copy(), style)

    def apply(self, frame: np.ndarray) -> np.ndarray:
        """Blend the mark into an RGB frame (returns a new array; the input is not changed)."""
        out = frame.copy()
        h, w = self.alpha.shape[:2]
        region = out[self.y:self.y + h, self.x:self.x + w].astype(np.float32)
        out[self.y:self.y + h, self.x:self.x + w] = np.clip(self.color + region * (1 - self.alpha) + 0.5, 0, 255
                                                            ).astype(np.uint8)
        return out

    def text_mask(self) -> np.ndarray:
        """Pixels of the letters (brighter than the box), for finding the mark in a frame."""
        lum = (self.color / np.maximum(self.alpha, 1e-3)).mean(axis=2)
        return (self.alpha[..., 0] > 0.6) & (lum > 200)

    def box_mask(self) -> np.ndarray:
        return (self.alpha[..., 0] > 0.2) & ~self.text_mask()


def label_video(src: str | Path, dst: str | Path, *, style: LabelStyle | None = None,
                label: AIGCLabel | None = None, seconds: float | None = None, crf: int = 18,
                preset: str = "veryfast") -> Path:
    """Re-encode ``src`` with the visible mark (throughout, or for the first ``seconds``) and the
    implicit ``AIGC`` tag (``label``, else the one ``src`` carries, else a new one)."""
    from core.aigc import make_label
    from core.files import check_distinct, check_writable
    from core.media import check_video_output, probe
    from pipelines.video import process_video

    check_distinct(src, dst)  # as enhance does: the input is never overwritten in place
    check_video_output(dst)
    check_writable(Path(dst).expanduser().absolute().parent, what="output")
    info = probe(src)
    if info.video is None:
        raise UnsupportedMediaError(f"{str(src)!r} has no video stream")
    w, h = info.video.display_size
    w, h = w - w % 2, h - h % 2
    overlay = LabelOverlay.build(w, h, style)
    lab = label or read_label(info.metadata) or make_label("ReelForge", f"{Path(src).name}|{info.size_bytes}")
    limit = None if seconds is None else int(seconds * info.video.fps + 0.999)
    done = 0

    def fn(images: list[np.ndarray]) -> list[np.ndarray]:
        nonlocal done
        out = []
        for img in images:
            img = img[:h, :w]
            out.append(overlay.apply(img) if limit is None or done < limit else img)
            done += 1
        return out

    process_video(src, dst, fn, out_size=(w, h), crf=crf, preset=preset, metadata=label_metadata(lab))
    return Path(dst)


# --------------------------------------------------------------------------------------------
# implicit labels on images and WAV files
# --------------------------------------------------------------------------------------------
def png_label_info(label: AIGCLabel, keep: Mapping[str, str] | None = None) -> Any:
    """PNG text chunks carrying the implicit label: the ``AIGC`` JSON and the TC260 XMP packet.

    ``keep`` holds other text chunks to carry over (an older label in it is replaced). Pass the
    result as ``Image.save(..., pnginfo=...)``; :func:`write_png_label` does so for a saved file.
    """
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for k, v in (keep or {}).items():
        if k not in (AIGC_KEY, "XML:com.adobe.xmp"):
            info.add_itxt(k, v)
    info.add_itxt(AIGC_KEY, label.to_json())
    info.add_itxt("XML:com.adobe.xmp", _xmp(label.to_json()))
    return info


def write_png_label(path: str | Path, label: AIGCLabel) -> Path:
    """Add the AIGC text chunk and TC260 XMP to a PNG (rewrites the file, pixels unchanged)."""
    from PIL import Image

    p = Path(path)
    with Image.open(p) as img:
        img.load()
        text = dict(getattr(img, "text", None) or {})
        tmp = p.with_name(f".{p.name}.tmp")
        img.save(tmp, format="PNG", pnginfo=png_label_info(label, keep=text))
    tmp.replace(p)
    return p


def save_labelled_png(image: Any, path: str | Path, label: AIGCLabel) -> Path:
    """Save ``image`` (a PIL image or an RGB array) as a PNG that carries the implicit label."""
    from PIL import Image

    img = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    p = Path(path)
    img.save(p, format="PNG", pnginfo=png_label_info(label))
    return p


def _xmp(label_json: str) -> str:
    esc = label_json.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description xmlns:TC260="http://www.tc260.org.cn/ns/AIGC/1.0/">'
            f"<TC260:AIGC>{esc}</TC260:AIGC></rdf:Description></rdf:RDF></x:xmpmeta>")


def _riff_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    pos = 12
    while pos + 8 <= len(data):
        cid = data[pos:pos + 4]
        size = struct.unpack("<I", data[pos + 4:pos + 8])[0]
        yield cid, pos, size
        pos += 8 + size + (size & 1)


def write_wav_label(path: str | Path, label: AIGCLabel) -> Path:
    """Put the AIGC JSON in the WAV's ``LIST/INFO`` chunk (``ICMT``), replacing an older one.
    Players ignore the chunk; the samples are untouched."""
    p = Path(path)
    data = p.read_bytes()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise InputError(f"{str(p)!r} is not a RIFF/WAVE file")
    body = b"".join(data[pos:pos + 8 + size + (size & 1)] for cid, pos, size in _riff_chunks(data) if cid != b"LIST")
    text = (AIGC_KEY + "=" + label.to_json()).encode("utf-8") + b"\x00"
    sub = b"ICMT" + struct.pack("<I", len(text)) + text + (b"\x00" if len(text) & 1 else b"")
    lst = b"LIST" + struct.pack("<I", 4 + len(sub)) + b"INFO" + sub
    out = b"RIFF" + struct.pack("<I", 4 + len(body) + len(lst)) + b"WAVE" + body + lst
    tmp = p.with_name(f".{p.name}.tmp")
    tmp.write_bytes(out)
    tmp.replace(p)
    return p


def _wav_metadata(path: Path) -> dict[str, str]:
    data = path.read_bytes()
    for cid, pos, size in _riff_chunks(data):
        if cid == b"LIST" and data[pos + 8:pos + 12] == b"INFO":
            sub = data[pos + 12:pos + 8 + size]
            q = 0
            while q + 8 <= len(sub):
                sid = sub[q:q + 4]
                ssize = struct.unpack("<I", sub[q + 4:q + 8])[0]
                value = sub[q + 8:q + 8 + ssize].rstrip(b"\x00").decode("utf-8", "replace")
                if sid == b"ICMT" and value.startswith(AIGC_KEY + "="):
                    return {AIGC_KEY: value[len(AIGC_KEY) + 1:]}
                q += 8 + ssize + (ssize & 1)
    return {}


def _image_metadata(path: Path) -> dict[str, str]:
    from PIL import Image

    with Image.open(path) as img:
        text = dict(getattr(img, "text", {}) or {})
        meta = {k: str(v) for k, v in text.items()}
        xmp = meta.get("XML:com.adobe.xmp") or (img.info.get("xmp") or b"")
    if AIGC_KEY not in meta and xmp:
        import html
        import re

        xs = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else str(xmp)
        m = re.search(r"<TC260:AIGC>(.*?)</TC260:AIGC>", xs, re.S)
        if m:
            meta[AIGC_KEY] = html.unescape(m.group(1))
    return meta


# --------------------------------------------------------------------------------------------
# check
# --------------------------------------------------------------------------------------------
@dataclass(slots=True)
class LabelReport:
    path: str
    kind: str  # video | audio | image
    implicit: dict[str, str] | None
    visible: bool | None  # None: not checked (audio, image, or asked not to)
    corner: str = ""
    frames_checked: int = 0
    frames_marked: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.implicit is not None and self.visible is not False

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data["ok"] = self.ok
        return json.dumps(data, ensure_ascii=False, indent=2)


def check_media(path: str | Path, *, visible: bool = True, style: LabelStyle | None = None,
                seconds: float = 2.0) -> LabelReport:
    """Read the implicit label back, and for videos look for the visible mark in the opening."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{str(p)!r} does not exist or is not a file")
    suffix = p.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        lab = read_label(_image_metadata(p))
        return LabelReport(str(p), "image", asdict(lab) if lab else None, None)
    if suffix in AUDIO_SUFFIXES:
        lab = read_label(_wav_metadata(p))
        return LabelReport(str(p), "audio", asdict(lab) if lab else None, None)
    from core.media import probe

    info = probe(p)
    lab = read_label(info.metadata)
    if info.video is None:
        return LabelReport(str(p), "audio", asdict(lab) if lab else None, None)
    report = LabelReport(str(p), "video", asdict(lab) if lab else None, None)
    if visible:
        find_visible_mark(p, report, style or LabelStyle(), seconds)
    return report


@dataclass(frozen=True, slots=True)
class MarkTemplate:
    """Where the visible mark sits in a frame of a given size, and its letters' and box's pixels."""

    corner: str
    scale: int  # the mark was drawn at 1/scale of the frame size and scaled up since (enhance)
    x: int
    y: int
    text: np.ndarray  # bool mask of the letters
    box: np.ndarray  # bool mask of the darkened box around them

    @property
    def rect(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the mark in frame pixels."""
        return self.x, self.y, self.x + self.text.shape[1], self.y + self.text.shape[0]


def mark_templates(width: int, height: int, style: LabelStyle, corners: tuple[str, ...] = CORNERS,
                   scales: tuple[int, ...] = (1, 2, 3, 4)) -> list[MarkTemplate]:
    """The mark as each corner, scale and placement (inside the UI-safe area, or at the frame's
    edge as marks were placed before) would put it in a ``width`` x ``height`` frame."""
    from dataclasses import replace

    out = []
    for k in scales:
        if min(width, height) // k < 64:
            break
        for corner in corners:
            for inset in (True, False):
                ov = LabelOverlay.build((width // k) - (width // k) % 2, (height // k) - (height // k) % 2,
                                        replace(style, position=corner, inset=inset))
                text = np.repeat(np.repeat(ov.text_mask(), k, 0), k, 1)
                box = np.repeat(np.repeat(ov.box_mask(), k, 0), k, 1)
                if text.sum() < 10 or box.sum() < 10:
                    continue
                out.append(MarkTemplate(corner, k, ov.x * k, ov.y * k, text, box))
    return out


def mark_present(image: np.ndarray, template: MarkTemplate) -> bool:
    """True when the mark's letters are clearly brighter than its box (which darkens what lies beneath)."""
    t = template
    region = image[t.y:t.y + t.text.shape[0], t.x:t.x + t.text.shape[1]].astype(np.float32).mean(axis=2)
    if region.shape != t.text.shape:
        return False
    letters = float(region[t.text].mean())
    return letters - float(region[t.box].mean()) > 45 and letters > 150


def find_visible_mark(path: Path, report: LabelReport, style: LabelStyle, seconds: float = 2.0) -> None:
    """Look for the mark in each corner over the first ``seconds``; the mark counts as present in a
    frame when its letters are clearly brighter than its box (which darkens what lies beneath)."""
    from core.media import iter_frames, probe

    v = probe(path).video
    assert v is not None
    w, h = v.display_size
    n = max(1, int(seconds * v.fps + 0.999))
    frames = [f.image for f in iter_frames(path, end=n)]
    report.frames_checked = len(frames)
    best = ("", 0)
    # the mark may have been drawn at a smaller size and the video upscaled since (enhance): try
    # the template at 1/k of the size, scaled back up by k
    for template in mark_templates(w, h, style):
        hits = sum(1 for img in frames if mark_present(img, template))
        if hits > best[1]:
            best = (template.corner, hits)
    report.corner, report.frames_marked = best
    report.visible = report.frames_checked > 0 and best[1] >= 0.9 * report.frames_checked
    if not report.visible:
        report.notes.append(f"the visible mark {style.text!r} is not on every frame of the first {seconds:g}s "
                            f"({best[1]} of {report.frames_checked} frames)")


def metadata_with_label(metadata: Mapping[str, str], label: AIGCLabel) -> dict[str, str]:
    out = {k: v for k, v in metadata.items() if k.upper() != AIGC_KEY}
    out.update(label_metadata(label))
    return out
