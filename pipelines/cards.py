"""Animatic cards: the picture of a shot when no image model runs.

A card is a styled background (palette from the place and time of day), the scene header, a
character card for the speaker (or the place for narration), the current line as a Chinese
subtitle inside the platform safe area, and the visible "AI生成" label.

Sizes are relative to the frame so 9:16, 16:9 and square all lay out sensibly.
"""

from __future__ import annotations

import colorsys
import hashlib
import logging
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from core.fonts import FontInfo, find_cjk_font

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SafeArea:
    """Fractions of the frame kept clear of platform UI (status bar, buttons, captions).

    Defaults follow the common vertical-video guidance: top 10 %, bottom 20 %, right 12 %
    (the like/comment column), left 6 %.
    """

    top: float = 0.10
    bottom: float = 0.20
    left: float = 0.06
    right: float = 0.12

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        return (int(width * self.left), int(height * self.top),
                int(width * (1 - self.right)), int(height * (1 - self.bottom)))


@dataclass(frozen=True, slots=True)
class LabelStyle:
    text: str = "AI生成"
    position: str = "top-right"
    opacity: float = 0.85
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class CardSpec:
    width: int
    height: int
    header: str  # e.g. "第1集 场2 · 日 · 外 · 未庄"
    place: str
    time_of_day: str = "day"
    speaker: str = ""  # "" for narration / establishing
    subtitle: str = ""
    kind: str = "dialogue"
    label: LabelStyle = field(default_factory=LabelStyle)
    safe: SafeArea = field(default_factory=SafeArea)


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont:
    info: FontInfo = find_cjk_font()
    return ImageFont.truetype(str(info.path), size=size, index=info.index)


def _hue(text: str) -> float:
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF


def _palette(place: str, time_of_day: str) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    h = _hue(place or "scene")
    light, sat = {"night": (0.16, 0.45), "dusk": (0.30, 0.55), "dawn": (0.42, 0.40)}.get(time_of_day, (0.45, 0.35))
    if time_of_day == "night":
        h = 0.58 + 0.12 * h  # blues at night
    top = colorsys.hls_to_rgb(h, light + 0.12, sat)
    bottom = colorsys.hls_to_rgb((h + 0.08) % 1, light - 0.1, sat + 0.1)
    return tuple(int(c * 255) for c in top), tuple(int(c * 255) for c in bottom)  # type: ignore[return-value]


def wrap_text(text: str, font: ImageFont.FreeTypeFont, max_width: int, max_lines: int = 3) -> list[str]:
    """Greedy wrap for CJK (any character may break) that keeps closing punctuation on its line."""
    lines: list[str] = []
    current = ""
    no_start = set("，。！？、；：”’」』）》…,.!?;:")
    for ch in text:
        trial = current + ch
        if font.getlength(trial) <= max_width or not current or ch in no_start:
            current = trial
        else:
            lines.append(current)
            current = ch
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[: max_lines - 1] + ["".join(lines[max_lines - 1:])]
        while font.getlength(lines[-1]) > max_width and len(lines[-1]) > 1:
            lines[-1] = lines[-1][:-2] + "…"
    return lines


def _outlined(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, font: ImageFont.FreeTypeFont,
              fill: tuple[int, int, int], stroke: int) -> None:
    draw.text(xy, text, font=font, fill=fill, stroke_width=stroke, stroke_fill=(0, 0, 0), anchor="mm")


