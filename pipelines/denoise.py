"""Denoising, deblocking and mild sharpening for frames and single images (CPU, OpenCV).

Video: :class:`TemporalDenoiser` is a *causal* streaming stage — each output frame depends on
the current and past input frames only, so it returns exactly as many frames as it is given,
with no lag and no ``flush``. That makes it a drop-in ``fn`` for
:func:`pipelines.video.process_video` (alone or composed with an upscaler) and needs no change
there. It keeps one motion-compensated running average per pixel:

1. **Deblock** (``deblock="auto"`` detects an 8x8 grid and its phase from the frame itself):
   steps across block edges that are small against the local texture are spread as a ramp over
   the four pixels around the edge; real edges (large steps, or textured sides) are left alone.
   ``deblock="on"`` also filters when no grid is detected (assuming one at the frame origin).
2. **Temporal**: the DIS optical flow (downscaled luma) from the current frame to the previous
   *input* frame carries the previous *output* and its per-pixel frame count onto the current
   grid. Where the carried picture agrees with the current frame (difference within the noise
   level) the two are averaged with the count as weight (up to ``history`` frames); where it
   does not (occlusion, new objects, wrong flow, a cut) the current frame is kept alone. The
   noise level is measured every frame from the motion-compensated difference of the inputs
   (a median, robust to moving objects), so nothing is assumed about the source.
3. **Spatial**: an edge-preserving (bilateral) pass whose share at each pixel falls as
   ``1/sqrt(count)``: it cleans what the averaging could not (moving areas, the first frames,
   after a cut) and barely touches static areas that are already clean.
4. **Sharpen** (``sharpen`` > 0): an unsharp mask on luma with a threshold above the remaining
   noise, so it restores edges without bringing the grain back.

Single images (:func:`denoise_image`) get the same chain without step 2.

The per-frame (non-temporal) baseline that the tests and the benchmark compare against is the
same chain with ``temporal=False``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError
from models.flow_utils import (
    DISFlow,
    backward_warp,
    flow_factor,
    sampled_warp,
    shrink,
    to_luma,
    upsample_flow,
)

log = logging.getLogger(__name__)

DEBLOCK_MODES = ("auto", "on", "off")
# a block grid is reported when the mean step across its edges exceeds the median step at the
# other column (row) phases by this factor
BLOCKINESS_THRESHOLD = 1.12
_MAD_TO_SIGMA = 1.0 / 0.6745  # median absolute deviation of a Gaussian -> its sigma
# Tuned on vtest.avi and Megamind.avi (opencv-doc) with synthetic noise and JPEG blocking, see
# benchmarks/restore_bench.py; the deblocking constants on seven opencv-doc pictures at
# JPEG quality 10-35.
_DEBLOCK_TAPS = 2  # pixels on each side of a block edge that the ramp spreads over
_DEBLOCK_ALPHA = 8.0  # steps up to this many times the measured excess step are blocking
_DEBLOCK_BETA = 2.0  # sides smoother than this many times the excess step count as flat
_AGREE_TOLERANCE = 2.0  # spreads of the motion-compensated difference still averaged in
_BILATERAL_DIAMETER = 7
_BILATERAL_COLOR = 5.0  # x noise sigma
_BILATERAL_SPACE = 2.5
_STAT_STEP = 4  # medians are taken on every 4th row and column


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - a core dependency
        from core.errors import MissingDependencyError

        raise MissingDependencyError("opencv-python-headless", "all") from e
    return cv2


@dataclass(frozen=True, slots=True)
class DenoiseSettings:
    """How hard to clean. The defaults suit a light-to-moderate noisy or blocky source.

    ``strength`` scales the noise level every filter assumes (0 = no denoising, 1 = as measured,
    2 = twice as aggressive); ``history`` caps how many frames one pixel may average;
    ``sharpen`` is the unsharp-mask amount on luma (0.2-0.5 is mild, 0 = off);
    ``noise_sigma`` fixes the noise level (8-bit levels) instead of measuring it.
    """

    strength: float = 1.0
    temporal: bool = True
    history: int = 8
    deblock: str = "auto"
    spatial: bool = True
    sharpen: float = 0.0
    flow_max_side: int = 480
    noise_sigma: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.strength <= 4.0:
            raise InputError(f"denoise strength must be between 0 and 4, got {self.strength}",
                             hint="1 = as measured; 0.5 lighter; 2 stronger")
        if not 1 <= self.history <= 64:
            raise InputError(f"history must be between 1 and 64 frames, got {self.history}")
        if self.deblock not in DEBLOCK_MODES:
            raise InputError(f"deblock must be one of {', '.join(DEBLOCK_MODES)}, got {self.deblock!r}")
        if not 0.0 <= self.sharpen <= 2.0:
            raise InputError(f"sharpen amount must be between 0 and 2, got {self.sharpen}")
        if self.flow_max_side < 64:
            raise InputError(f"flow_max_side must be at least 64 pixels, got {self.flow_max_side}")
        if self.noise_sigma is not None and not 0.0 <= self.noise_sigma <= 100.0:
            raise InputError(f"noise_sigma must be between 0 and 100 (8-bit levels), got {self.noise_sigma}")


# --------------------------------------------------------------------------------------------
# measurements
# --------------------------------------------------------------------------------------------
def psnr(reference: np.ndarray, test: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two uint8 images (inf when identical)."""
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(test, dtype=np.float64)
    if a.shape != b.shape:
        raise InputError(f"cannot compare images of shapes {a.shape} and {b.shape}")
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def _immerkaer(gray: np.ndarray) -> float:
    cv2 = _cv2()
    y = gray.astype(np.float32)
    if min(y.shape[:2]) < 3:
        return 0.0
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    r = cv2.filter2D(y, -1, kernel, borderType=cv2.BORDER_REFLECT)[1:-1, 1:-1]
    return float(np.median(np.abs(r)) * _MAD_TO_SIGMA / 6.0)


