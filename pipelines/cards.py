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

    Defaults clear the UI regions the QC agent checks (:mod:`pipelines.qc.platforms`): the top
    bar (10 %), the bottom info band (20 %) and the right column of buttons (15 %, kept 16 % so an
    outline's last pixels stay out too); the left margin is 8 % so centred text sits near the middle.
    """

    top: float = 0.10
    bottom: float = 0.20
    left: float = 0.08
    right: float = 0.16

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        return (int(width * self.left), int(height * self.top),
                int(width * (1 - self.right)), int(height * (1 - self.bottom)))


@dataclass(frozen=True, slots=True)
class LabelStyle:
    text: str = "AI生成"
    position: str = "top-right"
    opacity: float = 0.85
    enabled: bool = True
    # True: the corner of the UI-safe area (below the apps' top bar, above their bottom band, clear
    # of the right column of buttons); False: the frame's own corner (how marks were placed before)
    inset: bool = True


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
    show_header: bool = True
    show_character: bool = True  # the speaker's card, or the place name for narration


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont:
    info: FontInfo = find_cjk_font()
    return ImageFont.truetype(str(info.path), size=max(1, size), index=info.index)


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
        lines[-1] = fit_line(lines[-1], font, max_width) or lines[-1][:1]
    return lines


def fit_line(text: str, font: ImageFont.FreeTypeFont, max_width: float, ellipsis: str = "…") -> str:
    """``text``, or its longest head + ``ellipsis`` that fits ``max_width``; "" when not even that fits.

    Each step drops one more character, so it ends for any width (a 2-pixel frame included).
    """
    if font.getlength(text) <= max_width:
        return text
    for n in range(len(text) - 1, -1, -1):
        candidate = text[:n] + ellipsis
        if font.getlength(candidate) <= max_width:
            return candidate
    return ""


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
    if style.inset:
        safe = SafeArea()
        if "top" in style.position:
            y = int(h * safe.top) + margin
        else:
            y = int(h * (1 - safe.bottom)) - box_h - margin
            if "right" in style.position:  # beside the right column of buttons
                x = int(w * (1 - safe.right)) - box_w - margin
    overlay = Image.new("RGBA", (box_w, box_h), (0, 0, 0, 0))
    od = ImageDraw.Draw(overlay)
    alpha = int(255 * max(0.0, min(1.0, style.opacity)))
    od.rounded_rectangle((0, 0, box_w - 1, box_h - 1), radius=pad, fill=(0, 0, 0, int(alpha * 0.55)))
    od.text((box_w / 2, box_h / 2), style.text, font=font, fill=(255, 255, 255, alpha), anchor="mm")
    img.paste(overlay, (x, y), overlay)


@dataclass(frozen=True, slots=True)
class CardLayers:
    """A card split for motion: the plate moves with the camera, the sprite with parallax, the
    overlay (header, subtitle, label) stays put."""

    background: np.ndarray  # H x W x 3 uint8
    sprite: np.ndarray | None  # h x w x 4 uint8 (the character card), or None
    sprite_xy: tuple[int, int]  # its top-left on the frame
    overlay: np.ndarray  # H x W x 4 uint8


def _character_sprite(spec: CardSpec) -> tuple[Image.Image, tuple[int, int]] | None:
    w, h = spec.width, spec.height
    x0, y0, x1, y1 = spec.safe.box(w, h)
    unit = min(w, h)
    cx, cy = w // 2, int(y0 + (y1 - y0) * 0.38)
    if spec.speaker:
        hue = _hue(spec.speaker)
        color = tuple(int(c * 255) for c in colorsys.hls_to_rgb(hue, 0.55, 0.55))
        r = int(unit * 0.16)
        name_font = _font(max(14, int(unit * 0.06)))
        name_w = int(name_font.getlength(spec.speaker)) + 2 * max(2, unit // 250)
        half_w = max(r + 8, name_w // 2 + 4)
        top, bottom = cy - r - 8, cy + r + int(unit * 0.07) + int(name_font.size)
        sprite = Image.new("RGBA", (2 * half_w, bottom - top), (0, 0, 0, 0))
        d = ImageDraw.Draw(sprite)
        ox, oy = half_w - cx, -top
        d.ellipse((cx - r - 6 + ox, cy - r - 6 + oy, cx + r + 6 + ox, cy + r + 6 + oy), fill=(255, 255, 255, 255))
        d.ellipse((cx - r + ox, cy - r + oy, cx + r + ox, cy + r + oy), fill=(*color, 255))  # type: ignore[arg-type]
        _outlined(d, (cx + ox, cy + oy), spec.speaker[0], _font(int(r * 1.1)), (255, 255, 255), max(1, unit // 300))
        _outlined(d, (cx + ox, cy + r + int(unit * 0.07) + oy), spec.speaker, name_font, (255, 240, 200),
                  max(1, unit // 250))
        return sprite, (cx - half_w, top)
    place_font = _font(max(16, int(unit * 0.09)))
    place = spec.place or "　"
    while len(place) > 1 and place_font.getlength(place) > (x1 - x0):
        place = place[:-1]
    pw = int(place_font.getlength(place)) + 4 * max(1, unit // 200) + 8
    ph = int(place_font.size * 1.4) + 8
    sprite = Image.new("RGBA", (pw, ph), (0, 0, 0, 0))
    _outlined(ImageDraw.Draw(sprite), (pw / 2, ph / 2), place, place_font, (255, 255, 255), max(1, unit // 200))
    return sprite, (cx - pw // 2, cy - ph // 2)


def render_overlay(spec: CardSpec) -> np.ndarray:
    """The fixed layer of a card (header, subtitle, AI label) as H x W x 4 RGBA."""
    w, h = spec.width, spec.height
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    x0, y0, x1, y1 = spec.safe.box(w, h)
    unit = min(w, h)
    if spec.show_header and spec.header:
        header_font = _font(max(12, int(unit * 0.035)))
        header = fit_line(spec.header, header_font, x1 - x0)
        draw.text((x0, y0), header, font=header_font, fill=(255, 255, 255), stroke_width=max(1, unit // 400),
                  stroke_fill=(0, 0, 0))
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


def render_layers(spec: CardSpec, background: np.ndarray | None = None) -> CardLayers:
    """The card as layers; ``background`` (the frame's size) replaces the generated plate."""
    bg = np.asarray(_background(spec.width, spec.height, spec.place, spec.time_of_day), dtype=np.uint8) \
        if background is None else background
    sprite = _character_sprite(spec) if spec.show_character else None
    return CardLayers(background=bg, sprite=np.asarray(sprite[0], dtype=np.uint8) if sprite else None,
                      sprite_xy=sprite[1] if sprite else (0, 0), overlay=render_overlay(spec))


def plate(width: int, height: int, place: str, time_of_day: str) -> np.ndarray:
    """A generated background plate (palette and light from the place and time of day)."""
    return np.asarray(_background(width, height, place, time_of_day), dtype=np.uint8)


def composite(layers: CardLayers) -> np.ndarray:
    """Flatten the layers into one RGB frame (sprite at its start position)."""
    img = Image.fromarray(layers.background).convert("RGBA")
    if layers.sprite is not None:
        sprite = Image.fromarray(layers.sprite, "RGBA")
        img.alpha_composite(sprite, dest=_clip_dest(layers.sprite_xy, sprite.size, img.size), source=_clip_src(layers.sprite_xy))
    img.alpha_composite(Image.fromarray(layers.overlay, "RGBA"))
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _clip_dest(xy: tuple[int, int], size: tuple[int, int], frame: tuple[int, int]) -> tuple[int, int]:
    return max(0, xy[0]), max(0, xy[1])


def _clip_src(xy: tuple[int, int]) -> tuple[int, int]:
    return max(0, -xy[0]), max(0, -xy[1])


def render_card(spec: CardSpec) -> np.ndarray:
    """Render one card to an ``H x W x 3`` uint8 RGB array."""
    return composite(render_layers(spec))


def render_cover(image: np.ndarray, title: str, subtitle: str, label: LabelStyle) -> np.ndarray:
    """An episode cover: a keyframe with the series title and the episode line, and the AI label."""
    img = Image.fromarray(np.ascontiguousarray(image[..., :3])).convert("RGBA")
    w, h = img.size
    unit = min(w, h)
    shade = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    sd = ImageDraw.Draw(shade)
    band_top = int(h * 0.55)
    for y in range(band_top, h):  # darken the lower part so the title reads on any picture
        sd.line([(0, y), (w, y)], fill=(0, 0, 0, int(170 * (y - band_top) / max(1, h - band_top))))
    img.alpha_composite(shade)
    draw = ImageDraw.Draw(img)
    safe = SafeArea()
    x0, _, x1, y1 = safe.box(w, h)
    title_font = _font(max(18, int(unit * 0.11)))
    lines = wrap_text(title, title_font, x1 - x0, max_lines=2)
    sub_font = _font(max(14, int(unit * 0.055)))
    y = y1 - int(sub_font.size * 1.6) - int(title_font.size * 1.25) * len(lines)
    for line in lines:
        _outlined(draw, ((x0 + x1) / 2, y + title_font.size / 2), line, title_font, (255, 230, 150), max(2, unit // 120))
        y += int(title_font.size * 1.25)
    _outlined(draw, ((x0 + x1) / 2, y + sub_font.size), subtitle, sub_font, (255, 255, 255), max(2, unit // 200))
    draw_label(img, label)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)
