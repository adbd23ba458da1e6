"""Whole-image forward passes with the border handling of the official ncnn runtime.

The official ``realesrgan-ncnn-vulkan`` runtime reflect-pads its input by 10 pixels
(``prepadding``) before the network and crops the result; the networks' own zero padding then
only touches pixels that are thrown away. :func:`forward_padded` does the same, so our output
matches the official runtime's at the borders too, not only inside the image.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

NCNN_PREPADDING = 10


def model_scale(model: nn.Module) -> float:
    """Output size / input size of one of our SR modules."""
    scale = getattr(model, "scale", None)
    if scale is None:
        raise ValueError(f"{type(model).__name__} has no 'scale' attribute")
    return float(scale)


def forward_padded(model: nn.Module, x: torch.Tensor, pre_pad: int = NCNN_PREPADDING) -> torch.Tensor:
    """``model(x)`` on an input reflect-padded by ``pre_pad`` pixels, cropped back.

    ``x`` is N x C x H x W in [0, 1]; reflection needs ``pre_pad < min(H, W)`` (smaller inputs
    use replicate padding, with a WARNING).
    """
    if pre_pad <= 0:
        return model(x)
    h, w = x.shape[-2:]
    mode = "reflect"
    if pre_pad >= min(h, w):
        log.warning("input %dx%d is too small to reflect-pad by %d; replicating the border instead", w, h, pre_pad)
        mode = "replicate"
    y = model(F.pad(x, (pre_pad, pre_pad, pre_pad, pre_pad), mode=mode))
    s = model_scale(model)
    top = round(pre_pad * s)
    out_h, out_w = round(h * s), round(w * s)
    return y[..., top: top + out_h, top: top + out_w]