def estimate_noise(image: np.ndarray) -> float:
    """Noise sigma (8-bit levels) of one image, from its luma (Immerkaer's mask, median form).

    The 3x3 mask ``[1 -2 1; -2 4 -2; 1 -2 1]`` cancels smooth image content; on white noise
    its response has sigma ``6 * sigma``, and the median of the absolute response (not the
    mean) keeps edges and texture from counting as noise. Grain that lossy compression has
    smoothed barely shows at full size, so the half-size copy is measured too (white noise
    halves there, hence the factor 2) and the larger estimate wins.
    """
    y = to_luma(image)
    full = _immerkaer(y)
    half = 2.0 * _immerkaer(shrink(y, 2)) if min(y.shape[:2]) >= 16 else 0.0
    return max(full, half)


@dataclass(frozen=True, slots=True)
class BlockGrid:
    """An 8x8 coding-block grid found in a picture: phase (offset) and evidence per axis."""

    offset_x: int
    offset_y: int
    ratio_x: float  # mean |step| across grid columns / median of the other column phases
    ratio_y: float
    step: float  # mean excess step across grid edges, 8-bit levels
    found_x: bool = False
    found_y: bool = False

    @property
    def present(self) -> bool:
        return self.found_x or self.found_y


def _axis_blockiness(diffs: np.ndarray, size: int) -> tuple[int, float, float, bool]:
    """(phase, ratio, excess, found) from the mean absolute steps ``diffs`` (one per boundary).

    A coding grid raises the steps at exactly one phase out of ``size``: the best phase must
    beat the median of the others by :data:`BLOCKINESS_THRESHOLD`, by at least 0.75 levels,
    and clearly beat the runner-up (a pattern with period 2 or 4 raises several phases).
    """
    n = diffs.shape[0]
    if n < 2 * size:
        return 0, 1.0, 0.0, False
    # boundary j lies between pixel j and j+1; a grid with offset o has edges where (j+1) % 8 == o
    phase_of = (np.arange(n) + 1) % size
    means = np.array([diffs[phase_of == p].mean() for p in range(size)])
    best = int(np.argmax(means))
    others = np.sort(np.delete(means, best))
    base = float(np.median(others))
    ratio = float(means[best] / base) if base > 1e-6 else (1.0 if means[best] < 1e-6 else 10.0)
    excess = float(means[best] - base)
    runner_up = float(others[-1])
    found = ratio >= BLOCKINESS_THRESHOLD and excess >= 0.75 and means[best] >= 1.08 * runner_up
    return best, ratio, excess, found


def detect_blocks(image: np.ndarray, size: int = 8) -> BlockGrid:
    """Find the coding-block grid of a decoded picture from the steps between pixel columns/rows."""
    y = to_luma(image).astype(np.int16)
    col = np.abs(np.diff(y, axis=1)).mean(axis=0)
    row = np.abs(np.diff(y, axis=0)).mean(axis=1)
    ox, rx, ex, fx = _axis_blockiness(col, size)
    oy, ry, ey, fy = _axis_blockiness(row, size)
    return BlockGrid(ox, oy, rx, ry, max(ex if fx else 0.0, ey if fy else 0.0), fx, fy)


