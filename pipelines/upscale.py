"""Upscaling: the classic method, and the neural models of :data:`models.SR_MODELS`.

``classic``: Lanczos-4 resampling followed by a mild unsharp mask. It invents no detail and
says so in every report; it runs when asked for, for factors no model has, and (logged) when a
model cannot load.

:class:`NeuralUpscaler` runs a super-resolution model from the registry :data:`models.SR_MODELS`
in an :class:`~pipelines.sr.SRRunner`: the manifest models of :mod:`models.registry` (sha256-pinned,
official weights converted on first use) chosen by content and scale (:data:`CONTENT_MODELS`)
or by name, and models that third-party packages register as ``sr-model.<name>`` entry points
(the module must carry ``scale`` and ``licence``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.errors import InputError
from core.media import even_size

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True, slots=True)
class ClassicUpscaler:
    """Lanczos + unsharp mask. ``amount`` 0 disables sharpening."""

    scale: float
    amount: float = 0.6
    sigma: float = 1.0
    name: str = "classic-lanczos"

    def __post_init__(self) -> None:
        if not 1 <= self.scale <= 8:
            raise InputError(f"scale must be between 1 and 8, got {self.scale}")

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        return int(round(width * self.scale)), int(round(height * self.scale))

    def upscale(self, image: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
        h, w = image.shape[:2]
        tw, th = size or self.output_size(w, h)
        out = cv2.resize(image, (tw, th), interpolation=cv2.INTER_LANCZOS4)
        if self.amount > 0:
            blur = cv2.GaussianBlur(out, (0, 0), self.sigma * self.scale / 2)
            # int16 so the difference can go negative before clipping
            sharp = out.astype(np.int16) + (self.amount * (out.astype(np.int16) - blur.astype(np.int16))).astype(np.int16)
            out = np.clip(sharp, 0, 255).astype(np.uint8)
        return out

    def batch(self, images: list[np.ndarray], size: tuple[int, int]) -> list[np.ndarray]:
        return [self.upscale(img, size) for img in images]


def video_output_size(width: int, height: int, scale: float) -> tuple[int, int]:
    return even_size(int(round(width * scale)), int(round(height * scale)))


def is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


# ------------------------------------------------------------------------------------------------
# neural super-resolution
# ------------------------------------------------------------------------------------------------
# which registry model serves which content at which scale (x3 live action: x4 then resized)
CONTENT_MODELS: dict[str, dict[int, str]] = {
    "anime": {2: "animevideov3-x2", 3: "animevideov3-x3", 4: "animevideov3-x4"},
    "live-action": {2: "rf-x2", 3: "rf-x4", 4: "rf-x4"},
}


def classify_content(images: list[np.ndarray]) -> str:
    """``anime`` (flat colour regions, few colours: cartoons, illustrations, our animatic cards) or
    ``live-action``. A classical heuristic, not a learned classifier: the share of pixels with
    no local texture and the number of distinct colours on a downscaled copy."""
    flat_shares, colours = [], []
    for img in images:
        h, w = img.shape[:2]
        f = 256 / max(h, w)
        small = cv2.resize(img, (max(8, int(w * f)), max(8, int(h * f))), interpolation=cv2.INTER_AREA)
        gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.int16)
        lap = np.abs(cv2.Laplacian(gray, cv2.CV_16S, ksize=3))
        flat_shares.append(float((lap <= 2).mean()))
        q = (small.astype(np.int32) >> 3).reshape(-1, 3)
        colours.append(len(np.unique(q[:, 0] * 1024 + q[:, 1] * 32 + q[:, 2])) / q.shape[0])
    flat, distinct = float(np.median(flat_shares)), float(np.median(colours))
    return "anime" if flat > 0.55 and distinct < 0.25 else "live-action"


@dataclass(slots=True)
class NeuralUpscaler:
    """A registry model wrapped in an :class:`~pipelines.sr.SRRunner`, with the scale the user asked for."""

    name: str
    scale: int  # what the user asked for
    runner: Any
    licence: str
    content: str
    notes: list[str]

    @classmethod
    def load(cls, name: str, scale: int, *, device: str = "auto", precision: str = "auto", tile: int = 0,
             compile: bool = False, cache_dir: str | None = None) -> NeuralUpscaler:
        import torch

        from core.device import dtype_from_name, resolve_device
        from models import SR_MODELS
        from models.registry import REGISTRY, ensure_official, get_spec, load_model
        from pipelines.sr import SRRunner, TileSpec

        if scale not in (2, 3, 4):
            raise InputError(f"scale must be 2, 3 or 4, got {scale}")
        if name not in REGISTRY and name in SR_MODELS:
            return cls._load_plugin(name, scale, device=device, precision=precision, tile=tile, compile=compile,
                                    cache_dir=cache_dir)
        spec = get_spec(name)
        notes: list[str] = []
        if spec.scale < scale:
            raise InputError(f"model {name!r} upscales x{spec.scale}, less than the x{scale} asked for",
                             hint="choose a larger model or a smaller --scale")
        if spec.scale != scale:
            notes.append(f"{name} upscales x{spec.scale}; the result is resized to x{scale} on the device")
        dev = resolve_device(device)
        int8 = precision.strip().lower() == "int8"
        if int8:
            if dev.type != "cpu":
                raise InputError("precision int8 runs on the CPU only", hint="use fp16 or bf16 on a GPU")
            # measured: with 64 features int8 is ~1.4-1.7x fp32; our 32-feature rf models get slower and
            # less exact (the quantise/dequantise steps cost more than the smaller convolutions save)
            if spec.arch != "srvgg" or int(spec.kwargs.get("num_feat", 64)) < 64:
                raise InputError(f"precision int8 is available for the animevideov3 models, not {name!r}",
                                 hint="use fp32 (exact, and as fast for small models)")
            compile = False
        dtype = torch.float32 if int8 else dtype_from_name(precision, dev)
        if spec.origin == "ncnn":
            ensure_official(name, cache_dir)
        model = load_model(name, dev, dtype, cache_dir=cache_dir, channels_last=True)
        runner = SRRunner(model, int(round(getattr(model, "scale", spec.scale))), dev, dtype,
                          tile=TileSpec(tile, 16) if tile else None, compile=compile, pre_pad=10, int8=int8)
        if int8:
            notes.append("int8 on the CPU (oneDNN), calibrated on the first frame: faster than fp32 and about "
                         "1-2/255 from it on average (benchmarks/RESULTS.md); fp32 matches the reference")
        elif dev.type == "cpu" and dtype != torch.float32:
            notes.append(f"{str(dtype).replace('torch.', '')} on the CPU: faster on CPUs with bf16 units, "
                         "and its error against fp32 is measured in benchmarks/RESULTS.md")
        return cls(name, scale, runner, spec.licence, spec.content, notes)

    @classmethod
    def _load_plugin(cls, name: str, scale: int, *, device: str, precision: str, tile: int, compile: bool,
                     cache_dir: str | None) -> NeuralUpscaler:
        """A model a third-party package registered in :data:`models.SR_MODELS`."""
        from core.device import dtype_from_name, resolve_device
        from core.errors import ModelError
        from models import SR_MODELS
        from pipelines.sr import SRRunner, TileSpec

        if precision.strip().lower() == "int8":
            raise InputError(f"precision int8 is available for the animevideov3 models, not {name!r}")
        dev = resolve_device(device)
        dtype = dtype_from_name(precision, dev)
        model = SR_MODELS.create(name, dev, dtype, cache_dir=cache_dir, channels_last=True)
        model_scale, licence = getattr(model, "scale", None), getattr(model, "licence", None)
        plugin = SR_MODELS.get(name).plugin or "a plug-in"
        if not isinstance(model_scale, int) or model_scale not in (2, 3, 4, 8):
            raise ModelError(f"super-resolution plug-in {name!r} ({plugin}) gives no usable scale ({model_scale!r})",
                             hint="the module must carry scale = 2, 3, 4 or 8")
        if not isinstance(licence, str) or not licence.strip():
            raise ModelError(f"super-resolution plug-in {name!r} ({plugin}) does not say its licence",
                             hint="the module must carry licence = '<SPDX id> (<where the weights come from>)'")
        if model_scale < scale:
            raise InputError(f"model {name!r} upscales x{model_scale}, less than the x{scale} asked for",
                             hint="choose a larger model or a smaller --scale")
        notes = [f"{name} is a plug-in model from {plugin}"]
        if model_scale != scale:
            notes.append(f"{name} upscales x{model_scale}; the result is resized to x{scale} on the device")
        runner = SRRunner(model, model_scale, dev, dtype, tile=TileSpec(tile, 16) if tile else None,
                          compile=compile, pre_pad=10)
        return cls(name, scale, runner, licence, "", notes)

    @property
    def device(self) -> Any:
        return self.runner.device

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        return width * self.scale, height * self.scale

    def upscale(self, image: np.ndarray) -> np.ndarray:
        from pipelines.sr import FrameUpscaler

        h, w = image.shape[:2]
        return FrameUpscaler(self.runner, self.output_size(w, h))([image])[0]

    def frame_fn(self, out_size: tuple[int, int], *, i420: bool) -> Any:
        from pipelines.sr import FrameUpscaler, I420Upscaler

        return (I420Upscaler if i420 else FrameUpscaler)(self.runner, out_size)