@lru_cache(maxsize=64)
def _background(width: int, height: int, place: str, time_of_day: str) -> Image.Image:
    top, bottom = _palette(place, time_of_day)
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    grad = (np.array(top, np.float32) * (1 - t) + np.array(bottom, np.float32) * t)
    img = np.broadcast_to(grad, (height, width, 3)).copy()
    # soft light blobs, placed by the place name so a location always looks the same
    rng = np.random.default_rng(int(_hue(place) * 1e9))
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for _ in range(4):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height * 0.7)
        r = rng.uniform(0.15, 0.35) * max(width, height)
        glow = np.exp(-(((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r)))[..., None]
        img += glow * rng.uniform(12, 30)
    vignette = 1 - 0.35 * (((xx / width - 0.5) ** 2 + (yy / height - 0.5) ** 2) * 2)[..., None]
    img = np.clip(img * vignette, 0, 255).astype(np.uint8)
    return Image.fromarray(img, "RGB").filter(ImageFilter.GaussianBlur(radius=max(1, width // 200)))


def draw_label(img: Image.Image, style: LabelStyle) -> None:
    """The visible AI-generated mark: text height >= 5 % of the shortest side, in a corner."""
    if not style.enabled or not style.text:
        return
    w, h = img.size
    size = max(12, int(round(min(w, h) * 0.05)))
    font = _font(size)
    pad = max(4, size // 3)
    box_w = int(font.getlength(style.text)) + 2 * pad
    box_h = size + 2 * pad
    margin = max(6, int(min(w, h) * 0.03))
    x = margin if "left" in style.position else w - box_w - margin
    y = margin if "top" in style.position else h - box_h - margin
    overlay = Image.new("RGBA", (box_w, box_h), (0, 0, 0, 0))
    od = ImageDraw.Draw(overlay)
    alpha = int(255 * max(0.0, min(1.0, style.opacity)))
    od.rounded_rectangle((0, 0, box_w - 1, box_h - 1), radius=pad, fill=(0, 0, 0, int(alpha * 0.55)))
    od.text((box_w / 2, box_h / 2), style.text, font=font, fill=(255, 255, 255, alpha), anchor="mm")
    img.paste(overlay, (x, y), overlay)


def render_card(spec: CardSpec) -> np.ndarray:
    """Render one card to an ``H x W x 3`` uint8 RGB array."""
    w, h = spec.width, spec.height
    img = _background(w, h, spec.place, spec.time_of_day).copy()
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = spec.safe.box(w, h)
    unit = min(w, h)
    # scene header
    header_font = _font(max(12, int(unit * 0.035)))
    header = spec.header
    while header and header_font.getlength(header) > (x1 - x0):
        header = header[:-2] + "…"
    draw.text((x0, y0), header, font=header_font, fill=(255, 255, 255), stroke_width=max(1, unit // 400),
              stroke_fill=(0, 0, 0))
    # the character card (or the place, for narration)
    cx, cy = w // 2, int(y0 + (y1 - y0) * 0.38)
    if spec.speaker:
        hue = _hue(spec.speaker)
        color = tuple(int(c * 255) for c in colorsys.hls_to_rgb(hue, 0.55, 0.55))
        r = int(unit * 0.16)
        draw.ellipse((cx - r - 6, cy - r - 6, cx + r + 6, cy + r + 6), fill=(255, 255, 255))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=color)  # type: ignore[arg-type]
        _outlined(draw, (cx, cy), spec.speaker[0], _font(int(r * 1.1)), (255, 255, 255), max(1, unit // 300))
        name_font = _font(max(14, int(unit * 0.06)))
        _outlined(draw, (cx, cy + r + int(unit * 0.07)), spec.speaker, name_font, (255, 240, 200), max(1, unit // 250))
    else:
        place_font = _font(max(16, int(unit * 0.09)))
        place = spec.place or "　"
        while len(place) > 1 and place_font.getlength(place) > (x1 - x0):
            place = place[:-1]
        _outlined(draw, (cx, cy), place, place_font, (255, 255, 255), max(1, unit // 200))
    # subtitle, bottom of the safe area
    if spec.subtitle:
        sub_font = _font(max(14, int(unit * 0.055)))
        lines = wrap_text(spec.subtitle, sub_font, x1 - x0)
        line_h = int(sub_font.size * 1.35)
        base = y1 - line_h * len(lines)
        color = (255, 255, 255) if spec.kind == "dialogue" else (255, 236, 160)
        for i, line in enumerate(lines):
            _outlined(draw, ((x0 + x1) / 2, base + line_h * i + line_h / 2), line, sub_font, color,
                      max(2, unit // 180))
    draw_label(img, spec.label)
    return np.asarray(img, dtype=np.uint8)