def _deblock_axis(plane: np.ndarray, offset: int, alpha: float, beta: float, size: int) -> None:
    """Filter vertical edges (between columns ``x-1`` and ``x``, ``x = offset + k*size``) in place.

    Per edge row: ``s`` is the step across the edge beyond the local slope. When it is below
    ``alpha`` and both sides are smooth (variation over the ``_DEBLOCK_TAPS`` pixels on each side below
    ``beta``) it is replaced by a linear ramp over the ``2*TAPS`` pixels around the edge,
    which removes the step, keeps the mean and touches nothing across real edges.
    """
    w = plane.shape[1]
    t = _DEBLOCK_TAPS
    xs = np.arange(offset % size, w, size)
    xs = xs[(xs >= t) & (xs <= w - t)]
    if xs.size == 0:
        return
    p = [plane[:, xs - 1 - i] for i in range(t)]  # p[0] next to the edge
    q = [plane[:, xs + i] for i in range(t)]
    slope = ((p[0] - p[1]) + (q[1] - q[0])) * 0.5
    s = (q[0] - p[0]) - slope
    smooth = np.maximum(np.abs(p[t - 1] - p[0] + (t - 1) * slope), np.abs(q[t - 1] - q[0] - (t - 1) * slope))
    # soft gates: 1 well inside the limits, 0 beyond them, so a threshold causes no visible seam
    gate = np.clip(2.0 - 2.0 * np.abs(s) / alpha, 0.0, 1.0) * np.clip(2.0 - 2.0 * smooth / beta, 0.0, 1.0)
    c = s * gate * 0.5
    for i in range(t):
        share = (t - i - 0.5) / t  # 1 - 1/(2t) next to the edge, 1/(2t) at the far tap
        plane[:, xs - 1 - i] = p[i] + share * c
        plane[:, xs + i] = q[i] - share * c


def deblock(image: np.ndarray, *, strength: float = 1.0, grid: BlockGrid | None = None,
            size: int = 8) -> np.ndarray:
    """Remove coding-block edges from an RGB uint8 image (in YCrCb, luma and chroma).

    ``grid`` defaults to :func:`detect_blocks` on the image; the thresholds follow the measured
    excess step across the grid (a clean image has none, so nothing is changed).
    """
    cv2 = _cv2()
    if strength <= 0:
        return image
    g = grid or detect_blocks(image, size)
    if not g.present:
        return image
    ycc = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2YCrCb).astype(np.float32)
    alpha = max(4.0, _DEBLOCK_ALPHA * g.step) * strength + 2.0
    beta = max(3.0, _DEBLOCK_BETA * g.step) * strength + 2.0
    for c in range(3):
        plane = ycc[:, :, c]
        if g.found_x:
            _deblock_axis(plane, g.offset_x, alpha, beta, size)
        if g.found_y:
            t = np.ascontiguousarray(plane.T)
            _deblock_axis(t, g.offset_y, alpha, beta, size)
            plane[:] = t.T
    out = np.clip(np.rint(ycc), 0, 255).astype(np.uint8)
    return cv2.cvtColor(out, cv2.COLOR_YCrCb2RGB)


def sharpen(image: np.ndarray, amount: float, *, radius: float = 1.0, threshold: float = 2.0) -> np.ndarray:
    """Unsharp mask on luma only; details smaller than ``threshold`` levels are not amplified."""
    cv2 = _cv2()
    if amount <= 0:
        return image
    ycc = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2YCrCb)
    y = ycc[:, :, 0].astype(np.float32)
    detail = y - cv2.GaussianBlur(y, (0, 0), radius)
    # soft threshold: shrink the detail toward zero by `threshold` so grain stays flat
    detail = np.sign(detail) * np.maximum(np.abs(detail) - threshold, 0.0)
    ycc[:, :, 0] = np.clip(np.rint(y + amount * detail), 0, 255).astype(np.uint8)
    return cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB)


def _bilateral(image: np.ndarray, sigma: float) -> np.ndarray:
    cv2 = _cv2()
    return cv2.bilateralFilter(np.ascontiguousarray(image), _BILATERAL_DIAMETER, max(1.0, _BILATERAL_COLOR * sigma),
                               _BILATERAL_SPACE)


