"""Neural super-resolution runner: batching, channels_last, reduced precision, seamless tiling.

The runner wraps any ``nn.Module`` that maps ``N x 3 x H x W`` in [0, 1] to
``N x 3 x sH x sW``. Tiles are cut with an overlap (context) on every inner side and only
their own area is kept, so a tiled result equals the untiled one wherever the overlap covers
the network's receptive field — which is how 4K/8K frames fit a memory budget without seams.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from core.errors import InputError

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TileSpec:
    size: int = 0  # tile side in input pixels; 0 = whole frame
    overlap: int = 16  # context on each inner side, in input pixels

    def __post_init__(self) -> None:
        if self.size < 0 or self.overlap < 0:
            raise InputError(f"tile size and overlap must be >= 0, got {self.size}/{self.overlap}")
        if self.size and self.size <= 2 * self.overlap:
            raise InputError(f"tile size {self.size} must exceed twice the overlap {self.overlap}")


def tile_windows(height: int, width: int, tile: int) -> list[tuple[int, int, int, int]]:
    """Non-overlapping ``(y0, y1, x0, x1)`` cells covering the frame (last row/column may be smaller)."""
    if tile <= 0 or (tile >= height and tile >= width):
        return [(0, height, 0, width)]
    ys = list(range(0, height, tile))
    xs = list(range(0, width, tile))
    return [(y, min(y + tile, height), x, min(x + tile, width)) for y in ys for x in xs]


class SRRunner:
    """Run an SR network on device tensors, whole or tiled, in the chosen dtype."""

    def __init__(self, model: nn.Module, scale: int, device: torch.device, dtype: torch.dtype, *,
                 tile: TileSpec | None = None, channels_last: bool = True, compile: bool = False,
                 pre_pad: int = 0, freeze: bool | None = None, compile_mode: str = "default",
                 int8: bool = False) -> None:
        import torch

        if scale not in (1, 2, 3, 4, 8):
            raise InputError(f"scale must be 1, 2, 3, 4 or 8, got {scale}")
        if int8 and (device.type != "cpu" or dtype != torch.float32 or compile):
            raise InputError("int8 runs on the CPU, from an fp32 model, without torch.compile")
        self.scale = scale
        self.device = device
        self.dtype = dtype
        # int8: the network is quantised on its first input (the calibration), then traced and frozen
        self.int8 = int8
        self._calibrated = False
        if int8:
            channels_last = False  # oneDNN's int8 convolutions are faster on plain NCHW here
        self.tile = tile or TileSpec()
        self.channels_last = channels_last
        self.pre_pad = pre_pad  # reflect-pad the frame first, like the official ncnn runtime (10 px)
        model = model.eval().to(device=device, dtype=dtype)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit memory_format
        for p in model.parameters():
            p.requires_grad_(False)
        self.eager = model
        self.model: Callable[[torch.Tensor], torch.Tensor] = model
        # On the CPU a traced and frozen graph lets oneDNN fuse each conv with its activation and
        # pre-pack the weights: the same arithmetic, about twice as fast as eager here.
        self.freeze = freeze if freeze is not None else device.type == "cpu"
        self._frozen: dict[tuple[int, ...], Callable[[torch.Tensor], torch.Tensor]] = {}
        self.mode = "eager"
        if compile:
            try:
                self.model = torch.compile(model, mode=compile_mode, dynamic=False)
                self.mode = f"compile:{compile_mode}"
                self.freeze = False
            except Exception as e:  # noqa: BLE001 - compile is an optimisation; say so and go on
                log.warning("torch.compile is unavailable (%s): running eager", e)
        elif self.freeze:
            self.mode = "int8 jit-freeze" if int8 else "jit-freeze"
        if int8 and not self.freeze:
            raise InputError("int8 needs the frozen graph (freeze=True)")

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        if not self.freeze:
            if self.mode.startswith("compile"):
                try:
                    return self.model(x)
                except Exception as e:  # noqa: BLE001 - compilation happens on the first call
                    log.warning("torch.compile failed (%s): running eager", e)
                    self.model, self.mode = self.eager, "eager"
            return self.model(x)
        shape = tuple(x.shape)
        fn = self._frozen.get(shape)
        if fn is None:
            if len(self._frozen) >= 8:  # many tile shapes: keep memory bounded
                self._frozen.clear()
            try:
                import warnings

                with warnings.catch_warnings():  # one graph per input shape: constant sizes are right
                    warnings.simplefilter("ignore", torch.jit.TracerWarning)
                    fn = torch.jit.freeze(torch.jit.trace(self.eager, x, check_trace=False))
            except Exception as e:  # noqa: BLE001 - an optimisation: say so, run eager
                log.warning("could not freeze the network (%s): running eager", e)
                self.freeze = False
                self.mode = "eager"
                return self.model(x)
            self._frozen[shape] = fn
        return fn(x)

    def _calibrate(self, x: torch.Tensor) -> None:
        import time

        from models.quant import quantize_srvgg_int8

        t0 = time.perf_counter()
        self.eager = quantize_srvgg_int8(self.eager, [x[i:i + 1] for i in range(min(len(x), 4))]).eval()
        self.model = self.eager
        self._frozen.clear()
        self._calibrated = True
        log.info("int8: quantised on %d input(s) of %dx%d in %.1f s", min(len(x), 4), x.shape[-1], x.shape[-2],
                 time.perf_counter() - t0)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        if self.int8 and not self._calibrated:
            with torch.no_grad():
                self._calibrate(x.float())
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self._run(x.to(self.dtype))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``N x 3 x H x W`` in [0, 1] on the runner's device -> upscaled, same dtype as the model."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise InputError(f"expected an N x 3 x H x W batch, got shape {tuple(x.shape)}")
        if self.pre_pad:
            import torch.nn.functional as F

            p, s = self.pre_pad, self.scale
            h0, w0 = x.shape[-2:]
            mode = "reflect" if p < min(h0, w0) else "replicate"
            y = self._tiled(F.pad(x, (p, p, p, p), mode=mode))
            return y[:, :, p * s:p * s + h0 * s, p * s:p * s + w0 * s]
        return self._tiled(x)

    def _tiled(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        cells = tile_windows(h, w, self.tile.size)
        if len(cells) == 1:
            return self._forward(x)
        import torch

        s, o = self.scale, self.tile.overlap
        out = torch.empty((n, 3, h * s, w * s), device=x.device, dtype=self.dtype)
        for y0, y1, x0, x1 in cells:
            # grow the cell by the overlap, but never past the frame: at the frame's edge the
            # network sees the same zero padding as on the whole frame
            py0, py1, px0, px1 = max(0, y0 - o), min(h, y1 + o), max(0, x0 - o), min(w, x1 + o)
            part = self._forward(x[:, :, py0:py1, px0:px1])
            oy, ox = (y0 - py0) * s, (x0 - px0) * s
            out[:, :, y0 * s:y1 * s, x0 * s:x1 * s] = part[:, :, oy:oy + (y1 - y0) * s, ox:ox + (x1 - x0) * s]
        return out


def auto_tile(height: int, width: int, device: torch.device, *, bytes_per_pixel: int, budget_bytes: int | None = None,
              overlap: int = 16) -> TileSpec:
    """Pick a tile size so one forward pass stays inside a memory budget (activations estimate)."""
    if budget_bytes is None:
        if device.type == "cuda":
            import torch

            free, _ = torch.cuda.mem_get_info(device)
            budget_bytes = int(free * 0.5)
        else:
            budget_bytes = 2 << 30
    pixels = max(1, budget_bytes // max(1, bytes_per_pixel))
    if height * width <= pixels:
        return TileSpec(0, overlap)
    side = int(math.sqrt(pixels)) - 2 * overlap
    side = max(2 * overlap + 16, side - side % 16)
    return TileSpec(side, overlap)


class FrameUpscaler:
    """Numpy RGB frames in, numpy RGB frames out: the batch function the video pipeline calls.

    ``out_size`` (w, h) resizes the network's output on the device (bicubic with antialias) —
    e.g. 1080p -> 2160p with an x4 model — before the single host copy.
    """

    def __init__(self, runner: SRRunner, out_size: tuple[int, int] | None = None) -> None:
        self.runner = runner
        self.out_size = out_size

    def upscaled(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """The batch upscaled (and resized to ``out_size``) on the device, ``N x 3 x H x W`` in [0, 1]."""
        import torch.nn.functional as F

        batch = torch.from_numpy(np.stack(images)).to(self.runner.device, non_blocking=True)
        x = batch.permute(0, 3, 1, 2).to(self.runner.dtype).div_(255.0)
        y = self.runner(x)
        if self.out_size is not None and (y.shape[-1], y.shape[-2]) != self.out_size:
            w, h = self.out_size
            shrink = w < y.shape[-1] or h < y.shape[-2]
            y = F.interpolate(y.float(), size=(h, w), mode="bicubic", align_corners=False, antialias=shrink)
        return y

    def __call__(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        from core.media import tensor_to_frames

        return tensor_to_frames(self.upscaled(images).float())


def rgb_to_i420(rgb: torch.Tensor) -> torch.Tensor:
    """BT.709 limited-range I420 from ``N x 3 x H x W`` RGB in [0, 1], computed where the tensor is.

    Returns ``N x (H*3/2) x W`` uint8 in PyAV's ``yuv420p`` layout (Y, then U, then V), so the
    colour conversion runs on the GPU and the host copy is half the size of RGB.
    """
    import torch.nn.functional as F

    n, _, h, w = rgb.shape
    if h % 4 or w % 2:
        raise InputError(f"I420 on the device needs a height divisible by 4 and an even width, got {w}x{h}")
    x = rgb.float().clamp(0, 1)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    luma = 0.2126 * r + 0.7152 * g + 0.0722 * b
    y = 16.0 + 219.0 * luma
    cb = 128.0 + 224.0 * (b - luma) / 1.8556
    cr = 128.0 + 224.0 * (r - luma) / 1.5748
    chroma = F.avg_pool2d(torch.stack([cb, cr], dim=1), 2)  # 2x2 box: centre-sited chroma
    y8 = y.round().clamp(0, 255).to(torch.uint8)
    c8 = chroma.round().clamp(0, 255).to(torch.uint8)
    u = c8[:, 0].reshape(n, h // 4, w)
    v = c8[:, 1].reshape(n, h // 4, w)
    return torch.cat([y8, u, v], dim=1)


class I420Upscaler(FrameUpscaler):
    """Like :class:`FrameUpscaler` but returns I420 planes converted on the device (for the encoder)."""

    def __call__(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        planes = rgb_to_i420(self.upscaled(images)).cpu().numpy()
        return [planes[i] for i in range(planes.shape[0])]


def mean_abs_error_255(a: Sequence[np.ndarray] | np.ndarray, b: Sequence[np.ndarray] | np.ndarray) -> float:
    """Mean absolute error in 8-bit levels (1.0 == 1/255)."""
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise InputError(f"shapes differ: {x.shape} vs {y.shape}")
    return float(np.abs(x - y).mean())


def describe(runner: SRRunner) -> dict[str, Any]:
    return {"device": str(runner.device), "dtype": str(runner.dtype).replace("torch.", ""),
            "tile": runner.tile.size, "overlap": runner.tile.overlap, "channels_last": runner.channels_last,
            "mode": runner.mode, "pre_pad": runner.pre_pad}
