"""The picture as delivered: black, frozen and flickering frames, the visible AI mark, text under the app's UI.

One decoding pass over every frame. Each frame is scaled in FFmpeg to a small grey image
(1/12 of the width) for the per-frame statistics: its mean, its 8x8 grid of block means, and its
mean absolute difference from the frame before. Those few numbers per frame are all that is
kept, so memory stays flat. Sampled frames (the opening two seconds, then every two seconds and
each cue's middle) are also converted to full-size RGB and handed to the samplers: the visible
mark, burned-in text, faces (:mod:`pipelines.qc.identity`).

* ``black_frames``: a frame is black when its mean is under 16/255 and its 98th percentile under
  32/255; runs of 0.5 s or more fail (a fade of up to 1 s at the very start or end is allowed).
* ``frozen_frames``: a still run (consecutive frames differing by under 0.012/255 on average at
  1/12 size: a repeated frame through H.264; our still cards measured 0.012 at their 99th
  percentile, our slowest camera moves 0.017 at their 5th) of 0.5 s or more, inside one shot,
  with motion (over 0.03/255) on most of the 10 frames right before and right after it: the
  picture stopped while the shot was moving. A shot still throughout (an animatic card) is not
  frozen, nor is the slow start or end of an eased camera move.
* ``flicker``: within a shot, the whole picture's brightness jumps by more than 6/255 and jumps
  back within 3 frames, with at least 70 % of the 8x8 blocks moving the same way (a subtitle or
  a cut is local or is a boundary; a fade is monotonic).
* ``label_visible``: the mark must be on at least 90 % of the frames of the first two seconds (GB
  45438-2025 asks for the opening), and is looked for on later samples too (missing later: warn).
* ``safe_zone``: the mark's box and the burned-in text found at the cues' middles (bright
  letters with a dark outline, grouped into lines) must not reach into the platform's UI regions
  (:mod:`pipelines.qc.platforms`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.qc.base import CheckResult, CueFact, EpisodeFacts, Span, Status, merge_spans, skipped
from pipelines.qc.platforms import Platform

log = logging.getLogger(__name__)

BLACK_MEAN, BLACK_P98 = 16.0, 32.0
BLACK_LIMIT_S, FADE_ALLOWANCE_S = 0.5, 1.0
STILL_DIFF = 0.012
MOTION_DIFF = 0.03
FREEZE_LIMIT_S = 0.5
MOTION_CONTEXT = 10
FLICKER_JUMP, FLICKER_SPAN, FLICKER_AGREE = 6.0, 3, 0.7
CUT_JUMP = 12.0  # mean change of the 8x8 block means at a cut (when the shots are not known)
SAMPLE_EVERY_S = 2.0
OPENING_S = 2.0

Sampler = Callable[[int, float, np.ndarray], None]  # (frame index, time s, RGB image)


@dataclass(slots=True)
class FrameStats:
    fps: Fraction
    width: int
    height: int
    count: int = 0
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    p98: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    diff: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # vs the frame before; 0 for the first
    blocks: np.ndarray = field(default_factory=lambda: np.zeros((0, 64), np.float32))

    def time(self, index: int) -> float:
        return float(Fraction(index) / self.fps)


def scan_frames(path: Path, sample_times: Sequence[float], samplers: Sequence[Sampler], *,
                opening_s: float = OPENING_S) -> FrameStats:
    """Decode every frame once; keep per-frame statistics; hand full-size RGB frames to the samplers
    for every frame of the opening and the frame nearest each of ``sample_times``."""
    from core.media import decoded_frames, probe

    info = probe(path)
    if info.video is None:
        raise ValueError("no video stream")
    v = info.video
    w, h = v.display_size
    sw = max(16, w // 12)
    sh = max(16, int(round(sw * h / w)))
    if v.rotation % 180 == 90:
        sw, sh = sh, sw
    fps = v.fps
    opening = int(opening_s * fps + 0.999)
    wanted = sorted({int(round(t * fps)) for t in sample_times} | set(range(opening)))
    next_sample = 0
    means, p98s, diffs, blocks = [], [], [], []
    prev: np.ndarray | None = None
    index = 0
    k = (v.rotation // 90) % 4
    for frame in decoded_frames(path):
        grey = frame.reformat(width=sw, height=sh, format="gray", interpolation="AREA").to_ndarray()
        small = (np.rot90(grey, k=k) if k else grey).astype(np.float32)
        means.append(small.mean())
        p98s.append(np.percentile(small, 98))
        diffs.append(0.0 if prev is None else float(np.abs(small - prev).mean()))
        gh, gw = small.shape[0] // 8 * 8, small.shape[1] // 8 * 8
        blocks.append(small[:gh, :gw].reshape(8, gh // 8, 8, gw // 8).mean(axis=(1, 3)).reshape(64))
        prev = small
        while next_sample < len(wanted) and wanted[next_sample] < index:
            next_sample += 1
        if next_sample < len(wanted) and wanted[next_sample] == index and samplers:
            raw = frame.to_ndarray(format="rgb24")
            rgb: np.ndarray = np.ascontiguousarray(np.rot90(raw, k=k)) if k else raw
            t = float(Fraction(index) / fps)
            for fn in samplers:
                fn(index, t, rgb)
        index += 1
    return FrameStats(fps=fps, width=w, height=h, count=index, mean=np.asarray(means, np.float32),
                      p98=np.asarray(p98s, np.float32), diff=np.asarray(diffs, np.float32),
                      blocks=np.asarray(blocks, np.float32).reshape(-1, 64))


def sample_times(seconds: float, cues: Sequence[CueFact], every: float = SAMPLE_EVERY_S) -> list[float]:
    times = {round(t, 3) for t in np.arange(0.0, max(0.0, seconds), every).tolist()}
    times |= {round((c.start + c.end) / 2, 3) for c in cues}
    return sorted(t for t in times if t < seconds)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def shot_bounds(stats: FrameStats, facts: EpisodeFacts) -> list[int]:
    """Frame indices where a shot starts (from the project's shot list, else found by the jump)."""
    if facts.shots:
        return sorted({0, *(int(round(s.start * stats.fps)) for s in facts.shots)})
    if not stats.count:
        return [0]
    jumps = np.r_[0.0, np.abs(np.diff(stats.blocks, axis=0)).mean(axis=1)]
    return [0, *np.flatnonzero(jumps > CUT_JUMP).tolist()]


# ------------------------------------------------------------------------------------------
# checks on the per-frame statistics
# ------------------------------------------------------------------------------------------
def black_check(stats: FrameStats) -> CheckResult:
    black = (stats.mean < BLACK_MEAN) & (stats.p98 < BLACK_P98)
    bad: list[Span] = []
    longest = 0.0
    for a, b in _runs(black):
        length = (b - a) / float(stats.fps)
        at_edge = a == 0 or b == stats.count
        limit = FADE_ALLOWANCE_S if at_edge else BLACK_LIMIT_S
        if length >= limit:
            bad.append((stats.time(a), stats.time(b)))
            longest = max(longest, length)
    total = float(black.sum()) / float(stats.fps)
    detail = (f"{len(bad)} black stretch(es), the longest {longest:.2f}s" if bad
              else f"no black stretch of {BLACK_LIMIT_S:g}s or more ({total:.2f}s of black frames in all)")
    return CheckResult("black_frames", Status.FAIL if bad else Status.PASS, round(longest, 3), BLACK_LIMIT_S, bad,
                       detail=detail)


def frozen_check(stats: FrameStats, facts: EpisodeFacts) -> CheckResult:
    still = stats.diff < STILL_DIFF
    still[0] = False
    moving = stats.diff > MOTION_DIFF
    bounds = shot_bounds(stats, facts)
    shot_of = np.searchsorted(np.asarray(bounds), np.arange(stats.count), side="right") - 1
    need = int(round(FREEZE_LIMIT_S * float(stats.fps)))
    bad: list[Span] = []
    longest = 0.0
    for a, b in _runs(still):
        if b - a < need:
            continue
        first = a - 1  # the frame a still run repeats
        if first < 0 or b >= stats.count or shot_of[first] != shot_of[b - 1]:
            continue
        shot = shot_of[first]
        before = [i for i in range(max(1, first - MOTION_CONTEXT + 1), first + 1) if shot_of[i] == shot and shot_of[i - 1] == shot]
        after = [i for i in range(b, min(stats.count, b + MOTION_CONTEXT)) if shot_of[i] == shot]
        if len(before) < 3 or len(after) < 3:
            continue
        if moving[before].mean() >= 0.6 and moving[after].mean() >= 0.6:
            bad.append((stats.time(first), stats.time(b)))
            longest = max(longest, (b - first) / float(stats.fps))
    detail = (f"{len(bad)} freeze(s) inside moving shots, the longest {longest:.2f}s" if bad
              else "no freeze inside a moving shot")
    return CheckResult("frozen_frames", Status.FAIL if bad else Status.PASS, round(longest, 3), FREEZE_LIMIT_S, bad,
                       detail=detail)


def flicker_check(stats: FrameStats, facts: EpisodeFacts) -> CheckResult:
    if stats.count < 3:
        return skipped("flicker", "too few frames")
    bounds = set(shot_bounds(stats, facts))
    d = np.r_[0.0, np.diff(stats.mean)]
    bd = np.r_[np.zeros((1, 64), np.float32), np.diff(stats.blocks, axis=0)]
    events: list[int] = []
    for i in np.flatnonzero(np.abs(d) > FLICKER_JUMP).tolist():
        if i == 0 or any(abs(i - b) <= 1 for b in bounds if b):
            continue
        sign = np.sign(d[i])
        if (np.sign(bd[i]) == sign).mean() < FLICKER_AGREE or (np.abs(bd[i]) > 2).mean() < FLICKER_AGREE:
            continue
        for j in range(i + 1, min(stats.count, i + FLICKER_SPAN + 1)):
            if j in bounds:
                break
            if np.sign(d[j]) == -sign and abs(d[j]) > FLICKER_JUMP:
                events.append(i)
                break
    where = merge_spans(((stats.time(i - 1), stats.time(i + FLICKER_SPAN)) for i in events), gap=0.2)
    detail = (f"{len(events)} brightness jump(s) that come straight back, within shots" if events
              else "no flicker within shots")
    return CheckResult("flicker", Status.FAIL if events else Status.PASS, len(events), 0, where[:50], detail=detail)


# ------------------------------------------------------------------------------------------
# samplers: the visible mark and burned-in text
# ------------------------------------------------------------------------------------------
class MarkSampler:
    """Finds the visible mark's corner in the opening, then checks each sampled frame for it."""

    def __init__(self, width: int, height: int, text: str, position: str, opening_s: float = OPENING_S) -> None:
        from pipelines.cards import LabelStyle
        from pipelines.label import mark_templates

        self.templates = mark_templates(width, height, LabelStyle(text=text, position=position))
        self.opening_s = opening_s
        self.hits: dict[int, int] = {i: 0 for i in range(len(self.templates))}
        self.opening_frames = 0
        self.chosen: int | None = None
        self.later: list[tuple[float, bool]] = []

    def __call__(self, index: int, t: float, rgb: np.ndarray) -> None:
        from pipelines.label import mark_present

        if t < self.opening_s:
            self.opening_frames += 1
            for i, tpl in enumerate(self.templates):
                if mark_present(rgb, tpl):
                    self.hits[i] += 1
            return
        if self.chosen is None:
            self.chosen = max(self.hits, key=lambda i: self.hits[i]) if self.templates else -1
        if self.chosen >= 0:
            self.later.append((t, mark_present(rgb, self.templates[self.chosen])))

    @property
    def template(self) -> Any:
        if not self.templates:
            return None
        best = self.chosen if self.chosen is not None and self.chosen >= 0 else max(self.hits, key=lambda i: self.hits[i])
        return self.templates[best] if self.hits[best] else None


def label_visible_check(ms: MarkSampler, enabled: bool = True) -> CheckResult:
    if not ms.templates:
        return skipped("label_visible", "the frame is too small to hold the mark")
    tpl = ms.template
    hits = ms.hits[ms.templates.index(tpl)] if tpl is not None else 0
    share = hits / ms.opening_frames if ms.opening_frames else 0.0
    missing = [t for t, ok in ms.later if not ok]
    later_share = 1 - len(missing) / len(ms.later) if ms.later else 1.0
    where = merge_spans(((t, t + SAMPLE_EVERY_S) for t in missing), gap=0.01)
    if share < 0.9:
        status = Status.FAIL
        detail = (f"the visible mark is on {hits} of {ms.opening_frames} frames of the first {ms.opening_s:g}s "
                  f"(at least 90 % needed)")
        if not enabled:
            detail += "; the project's label is switched off"
    elif missing:
        status = Status.WARN
        detail = (f"the mark ({tpl.corner}) opens the episode, but is missing on {len(missing)} of {len(ms.later)} "
                  "later samples")
    else:
        status = Status.PASS
        detail = f"the mark is in the {tpl.corner} corner on {share:.0%} of the opening and on every later sample"
    return CheckResult("label_visible", status, {"opening": round(share, 3), "later": round(later_share, 3)},
                       {"opening": 0.9}, where[:50], detail=detail,
                       data={"corner": tpl.corner if tpl else "", "rect": list(tpl.rect) if tpl else []})


class TextSampler:
    """Burned-in text at each cue's middle: bright letters with a dark outline, grouped into lines."""

    def __init__(self, cues: Sequence[CueFact], fps: Fraction, exclude: Callable[[], Any] | None = None) -> None:
        self.wanted = {int(round((c.start + c.end) / 2 * fps)) for c in cues}
        self.boxes: list[tuple[float, tuple[int, int, int, int]]] = []
        self.exclude = exclude

    def __call__(self, index: int, t: float, rgb: np.ndarray) -> None:
        if index not in self.wanted:
            return
        skip = self.exclude() if self.exclude is not None else None
        for box in text_boxes(rgb, skip.rect if skip is not None else None):
            self.boxes.append((t, box))


def text_boxes(rgb: np.ndarray, exclude: tuple[int, int, int, int] | None = None) -> list[tuple[int, int, int, int]]:
    """Lines of outlined text (x0, y0, x1, y1) in an RGB frame, as the cards and subtitle burners draw them."""
    import cv2

    h, w = rgb.shape[:2]
    scale = 2 if min(w, h) >= 720 else 1  # half size is plenty for letters 5 % of the frame tall
    img = rgb[::scale, ::scale]
    luma = (img[..., 0].astype(np.uint16) * 77 + img[..., 1].astype(np.uint16) * 150 + img[..., 2].astype(np.uint16) * 29) >> 8
    bright = luma > 190
    dark = (luma < 50).astype(np.uint8)
    near_dark = cv2.dilate(dark, np.ones((3, 3), np.uint8), iterations=max(2, 6 // scale)) > 0
    text = bright & near_dark
    if exclude is not None:
        x0, y0, x1, y1 = (v // scale for v in exclude)
        text[max(0, y0 - 2):y1 + 2, max(0, x0 - 2):x1 + 2] = False
    hh, ww = text.shape
    rows = text.sum(axis=1)
    # transitions along each row: letters switch on and off often, a bright edge does not
    flips = np.abs(np.diff(text.astype(np.int8), axis=1)).sum(axis=1)
    line_rows = (rows >= max(3, ww // 200)) & (flips >= 6)
    out = []
    for a, b in _runs(line_rows):
        if b - a < max(3, hh // 120):
            continue
        band = text[a:b]
        xs = np.flatnonzero(band.any(axis=0))
        if len(xs) < max(4, ww // 100):
            continue
        x0, x1 = int(np.percentile(xs, 1)), int(np.percentile(xs, 99)) + 1
        out.append((x0 * scale, a * scale, x1 * scale, b * scale))
    return out


def safe_zone_check(platform: Platform, width: int, height: int, mark: Any, texts: TextSampler | None) -> CheckResult:
    if not platform.regions:
        return skipped("safe_zone", f"no UI regions known for {platform.name}")
    regions = [(r.name, r.pixels(width, height)) for r in platform.regions]
    hits: list[dict[str, Any]] = []
    where: list[Span] = []

    def intrusion(box: tuple[int, int, int, int], reg: tuple[int, int, int, int]) -> int:
        iw = min(box[2], reg[2]) - max(box[0], reg[0])
        ih = min(box[3], reg[3]) - max(box[1], reg[1])
        # a pixel or two of outline touching the edge is not covered text
        return min(iw, ih) if iw > 0 and ih > 0 and min(iw, ih) >= max(4, min(width, height) // 200) else 0

    if mark is not None:
        for name, reg in regions:
            depth = intrusion(mark.rect, reg)
            if depth:
                hits.append({"what": "AI mark", "region": name, "box": list(mark.rect), "depth_px": depth})
    worst_text = 0
    if texts is not None:
        for t, box in texts.boxes:
            for name, reg in regions:
                depth = intrusion(box, reg)
                if depth:
                    worst_text = max(worst_text, depth)
                    hits.append({"what": "text", "t": round(t, 2), "region": name, "box": list(box), "depth_px": depth})
                    where.append((max(0.0, t - 0.5), t + 0.5))
    mark_hits = [x for x in hits if x["what"] == "AI mark"]
    text_hits = [x for x in hits if x["what"] == "text"]
    parts = []
    if mark_hits:
        parts.append(f"the AI mark {tuple(mark.rect)} lies under the {mark_hits[0]['region']}")
    if text_hits:
        regions_hit = sorted({x["region"] for x in text_hits})
        parts.append(f"burned-in text at {len({x['t'] for x in text_hits})} cue(s) reaches under the {', '.join(regions_hit)} "
                     f"(up to {worst_text} px)")
    checked = len({t for t, _ in texts.boxes}) if texts is not None else 0
    if not parts:
        detail = (f"the AI mark and the text at {checked} sampled cue(s) stay clear of {platform.title}'s UI regions"
                  + ("" if mark is not None else " (no mark found to place)"))
    else:
        detail = "; ".join(parts)
    return CheckResult("safe_zone", Status.FAIL if hits else Status.PASS, len(hits), 0, merge_spans(where)[:50],
                       detail=detail, data={"regions": [{"name": n, "box": list(r)} for n, r in regions],
                                            "hits": hits[:100], "frame": [width, height]})