# --------------------------------------------------------------------------------------------
# single image
# --------------------------------------------------------------------------------------------
def denoise_image(image: np.ndarray, settings: DenoiseSettings | None = None) -> np.ndarray:
    """Deblock, denoise (edge-preserving bilateral at the measured noise level) and optionally
    sharpen one RGB (or RGBA: alpha kept) uint8 image: the per-frame chain of the video path.

    OpenCV's non-local means was measured too and scored lower on every degradation of the
    benchmark (and below the noisy input on light noise), so it is not used.
    """
    s = settings or DenoiseSettings()
    _check_frame(image)
    rgb = np.ascontiguousarray(image[:, :, :3])
    out = TemporalDenoiser(replace(s, temporal=False))([rgb])[0]
    if image.shape[2] == 4:  # keep the alpha channel untouched
        out = np.concatenate([out, image[:, :, 3:]], axis=2)
    return out


def _check_frame(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (3, 4):
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", None)
        raise InputError(f"expected an H x W x 3 (or 4) uint8 image, got shape {shape} dtype {dtype}")


# --------------------------------------------------------------------------------------------
# video
# --------------------------------------------------------------------------------------------
@dataclass(slots=True)
class DenoiseStats:
    """What the denoiser saw: filled as frames go through, for the run's report."""

    frames: int = 0
    cuts: int = 0  # frames where the history was dropped (scene change / unrelated picture)
    deblocked: int = 0
    sigma_sum: float = 0.0
    history_sum: float = 0.0  # mean frames averaged per pixel, summed over frames

    @property
    def mean_sigma(self) -> float:
        return self.sigma_sum / self.frames if self.frames else 0.0

    @property
    def mean_history(self) -> float:
        return self.history_sum / self.frames if self.frames else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {"frames": self.frames, "cuts": self.cuts, "deblocked": self.deblocked,
                "mean_noise_sigma": round(self.mean_sigma, 2), "mean_frames_averaged": round(self.mean_history, 2)}


class TemporalDenoiser:
    """Causal motion-compensated video denoiser: ``frames in -> as many frames out``, no lag.

    Call it with consecutive RGB uint8 frames of one stream (any batch size; state carries
    across calls). Use one instance per stream; :meth:`reset` starts over (e.g. at a known
    cut). Not thread-safe: one stream, one thread.
    """

    name = "temporal-mc"

    def __init__(self, settings: DenoiseSettings | None = None) -> None:
        self.settings = settings or DenoiseSettings()
        self.stats = DenoiseStats()
        self._flow = DISFlow("fast")
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Forget the history (the next frame starts a new average)."""
        self._prev_out: np.ndarray | None = None  # float32 H x W x 3
        self._prev_count: np.ndarray | None = None  # float32 H x W
        self._prev_small: np.ndarray | None = None  # downscaled luma of the previous input
        self._prev_in: np.ndarray | None = None  # previous (deblocked) input, float32
        self._sigma: float | None = None  # noise level used for the last frame
        self._mc_sigma: float | None = None  # running motion-compensated noise measure
        self._grid: BlockGrid | None = None

    def __call__(self, frames: Sequence[np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            return [self._one(f) for f in frames]

    # -- one frame --
    def _deblock(self, frame: np.ndarray) -> np.ndarray:
        s = self.settings
        if s.deblock == "off" or s.strength <= 0:
            return frame
        grid = detect_blocks(frame)
        # the grid of a stream does not move: keep the first confident phase, refresh the level
        if self._grid is not None and grid.present:
            grid = replace(grid, offset_x=self._grid.offset_x, offset_y=self._grid.offset_y)
        if not grid.present and s.deblock == "on":
            base = self._grid or grid
            grid = replace(base, found_x=True, found_y=True, step=max(base.step, 2.0))
        if grid.present:
            self._grid = grid
            self.stats.deblocked += 1
            return deblock(frame, strength=s.strength, grid=grid)
        return frame

    def _one(self, frame: np.ndarray) -> np.ndarray:
        _check_frame(frame)
        s = self.settings
        frame = frame[:, :, :3]
        if self._prev_out is not None and self._prev_out.shape[:2] != frame.shape[:2]:
            raise InputError(f"frame size changed from {self._prev_out.shape[1]}x{self._prev_out.shape[0]} "
                             f"to {frame.shape[1]}x{frame.shape[0]} within one stream",
                             hint="use one TemporalDenoiser per stream, or call reset()")
        self.stats.frames += 1
        if s.strength <= 0:
            return frame
        h, w = frame.shape[:2]
        src = self._deblock(frame)
        cur = src.astype(np.float32)
        factor = flow_factor(h, w, s.flow_max_side)
        small = shrink(to_luma(src), factor)
        count = np.ones((h, w), np.float32)
        out = cur
        sigma = s.noise_sigma
        if (s.temporal and self._prev_out is not None and self._prev_small is not None and self._prev_in is not None
                and self._prev_count is not None):
            flow = upsample_flow(self._flow.small(small, self._prev_small), (w, h))
            # noise of the input, from the motion-compensated difference of two noisy inputs
            # (variance 2 sigma^2); the median ignores moving objects and flow failures. A
            # statistic: every 4th row and column is plenty and keeps 1080p cheap.
            step = _STAT_STEP
            prev_in = sampled_warp(self._prev_in, flow, step)
            diff_in = np.abs(prev_in - cur[::step, ::step]).mean(axis=2)
            med_in = float(np.median(diff_in))
            measured = med_in * 1.2533 / math.sqrt(2.0)
            ref = s.noise_sigma if s.noise_sigma is not None else (self._mc_sigma or self._sigma)
            # an unrelated picture cannot be matched: far more "noise" than the stream has
            if med_in > 40.0 or (ref is not None and measured > 3.0 * ref + 6.0):
                self.stats.cuts += 1
                self._mc_sigma = None  # the new shot may be noisier or cleaner
            else:
                self._mc_sigma = measured if self._mc_sigma is None else 0.7 * self._mc_sigma + 0.3 * measured
                if sigma is None:
                    sigma = self._mc_sigma
                prev = backward_warp(self._prev_out, flow)
                prev_count = backward_warp(self._prev_count, flow)
                out, count = self._blend(cur, prev, prev_count)
        if sigma is None:
            sigma = estimate_noise(src)
        self._sigma = sigma
        result = out
        if s.spatial and sigma * s.strength >= 0.5:
            u8 = np.clip(np.rint(out), 0, 255).astype(np.uint8)
            filtered = _bilateral(u8, sigma * s.strength).astype(np.float32)
            share = (1.0 / np.sqrt(count))[:, :, None]
            result = out + share * (filtered - out)
        self._prev_out = out  # the history carries the temporal average, not the spatial pass
        self._prev_count = count
        self._prev_small = small
        self._prev_in = cur
        self.stats.sigma_sum += sigma
        self.stats.history_sum += float(count.mean())
        u8 = np.clip(np.rint(result), 0, 255).astype(np.uint8)
        if s.sharpen > 0:
            u8 = sharpen(u8, s.sharpen, threshold=max(1.0, 0.5 * sigma))
        return u8

    def _blend(self, cur: np.ndarray, prev: np.ndarray, prev_count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cv2 = _cv2()
        # |carried - current|, box-averaged: where the two show the same thing this is the
        # current frame's noise (whatever its spectrum: white, or blotchy after JPEG/MPEG), so
        # the frame's own median and spread of it say what "agreeing" looks like
        d = cv2.boxFilter(np.abs(prev - cur).mean(axis=2), -1, (5, 5))
        sample = d[::_STAT_STEP, ::_STAT_STEP]
        m = float(np.median(sample))
        spread = 1.4826 * float(np.median(np.abs(sample - m)))
        tol = max(spread, 0.25) * _AGREE_TOLERANCE * self.settings.strength
        agree = np.exp(-0.5 * np.square(np.maximum(d - m, 0.0) / tol))
        n = agree * np.minimum(prev_count, float(self.settings.history))
        out = (cur + n[:, :, None] * prev) / (1.0 + n[:, :, None])
        return out, 1.0 + n


def denoise_frames(frames: Sequence[np.ndarray], settings: DenoiseSettings | None = None) -> list[np.ndarray]:
    """Denoise a short list of consecutive frames (tests, previews)."""
    return TemporalDenoiser(settings)(list(frames))


# --------------------------------------------------------------------------------------------
# file
# --------------------------------------------------------------------------------------------
def denoise_video(src: str | Path, dst: str | Path, settings: DenoiseSettings | None = None, *,
                  crf: int = 18, preset: str = "veryfast", progress: Callable[[int, int], None] | None = None,
                  cancel: threading.Event | None = None) -> dict[str, Any]:
    """Denoise a video file into ``dst`` (same size and fps; sound and AIGC label kept).

    Returns the :class:`DenoiseStats` as a dict plus ``frames`` written.
    """
    from core.media import even_size, probe
    from pipelines.video import process_video

    info = probe(src)
    if info.video is None:
        raise InputError(f"{str(src)!r} has no video stream")
    w, h = even_size(*info.video.display_size)
    den = TemporalDenoiser(settings)

    def fn(images: list[np.ndarray]) -> list[np.ndarray]:
        return [img[:h, :w] for img in den(images)]

    job = process_video(src, dst, fn, out_size=(w, h), batch=4, crf=crf, preset=preset, progress=progress,
                        cancel=cancel)
    return {**den.stats.as_dict(), "written": job.frames}
