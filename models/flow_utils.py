"""Optical-flow helpers shared by the denoiser, the frame interpolator and RIFE.

Convention everywhere: a flow ``F`` (``H x W x 2`` float32, ``(dx, dy)`` in pixels) from image
``A`` to image ``B`` says where each pixel of ``A`` is found in ``B``: ``A(x) ~ B(x + F(x))``.
:func:`backward_warp` therefore pulls ``B`` onto ``A``'s grid with ``F``.

The classic (CPU) flow is OpenCV's DIS on luma, computed on a downscaled copy so its cost and
its sensitivity to noise stay bounded whatever the frame size. ``torch_warp`` is the
``grid_sample`` warp used by RIFE (same normalisation as the reference implementation:
``align_corners=True``, border padding).

cv2 and torch are imported inside the functions: ``models`` stays importable with torch only.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

DIS_PRESETS = ("ultrafast", "fast", "medium")


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - a core dependency
        from core.errors import MissingDependencyError

        raise MissingDependencyError("opencv-python-headless", "all") from e
    return cv2


def to_luma(image: np.ndarray) -> np.ndarray:
    """8-bit luma of an RGB uint8 image (a grey image is returned as is)."""
    cv2 = _cv2()
    if image.ndim == 2:
        return image
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def flow_factor(height: int, width: int, max_side: int) -> int:
    """The integer downscale that brings the longer side to at most ``max_side`` (>= 1)."""
    if max_side <= 0:
        return 1
    return max(1, math.ceil(max(height, width) / max_side))


def shrink(gray: np.ndarray, factor: int) -> np.ndarray:
    """Area-downscale a grey image by an integer ``factor`` (no copy when ``factor`` is 1)."""
    cv2 = _cv2()
    if factor <= 1:
        return gray
    h, w = gray.shape[:2]
    return cv2.resize(gray, (max(8, w // factor), max(8, h // factor)), interpolation=cv2.INTER_AREA)


class DISFlow:
    """OpenCV DIS optical flow between grey images at a reduced size, returned at full size.

    One instance keeps one OpenCV object (not thread-safe: one per thread). ``factor`` is the
    integer downscale applied to both images; the returned flow is upsampled and rescaled to the
    full-size grid ``size`` (w, h).
    """

    def __init__(self, preset: str = "medium") -> None:
        cv2 = _cv2()
        if preset not in DIS_PRESETS:
            raise ValueError(f"DIS preset must be one of {DIS_PRESETS}, got {preset!r}")
        code = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
                "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}[preset]
        self.preset = preset
        self._dis = cv2.DISOpticalFlow_create(code)

    def small(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Flow from grey ``a`` to grey ``b`` at their own size."""
        return self._dis.calc(np.ascontiguousarray(a), np.ascontiguousarray(b), None)

    def __call__(self, a_small: np.ndarray, b_small: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """Flow from ``a_small`` to ``b_small`` (both already downscaled), upsampled to ``size``."""
        return upsample_flow(self.small(a_small, b_small), size)


def upsample_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a flow field to ``size`` (w, h), scaling the vectors with the grid."""
    cv2 = _cv2()
    w, h = size
    fh, fw = flow.shape[:2]
    if (fw, fh) == (w, h):
        return flow
    out = cv2.resize(flow, (w, h), interpolation=cv2.INTER_LINEAR)
    out[..., 0] *= w / fw
    out[..., 1] *= h / fh
    return out


_GRIDS: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}


def pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Cached ``(xs, ys)`` float32 coordinate grids."""
    key = (height, width)
    grid = _GRIDS.get(key)
    if grid is None:
        if len(_GRIDS) > 8:
            _GRIDS.clear()
        xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        grid = (xs, ys)
        _GRIDS[key] = grid
    return grid


def backward_warp(image: np.ndarray, flow: np.ndarray, *, interpolation: str = "linear") -> np.ndarray:
    """``out(x) = image(x + flow(x))`` (bilinear, edges replicated); any dtype cv2.remap takes."""
    cv2 = _cv2()
    h, w = flow.shape[:2]
    xs, ys = pixel_grid(h, w)
    mode = cv2.INTER_LINEAR if interpolation == "linear" else cv2.INTER_NEAREST
    return cv2.remap(image, xs + flow[..., 0], ys + flow[..., 1], mode, borderMode=cv2.BORDER_REPLICATE)


def sampled_warp(image: np.ndarray, flow: np.ndarray, step: int) -> np.ndarray:
    """:func:`backward_warp` evaluated on every ``step``-th row and column only (for statistics)."""
    cv2 = _cv2()
    h, w = flow.shape[:2]
    xs, ys = pixel_grid(h, w)
    sub = flow[::step, ::step]
    return cv2.remap(image, xs[::step, ::step] + sub[..., 0], ys[::step, ::step] + sub[..., 1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def fb_occlusion(forward: np.ndarray, backward: np.ndarray, *, tolerance: float = 0.5) -> np.ndarray:
    """Float mask in [0, 1] of the pixels of A that are occluded in B (forward-backward check).

    ``forward`` is the flow A->B, ``backward`` B->A. A pixel is visible when following the
    forward flow and then the backward flow lands back where it started, within
    ``tolerance`` pixels plus 5 % of the motion (the usual Sundaram et al. rule).
    """
    back_at = backward_warp(backward, forward)
    err = np.square(forward + back_at).sum(axis=2)
    allowed = 0.01 * (np.square(forward).sum(axis=2) + np.square(back_at).sum(axis=2)) + tolerance
    # soft edge: 0 below the allowance, 1 at four times it
    return np.clip((err - allowed) / (3.0 * allowed), 0.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------------------------
# torch
# --------------------------------------------------------------------------------------------
def torch_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """``out(x) = image(x + flow(x))`` for ``N x C x H x W`` tensors, RIFE's normalisation.

    The flow is divided by ``(W - 1) / 2`` and ``(H - 1) / 2`` and sampled with
    ``align_corners=True`` and border padding, exactly as the reference ``warplayer.warp``, so
    weights trained with it behave the same. The sampling grid is summed in float32 and cast
    to the dtype of ``image`` only for ``grid_sample`` (which needs matching dtypes).
    """
    import torch
    import torch.nn.functional as F

    n, _, h, w = flow.shape
    ys = torch.linspace(-1.0, 1.0, h, device=flow.device, dtype=torch.float32)
    xs = torch.linspace(-1.0, 1.0, w, device=flow.device, dtype=torch.float32)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    fl = flow.float()
    gx = grid_x.unsqueeze(0) + fl[:, 0] / ((w - 1.0) / 2.0)
    gy = grid_y.unsqueeze(0) + fl[:, 1] / ((h - 1.0) / 2.0)
    grid = torch.stack((gx, gy), dim=3).to(image.dtype)
    if image.shape[0] != n:
        raise ValueError(f"image batch {image.shape[0]} does not match flow batch {n}")
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=True)
