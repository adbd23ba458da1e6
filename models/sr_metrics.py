"""Super-resolution quality measures computed the way the SR literature does.

- :func:`imresize`: MATLAB's ``imresize(..., 'bicubic')`` (cubic kernel a = -0.5, kernel
  widened by 1/scale when shrinking, i.e. antialiased; symmetric borders). The low-resolution
  test inputs of Set5/Set14 tables are made with it, not with OpenCV's ``INTER_CUBIC``.
- :func:`rgb_to_y`: the Y of MATLAB ``rgb2ycbcr`` (ITU-R BT.601, 16-235 range).
- :func:`psnr` and :func:`ssim` on Y with ``scale`` border pixels cropped; SSIM with an
  11x11 Gaussian window, sigma 1.5, K1 = 0.01, K2 = 0.03 (Wang et al. 2004).

numpy and torch only: the training script uses this module on bare GPU machines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def _cubic(x: np.ndarray) -> np.ndarray:
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)))


@lru_cache(maxsize=256)
def resize_taps(in_len: int, out_len: int, scale: float, antialias: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's bicubic ``contributions``: (out_len, taps) source indices and weights."""
    kernel_width = 4.0
    if scale < 1 and antialias:
        def kernel(x: np.ndarray) -> np.ndarray:
            return scale * _cubic(scale * x)
        kernel_width = kernel_width / scale
    else:
        kernel = _cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based source indices
    weights = kernel(u[:, None] - idx)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # symmetric ("mirror with edge repeated") borders, as MATLAB's aux = [1:n, n:-1:1]
    aux = np.concatenate([np.arange(in_len), np.arange(in_len)[::-1]])
    src = aux[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    return src, weights


def resize_matrix(in_len: int, out_len: int, scale: float, antialias: bool = True) -> np.ndarray:
    """The same resize as a dense (out_len, in_len) matrix (for checks and small sizes)."""
    src, weights = resize_taps(in_len, out_len, scale, antialias)
    mat = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.repeat(np.arange(out_len), src.shape[1])
    np.add.at(mat, (rows, src.ravel()), weights.ravel())
    return mat


def _resize_axis0(data: np.ndarray, out_len: int, scale: float, antialias: bool) -> np.ndarray:
    src, weights = resize_taps(data.shape[0], out_len, scale, antialias)
    extra = (1,) * (data.ndim - 1)
    out = np.zeros((out_len, *data.shape[1:]), dtype=np.float64)
    for k in range(src.shape[1]):
        out += weights[:, k].reshape(-1, *extra) * data[src[:, k]]
    return out


def imresize(img: np.ndarray, scale: float | None = None, *, size: tuple[int, int] | None = None,
             antialias: bool = True) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` for an HxW or HxWxC array.

    uint8 in -> uint8 out (rounded and clipped, as MATLAB does); float in -> float64 out,
    not clipped. ``size`` = (height, width) overrides ``scale``. Intermediate results stay
    in float64 (MATLAB rounds uint8 between the two passes; the difference is below 0.01 dB).
    """
    if img.ndim not in (2, 3):
        raise ValueError(f"img must be HxW or HxWxC, got shape {img.shape}")
    h, w = img.shape[:2]
    if size is None:
        if scale is None or scale <= 0:
            raise ValueError(f"scale must be positive, got {scale}")
        out_h, out_w = int(math.ceil(h * scale)), int(math.ceil(w * scale))
        sh = sw = float(scale)
    else:
        out_h, out_w = size
        sh, sw = out_h / h, out_w / w
    data = img.astype(np.float64)

    def along_h(a: np.ndarray) -> np.ndarray:
        return _resize_axis0(a, out_h, sh, antialias)

    def along_w(a: np.ndarray) -> np.ndarray:
        return _resize_axis0(a.swapaxes(0, 1), out_w, sw, antialias).swapaxes(0, 1)

    # MATLAB resizes the dimension with the smaller scale first; ties: height first
    out = along_w(along_h(data)) if sh <= sw else along_h(along_w(data))
    if img.dtype == np.uint8:
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """Y of MATLAB ``rgb2ycbcr`` for uint8 RGB (HxWx3) or gray (HxW), as float64 in [16, 235].

    Not rounded: the fractional Y keeps PSNR independent of a second quantisation (the
    convention of most current SR code; MATLAB's uint8 path rounds, a difference of ~0.01 dB).
    """
    if img.dtype != np.uint8:
        raise ValueError(f"rgb_to_y expects uint8 pixels, got {img.dtype}")
    data = img.astype(np.float64)
    if data.ndim == 2:
        data = np.repeat(data[..., None], 3, axis=2)
    return 16.0 + (65.481 * data[..., 0] + 128.553 * data[..., 1] + 24.966 * data[..., 2]) / 255.0


def _crop(a: np.ndarray, border: int) -> np.ndarray:
    return a[border:-border, border:-border] if border > 0 else a


def psnr(a: np.ndarray, b: np.ndarray, *, border: int = 0, peak: float = 255.0) -> float:
    """PSNR in dB of two same-shape arrays on a 0..``peak`` scale; ``inf`` when identical."""
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    diff = _crop(a.astype(np.float64), border) - _crop(b.astype(np.float64), border)
    mse = float(np.mean(diff * diff))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(peak * peak / mse)


@lru_cache(maxsize=4)
def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    ax = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(ax * ax) / (2 * sigma * sigma))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(a: np.ndarray, b: np.ndarray, *, border: int = 0, peak: float = 255.0) -> float:
    """Mean SSIM of two single-channel images (Wang et al. 2004; 'valid' 11x11 Gaussian window)."""
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"ssim needs two HxW arrays of the same shape, got {a.shape} and {b.shape}")
    x = torch.from_numpy(np.ascontiguousarray(_crop(a.astype(np.float64), border)))[None, None]
    y = torch.from_numpy(np.ascontiguousarray(_crop(b.astype(np.float64), border)))[None, None]
    win = _gaussian_window()
    if x.shape[-1] < win.shape[-1] or x.shape[-2] < win.shape[-2]:
        raise ValueError(f"images of {tuple(x.shape[-2:])} are smaller than the 11x11 SSIM window")
    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mu_x, mu_y = F.conv2d(x, win), F.conv2d(y, win)
    sxx = F.conv2d(x * x, win) - mu_x * mu_x
    syy = F.conv2d(y * y, win) - mu_y * mu_y
    sxy = F.conv2d(x * y, win) - mu_x * mu_y
    num = (2 * mu_x * mu_y + c1) * (2 * sxy + c2)
    den = (mu_x * mu_x + mu_y * mu_y + c1) * (sxx + syy + c2)
    return float((num / den).mean())


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so height and width are multiples of ``scale``."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def load_image(path: str | Path) -> np.ndarray:
    """An image file as uint8: HxW for grayscale files, HxWx3 RGB otherwise."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode in ("L", "I;16", "I", "1", "LA"):
            return np.asarray(im.convert("L"), dtype=np.uint8).copy()
        return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def as_rgb(img: np.ndarray) -> np.ndarray:
    """HxW gray -> HxWx3 (channels repeated); HxWx3 unchanged."""
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def make_lr(hr: np.ndarray, scale: int) -> np.ndarray:
    """The literature's low-resolution input: MATLAB bicubic downscale of the mod-cropped HR, uint8."""
    return imresize(modcrop(hr, scale), 1.0 / scale)


@dataclass(frozen=True, slots=True)
class SRScore:
    psnr_y: float
    ssim_y: float


def luma(img: np.ndarray, *, gray_reference: bool) -> np.ndarray:
    """The channel the scores are computed on.

    Colour references: Y of ``rgb2ycbcr`` (16-235). Grayscale references (Set14's *bridge*):
    the gray values themselves (0-255), as the published tables do (MATLAB's ``rgb2ycbcr`` is
    not applied to 2-D images); an RGB result is brought to that scale through its Y.
    """
    if not gray_reference:
        return rgb_to_y(img)
    if img.ndim == 2:
        return img.astype(np.float64)
    return (rgb_to_y(img) - 16.0) * (255.0 / 219.0)


def score_y(sr: np.ndarray, hr: np.ndarray, scale: int) -> SRScore:
    """Y-channel PSNR/SSIM of uint8 ``sr`` against ``hr`` with ``scale`` border pixels cropped."""
    gray = hr.ndim == 2
    ys, yh = luma(sr, gray_reference=gray), luma(hr, gray_reference=gray)
    return SRScore(psnr(ys, yh, border=scale), ssim(ys, yh, border=scale))


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> float32 1x3xHxW in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1)[None].float().div_(255.0)


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """float 1x3xHxW in [0, 1] -> uint8 HxWx3 (clipped, rounded)."""
    arr = t.detach().float().clamp(0, 1).mul(255.0).round()[0].permute(1, 2, 0)
    return arr.to(torch.uint8).cpu().numpy()
