"""Post-training int8 quantisation of SRVGGNetCompact for the CPU (PyTorch FX, oneDNN kernels).

The hidden convolutions and their PReLUs run in int8 (weights per output channel, symmetric;
activations per tensor, unsigned, ranges from a histogram of calibration inputs). The first
convolution (it sees raw pixels), the last one (its output is the picture's residual), the pixel
shuffle and the addition of the upsampled input stay in fp32, where quantisation noise would show.

On CPUs without bf16 units int8 is the one reduced precision that pays (bf16 is emulated there
and slower than fp32): on the 2-core AVX2 dev VM the int8 network ran ~1.4-1.7x our fp32 one. The price is
accuracy: 1-2/255 mean absolute difference from fp32 on real images (measured in
``benchmarks/RESULTS.md``), so it is an option, never the default.

PyTorch 2.13 marks the quantised tensor types used here as deprecated (to be replaced by its
PT2E flow); the pinned torch has them, and the test suite runs this path.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import ModelError

log = logging.getLogger(__name__)

ENGINE = "onednn"


def int8_available() -> bool:
    return ENGINE in torch.backends.quantized.supported_engines


def quantize_srvgg_int8(model: Any, calibration: Sequence[Any]) -> Any:
    """An int8 copy of ``model`` (an :class:`~models.srvgg.SRVGGNetCompact`), calibrated on
    ``calibration`` (``N x 3 x H x W`` float tensors in [0, 1], on the CPU)."""
    from torch.ao.quantization import QConfig, QConfigMapping
    from torch.ao.quantization.observer import HistogramObserver, PerChannelMinMaxObserver
    from torch.ao.quantization.qconfig import default_quint8_weight_qconfig
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    from models.srvgg import SRVGGNetCompact

    if not isinstance(model, SRVGGNetCompact):
        raise ModelError(f"int8 is available for SRVGGNetCompact models only, not {type(model).__name__}",
                         hint="use an animevideov3 or rf model, or fp32")
    if not int8_available():
        raise ModelError(f"this PyTorch build has no {ENGINE} quantised kernels",
                         hint=f"supported engines: {torch.backends.quantized.supported_engines}")
    if not calibration:
        raise ModelError("int8 needs at least one calibration input")
    # the quantised operators dispatch on this process-wide setting
    if torch.backends.quantized.engine != ENGINE:
        log.info("quantised engine: %s (was %s)", ENGINE, torch.backends.quantized.engine)
        torch.backends.quantized.engine = ENGINE
    # a bare copy (the registry's model carries its spec, which FX need not see)
    float_model = SRVGGNetCompact(model.num_in_ch, model.num_out_ch, model.num_feat, model.num_conv, model.upscale,
                                  model.act_type)  # the output resize, if any, stays outside (FX cannot trace it)
    float_model.load_state_dict({k: v.detach().float().contiguous() for k, v in model.state_dict().items()})
    float_model.eval()
    act = HistogramObserver.with_args(dtype=torch.quint8, quant_min=0, quant_max=255, reduce_range=False)
    qconfig = QConfig(activation=act, weight=PerChannelMinMaxObserver.with_args(
        dtype=torch.qint8, qscheme=torch.per_channel_symmetric))
    # the quantised PReLU takes its slopes as quint8, one scale for the vector (PyTorch's own default)
    prelu = QConfig(activation=act, weight=default_quint8_weight_qconfig.weight)
    last = len(float_model.body) - 1
    mapping = (QConfigMapping().set_global(qconfig).set_object_type(torch.nn.PReLU, prelu)
               .set_module_name("body.0", None).set_module_name("body.1", None)  # first conv sees raw pixels
               .set_module_name(f"body.{last}", None)  # the residual picture
               .set_object_type(torch.nn.PixelShuffle, None)
               .set_object_type(operator.add, None)
               .set_object_type(torch.nn.functional.interpolate, None))
    example = calibration[0].float().contiguous()
    prepared = prepare_fx(float_model, mapping, (example,))
    with torch.no_grad():
        for x in calibration:
            prepared(x.float().contiguous())
    import warnings

    with warnings.catch_warnings():
        # torch 2.13 announces the quantised tensor types' future removal; the pinned build has them
        warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*", category=UserWarning)
        warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*", category=UserWarning)
        quantised = convert_fx(prepared)
    if model.out_scale is not None and model.out_scale != model.upscale:
        return _Resized(quantised, float(model.out_scale)).eval()
    return quantised


class _Resized(nn.Module):
    """The quantised network, then the bicubic resize to ``out_scale`` (as SRVGGNetCompact does)."""

    def __init__(self, net: nn.Module, out_scale: float) -> None:
        super().__init__()
        self.net = net
        self.out_scale = out_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        size = (int(h * self.out_scale + 0.5), int(w * self.out_scale + 0.5))
        return F.interpolate(self.net(x), size=size, mode="bicubic", align_corners=False)
