"""SRVGGNetCompact, the compact VGG-style network of Real-ESRGAN (``realesr-animevideov3``).

The parameter names and shapes are those of the official ``basicsr``/``realesrgan``
definition, so the official ``.pth`` files load with ``strict=True``:
``body.0`` (first conv), ``body.1`` (activation), ``body.2k`` / ``body.2k+1`` for the
``num_conv`` hidden convs and their activations, and the last conv ``body.{2*num_conv+2}``
whose ``num_out_ch * upscale**2`` channels are pixel-shuffled; the nearest-upsampled input is
added to the result.

``out_scale`` (not in the official class, no parameters) resizes the result bicubically to
``out_scale`` times the input: the official ncnn release ships its x2 and x3 models as the x4
network followed by exactly this resize.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACT_TYPES = ("relu", "prelu", "leakyrelu")


class SRVGGNetCompact(nn.Module):
    """Plain conv stack at low resolution + pixel shuffle + nearest-upsampled input."""

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act_type: str = "prelu",
        out_scale: float | None = None,
    ) -> None:
        super().__init__()
        if act_type not in ACT_TYPES:
            raise ValueError(f"act_type must be one of {ACT_TYPES}, got {act_type!r}")
        if upscale < 1:
            raise ValueError(f"upscale must be >= 1, got {upscale}")
        if out_scale is not None and out_scale <= 0:
            raise ValueError(f"out_scale must be positive, got {out_scale}")
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.num_feat = num_feat
        self.num_conv = num_conv
        self.upscale = upscale
        self.act_type = act_type
        self.out_scale = out_scale

        self.body = nn.ModuleList()
        self.body.append(nn.Conv2d(num_in_ch, num_feat, 3, 1, 1))
        self.body.append(self._activation(act_type, num_feat))
        for _ in range(num_conv):
            self.body.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            self.body.append(self._activation(act_type, num_feat))
        self.body.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.upsampler = nn.PixelShuffle(upscale)

    @staticmethod
    def _activation(act_type: str, num_feat: int) -> nn.Module:
        # not in place: in-place activations break autograd for PReLU and gain nothing here
        if act_type == "relu":
            return nn.ReLU()
        if act_type == "prelu":
            return nn.PReLU(num_parameters=num_feat)
        return nn.LeakyReLU(negative_slope=0.1)

    @property
    def scale(self) -> float:
        """Output size / input size."""
        return float(self.out_scale) if self.out_scale is not None else float(self.upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        out = self.upsampler(out)
        base = F.interpolate(x, scale_factor=self.upscale, mode="nearest")
        out = out + base
        if self.out_scale is not None and self.out_scale != self.upscale:
            h, w = x.shape[-2:]
            # int(v + 0.5), not round(): the same for these sizes, and traceable by torch.jit
            size = (int(h * self.out_scale + 0.5), int(w * self.out_scale + 0.5))
            out = F.interpolate(out, size=size, mode="bicubic", align_corners=False)
        return out
