"""A fast CPU shot detector: hard cuts, dissolves and fades from tiny frames, vectorised.

Per frame we keep a 36x64 YUV sample (read straight from the decoder's planes), a 9x16 luma
thumbnail and a 128-bin YUV histogram. From these, in chunks with numpy:

* hard cuts: a peak of histogram + thumbnail change well above its neighbourhood (an adaptive
  threshold, like PySceneDetect's AdaptiveDetector), kept only if the picture does not come back
  within three frames (a camera flash or a strobe comes back; a cut does not);
* dissolves: across a window of ``2W`` frames the content changes, and the middle thumbnail is a
  linear blend of the two ends (``m = a*x + (1-a)*y`` with small residual) — true of a
  cross-fade, false of camera or subject motion, which does not blend;
* fades: a run of near-black frames with content on both sides; the fade-out and the fade-in
  around it are one boundary.

Only a few numbers per frame are kept for the decisions, so memory stays flat with length.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import numpy as np

from pipelines.detect.base import Boundary, Detection, Detector, ProgressFn
from pipelines.detect.frames import small_yuv

log = logging.getLogger(__name__)

GRID = (36, 64)
THUMB = (9, 16)
WINDOWS = (4, 10)  # half-widths of the dissolve test
MARGIN = max(WINDOWS) + 4
CHUNK = 512


@dataclass(frozen=True, slots=True)
class FastParams:
    cut_min: float = 0.15  # absolute floor of the change score (hist L1/2 + thumb MAD) for a cut
    cut_ratio: float = 3.0  # the change must exceed this multiple of its neighbourhood's median
    cut_hist_min: float = 0.08  # a cut changes the colours, not just the positions
    cut_thumb_min: float = 0.045  # ... and the picture: histogram flicker alone (dark, flat scenes) is not a cut
    flash_return: float = 0.45  # a spike whose picture comes back to within this share is a flash
    grad_min: float = 0.25  # histogram change across a dissolve window
    grad_resid: float = 0.06  # max residual of the blend model (relative to |a-b|^2)
    grad_min_len: int = 3  # frames of evidence for a dissolve
    black_mean: float = 32.0  # luma (0-255) of a black frame
    black_sd: float = 10.0
    min_shot: int = 6  # two boundaries closer than this: keep the stronger


def _features(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """thumbs (n, 144) float32, hists (n, 128) float32, mean and sd of luma (n,)."""
    n = len(frames)
    y = frames[..., 0].astype(np.float32)
    th = y.reshape(n, THUMB[0], GRID[0] // THUMB[0], THUMB[1], GRID[1] // THUMB[1]).mean(axis=(2, 4)).reshape(n, -1)
    # 8 luma x 4 x 4 chroma bins; int32 to index without overflow
    idx = ((frames[..., 0] >> 5).astype(np.int32) << 4) | ((frames[..., 1] >> 6).astype(np.int32) << 2) | \
        (frames[..., 2] >> 6).astype(np.int32)
    idx = idx.reshape(n, -1) + (np.arange(n, dtype=np.int32) * 128)[:, None]
    hist = np.bincount(idx.ravel(), minlength=n * 128).reshape(n, 128).astype(np.float32)
    hist /= hist.sum(axis=1, keepdims=True)
    flat = y.reshape(n, -1)
    return th, hist, flat.mean(axis=1), flat.std(axis=1)


def _signals(th: np.ndarray, hist: np.ndarray, lo: int, hi: int) -> dict[str, np.ndarray]:
    """Signals for buffer rows ``lo <= t < hi`` (rows lo-MARGIN .. hi+MARGIN must exist)."""
    t = np.arange(lo, hi)
    out: dict[str, np.ndarray] = {}
    dh = 0.5 * np.abs(hist[t] - hist[t - 1]).sum(axis=1)
    dp = np.abs(th[t] - th[t - 1]).mean(axis=1) / 255.0
    out["dh"], out["dp"] = dh, dp
    # flash test: how close the picture after the spike comes back to the one before it
    # (into a flash: the frames after come back to the one before; out of a flash: the frame after
    # the spike matches one from before the flash)
    back = np.min(np.stack([0.5 * np.abs(hist[t + k] - hist[t - 1]).sum(axis=1) for k in (1, 2, 3)] +
                           [0.5 * np.abs(hist[t] - hist[t - 1 - k]).sum(axis=1) for k in (1, 2, 3)]), axis=0)
    out["ret"] = back
    backp = np.min(np.stack([np.abs(th[t + k] - th[t - 1]).mean(axis=1) for k in (1, 2, 3)] +
                            [np.abs(th[t] - th[t - 1 - k]).mean(axis=1) for k in (1, 2, 3)]), axis=0) / 255.0
    out["retp"] = backp
    for w in WINDOWS:
        a, b, m = th[t - w], th[t + w], th[t]
        ab = a - b
        den = (ab * ab).sum(axis=1) + 1e-6
        alpha = ((m - b) * ab).sum(axis=1) / den
        res = m - (alpha[:, None] * a + (1 - alpha[:, None]) * b)
        out[f"g{w}"] = 0.5 * np.abs(hist[t - w] - hist[t + w]).sum(axis=1)
        out[f"a{w}"] = alpha
        out[f"r{w}"] = (res * res).sum(axis=1) / den
        out[f"d{w}"] = np.sqrt(den / th.shape[1]) / 255.0  # rms thumbnail change across the window
    return out


class FastDetector(Detector):
    """Hard cuts, dissolves and fades on the CPU at decoding speed."""

    name = "fast"

    def __init__(self, params: FastParams | None = None, threads: int = 0) -> None:
        self.params = params or FastParams()
        self.threads = threads

    def signals(self, path: str | os.PathLike[str], progress: ProgressFn | None = None) -> tuple[object, dict[str, np.ndarray]]:
        info, frames = small_yuv(path, grid=GRID, threads=self.threads)
        th_buf: list[np.ndarray] = []
        h_buf: list[np.ndarray] = []
        parts: dict[str, list[np.ndarray]] = {}
        stats: list[np.ndarray] = []
        pending: list[np.ndarray] = []
        base = 0  # global index of buffer row 0
        done = 0  # global index of the next frame whose signals are not computed
        total = 0

        def pad_rows(th: np.ndarray, h: np.ndarray, front: int, back: int) -> tuple[np.ndarray, np.ndarray]:
            # edges repeat the first/last frame, so the video's ends look like no change
            if front:
                th = np.concatenate([np.repeat(th[:1], front, 0), th])
                h = np.concatenate([np.repeat(h[:1], front, 0), h])
            if back:
                th = np.concatenate([th, np.repeat(th[-1:], back, 0)])
                h = np.concatenate([h, np.repeat(h[-1:], back, 0)])
            return th, h

        def flush(final: bool) -> None:
            nonlocal th_buf, h_buf, base, done
            if not th_buf:
                return
            th = np.concatenate(th_buf)
            h = np.concatenate(h_buf)
            end_global = base + len(th)
            stop = end_global if final else end_global - MARGIN
            if stop <= done:
                return
            front = MARGIN if done - MARGIN < base else 0
            back = MARGIN if final else 0
            th_p, h_p = pad_rows(th, h, front, back)
            offset = front - base  # row of global index g is g + offset
            sig = _signals(th_p, h_p, done + offset, stop + offset)
            for k, v in sig.items():
                parts.setdefault(k, []).append(v.astype(np.float32))
            done = stop
            keep = 2 * MARGIN + 2
            if len(th) > keep:
                drop = len(th) - keep
                th_buf, h_buf = [th[drop:]], [h[drop:]]
                base += drop
            else:
                th_buf, h_buf = [th], [h]

        for img in frames:
            pending.append(img)
            total += 1
            if len(pending) == CHUNK:
                th, h, mean, sd = _features(np.stack(pending))
                pending = []
                th_buf.append(th)
                h_buf.append(h)
                stats.append(np.stack([mean, sd], axis=1))
                flush(False)
                if progress is not None:
                    progress(total, getattr(info, "frames", 0))
        if pending:
            th, h, mean, sd = _features(np.stack(pending))
            th_buf.append(th)
            h_buf.append(h)
            stats.append(np.stack([mean, sd], axis=1))
        flush(True)
        sig = {k: np.concatenate(v) for k, v in parts.items()}
        st = np.concatenate(stats) if stats else np.zeros((0, 2), np.float32)
        sig["mean"], sig["sd"] = st[:, 0], st[:, 1]
        return info, sig

    def detect(self, path: str | os.PathLike[str], *, progress: ProgressFn | None = None) -> Detection:
        t0 = time.perf_counter()
        info, sig = self.signals(path, progress)
        n = len(sig["mean"])
        bounds = decide(sig, self.params)
        log.info("fast detector: %d frames, %d boundaries in %.2fs", n, len(bounds), time.perf_counter() - t0)
        return Detection(fps=info.fps, frames=n, boundaries=bounds, detector=self.name,  # type: ignore[attr-defined]
                         seconds=time.perf_counter() - t0)


def _rolling_median(x: np.ndarray, half: int) -> np.ndarray:
    if len(x) == 0:
        return x
    padded = np.pad(x, half, mode="edge")
    win = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1)
    return np.median(win, axis=1)


def decide(sig: dict[str, np.ndarray], p: FastParams) -> list[Boundary]:
    n = len(sig["mean"])
    if n < 3:
        return []
    s = sig["dh"] + sig["dp"]
    s[0] = 0.0
    base = _rolling_median(s, 12)
    # --- fades: runs of black frames with picture on both sides -----------------------------
    black = (sig["mean"] < p.black_mean) & (sig["sd"] < p.black_sd)
    fades: list[Boundary] = []
    i = 0
    while i < n:
        if not black[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and black[j + 1]:
            j += 1
        if i > 0 and j < n - 1:
            start = i
            while start > 0 and start > i - 90 and sig["sd"][start - 1] > sig["sd"][start] * 1.02 and \
                    sig["mean"][start - 1] >= sig["mean"][start]:
                start -= 1
            end = j + 1
            while end < n - 1 and end < j + 90 and sig["sd"][end + 1] > sig["sd"][end] * 1.02 and \
                    sig["mean"][end + 1] >= sig["mean"][end]:
                end += 1
            fades.append(Boundary(j + 1, "fade", start, end, 1.0))
        i = j + 1
    in_fade = np.zeros(n, bool)
    for f in fades:
        in_fade[max(0, f.start - 2):min(n, f.end + 3)] = True
    # --- hard cuts ---------------------------------------------------------------------------
    cuts: list[Boundary] = []
    cand = (s >= np.maximum(p.cut_min, p.cut_ratio * base)) & (sig["dh"] >= p.cut_hist_min) & \
        (sig["dp"] >= p.cut_thumb_min) & ~in_fade
    picture = ~black
    first_picture = int(np.argmax(picture)) if picture.any() else n
    for t in np.flatnonzero(cand):
        if t <= first_picture:
            continue  # a black leader is not a shot
        lo, hi = max(1, t - 2), min(n, t + 3)
        if s[t] < s[lo:hi].max():
            continue
        if sig["retp"][t] < p.flash_return * sig["dp"][t]:
            continue  # the picture comes back: a flash
        cuts.append(Boundary(int(t), "cut", int(t) - 1, int(t), float(s[t])))
    near_cut = np.zeros(n, bool)
    for c in cuts:
        near_cut[max(0, c.frame - max(WINDOWS) - 1):min(n, c.frame + max(WINDOWS) + 1)] = True
    # --- dissolves ---------------------------------------------------------------------------
    dissolves: list[Boundary] = []
    ok = np.zeros(n, bool)
    for w in WINDOWS:
        g, a, r, d = sig[f"g{w}"], sig[f"a{w}"], sig[f"r{w}"], sig[f"d{w}"]
        ok |= (g >= p.grad_min) & (r <= p.grad_resid) & (a > 0.2) & (a < 0.8) & (d > 0.04)
    ok &= ~near_cut & ~in_fade
    i = 0
    while i < n:
        if not ok[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and ok[j + 1]:
            j += 1
        w = max(WINDOWS)
        ends = (max(0, i - w), min(n - 1, j + w))
        lit = not any(sig["mean"][e] < 1.5 * p.black_mean and sig["sd"][e] < 1.5 * p.black_sd for e in ends)
        if j - i + 1 >= p.grad_min_len and lit:  # a blend with black is a fade, handled above
            # the centre: where the blend weight crosses one half
            a = sig[f"a{WINDOWS[-1]}"][i:j + 1]
            centre = i + int(np.argmin(np.abs(a - 0.5)))
            start, end = i - WINDOWS[0], j + WINDOWS[0]
            dissolves.append(Boundary(centre, "dissolve", max(0, start), min(n - 1, end),
                                      float(sig[f"g{WINDOWS[-1]}"][centre])))
        i = j + 1
    found = sorted(cuts + dissolves + fades, key=lambda b: b.frame)
    # two boundaries closer than a minimal shot: keep the stronger (fades win, then cuts)
    rank = {"fade": 2, "cut": 1, "dissolve": 0}
    kept: list[Boundary] = []
    for b in found:
        if kept and b.frame - kept[-1].frame < p.min_shot:
            if (rank[b.kind], b.score) > (rank[kept[-1].kind], kept[-1].score):
                kept[-1] = b
            continue
        kept.append(b)
    return kept
