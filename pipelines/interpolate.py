"""Frame-rate conversion: exact output times, scene-cut aware, optical flow (CPU) or RIFE.

Output frame ``k`` is shown at ``k / dst_fps`` (a :class:`~fractions.Fraction`); it sits at
``p = k * src_fps / dst_fps`` in source frames, between source frames ``i = floor(p)`` and
``i + 1`` at the exact fraction ``t = p - i``. When ``t`` is 0 the source frame is copied
bit for bit; otherwise the interpolator synthesises the picture at ``t``, unless the two source
frames belong to different shots, in which case frame ``i`` is held (a cut is never blended).
After the last source frame, its picture is held until the end of its display time, so the
output lasts exactly ``ceil(N * dst_fps / src_fps)`` frames — 25 -> 50 doubles the count.

Interpolators (one small ABC, one required method; the registry is
:data:`pipelines.INTERPOLATORS`, ``INTERPOLATORS`` here, and a plug-in registers as the entry point
``interpolator.<name>`` in ``reelforge.plugins``):

- ``flow`` (CPU, no weights): DIS optical flow both ways on luma, flows to the intermediate time
  by the quadratic approximation of Super SloMo (Jiang et al. 2018), both neighbours warped
  there and blended by time distance. ``occlusion=True`` adds forward-backward occlusion
  weighting; it is off by default because it scored lower on every clip we measured (see
  benchmarks/RESULTS.md, "Denoise and interpolation").
- ``rife``: the IFNet of Practical-RIFE 4.x (:mod:`models.rife`) from a weight file the user
  gives; fp16 on CUDA, fp32 on the CPU.
- ``blend`` and ``repeat``: the naive baselines (cross-fade, frame repeat) for comparisons.

:func:`interpolate_video` streams a file through a :class:`FrameRateConverter` (decode thread ->
compute -> encode thread), keeps the sound in sync and the AIGC label of the input.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from core.errors import InputError
from models.flow_utils import (
    DISFlow,
    backward_warp,
    fb_occlusion,
    flow_factor,
    shrink,
    to_luma,
    upsample_flow,
)
from pipelines import INTERPOLATORS  # the registry, declared in pipelines/__init__.py

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int], None]
MAX_FPS = Fraction(1000)


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - a core dependency
        from core.errors import MissingDependencyError

        raise MissingDependencyError("opencv-python-headless", "all") from e
    return cv2


def parse_fps(value: Fraction | int | float | str) -> Fraction:
    """``50``, ``"60"``, ``"24000/1001"``, ``"59.94"`` or a Fraction -> an exact positive Fraction.

    Floats are taken by their decimal text (``59.94`` -> ``2997/50``), never their binary value.
    """
    try:
        if isinstance(value, Fraction):
            fps = value
        elif isinstance(value, float):
            fps = Fraction(repr(value))
        else:
            fps = Fraction(str(value).strip())
    except (ValueError, ZeroDivisionError) as e:
        raise InputError(f"frame rate {value!r} is not a number", hint="e.g. 50, 60, 24000/1001 or 59.94") from e
    if not 0 < fps <= MAX_FPS:
        raise InputError(f"frame rate must be above 0 and at most {MAX_FPS}, got {value!r}")
    return fps


# --------------------------------------------------------------------------------------------
# scene cuts
# --------------------------------------------------------------------------------------------
class SceneCutDetector:
    """Says whether two consecutive frames belong to different shots.

    Score: the mean absolute luma difference (8-bit levels) between the first frame's
    thumbnail and the second's warped onto it by DIS flow. Motion, even fast, is compensated and
    scores low; an unrelated picture cannot be matched and scores high. Measured on the
    opencv-doc clips: 2.6-6.4 within shots (vtest.avi at 2.5 fps, Megamind.avi 3 frames apart),
    30-39 at the four cuts of Megamind.avi, 40-90 between unrelated photographs.
    """

    def __init__(self, threshold: float = 12.0, width: int = 160) -> None:
        if threshold <= 0:
            raise InputError(f"scene-cut threshold must be positive, got {threshold}")
        self.threshold = threshold
        self.width = width
        self._flow = DISFlow("fast")

    def _thumb(self, image: np.ndarray) -> np.ndarray:
        cv2 = _cv2()
        y = to_luma(image)
        h, w = y.shape[:2]
        tw = min(self.width, w)
        th = max(8, round(h * tw / w))
        return cv2.resize(y, (max(8, tw), th), interpolation=cv2.INTER_AREA)

    def score(self, a: np.ndarray, b: np.ndarray) -> float:
        ta, tb = self._thumb(a), self._thumb(b)
        flow = self._flow.small(ta, tb)
        return float(np.mean(np.abs(backward_warp(tb, flow).astype(np.float32) - ta)))

    def is_cut(self, a: np.ndarray, b: np.ndarray) -> bool:
        return self.score(a, b) > self.threshold


# --------------------------------------------------------------------------------------------
# interpolators
# --------------------------------------------------------------------------------------------
class Interpolator(ABC):
    """Synthesises pictures between two frames. One required method: :meth:`interpolate`."""

    name: ClassVar[str]
    description: ClassVar[str]

    @abstractmethod
    def interpolate(self, a: np.ndarray, b: np.ndarray, times: Sequence[float]) -> list[np.ndarray]:
        """Frames at each ``t`` in ``times`` (0 < t < 1) between RGB uint8 ``a`` (t=0) and ``b`` (t=1)."""

    def describe(self) -> dict[str, str]:
        """What ran, for reports (engine, device, weights...)."""
        return {"method": self.name}


class RepeatInterpolator(Interpolator):
    name = "repeat"
    description = "repeat the previous frame (baseline: no new pictures)"

    def interpolate(self, a: np.ndarray, b: np.ndarray, times: Sequence[float]) -> list[np.ndarray]:
        return [a.copy() for _ in times]


class BlendInterpolator(Interpolator):
    name = "blend"
    description = "cross-fade of the two neighbours (baseline: ghosting on motion)"

    def interpolate(self, a: np.ndarray, b: np.ndarray, times: Sequence[float]) -> list[np.ndarray]:
        af, bf = a.astype(np.float32), b.astype(np.float32)
        return [np.clip(np.rint(af + t * (bf - af)), 0, 255).astype(np.uint8) for t in times]


class FlowInterpolator(Interpolator):
    """Bidirectional DIS optical flow + warping of both neighbours to the intermediate time (CPU).

    ``max_side`` bounds the flow resolution (longer side, pixels); ``preset`` is DIS's
    (``fast`` or ``medium``); ``occlusion`` weights each neighbour by whether the pixel is
    visible in it (forward-backward check) — off by default, see the module docstring.
    """

    name = "flow"
    description = "optical flow (OpenCV DIS) both ways, warp both neighbours, blend; CPU, no weights"

    def __init__(self, *, max_side: int = 1024, preset: str = "medium", occlusion: bool = False) -> None:
        if max_side < 64:
            raise InputError(f"max_side must be at least 64 pixels, got {max_side}")
        self.max_side = max_side
        self.preset = preset
        self.occlusion = occlusion
        self._flow = DISFlow(preset)

    def flows(self, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(flow a->b, flow b->a) at full size."""
        h, w = a.shape[:2]
        f = flow_factor(h, w, self.max_side)
        la, lb = shrink(to_luma(a), f), shrink(to_luma(b), f)
        return (upsample_flow(self._flow.small(la, lb), (w, h)), upsample_flow(self._flow.small(lb, la), (w, h)))

    def interpolate(self, a: np.ndarray, b: np.ndarray, times: Sequence[float]) -> list[np.ndarray]:
        if not times:
            return []
        f01, f10 = self.flows(a, b)
        occ0 = occ1 = None
        if self.occlusion:
            occ0 = fb_occlusion(f01, f10, tolerance=2.0)  # pixels of a hidden in b
            occ1 = fb_occlusion(f10, f01, tolerance=2.0)  # pixels of b hidden in a
        out = []
        for t in times:
            # flows from time t back to each neighbour (Super SloMo, eq. 4): exact for linear
            # motion where the flow is locally constant
            ft0 = (-(1.0 - t) * t) * f01 + (t * t) * f10
            ft1 = ((1.0 - t) ** 2) * f01 - (t * (1.0 - t)) * f10
            w0 = backward_warp(a, ft0).astype(np.float32)
            w1 = backward_warp(b, ft1).astype(np.float32)
            if occ0 is not None and occ1 is not None:
                vis0 = (1.0 - backward_warp(occ1, ft1)) * (1.0 - t)  # traced into b: hidden in a?
                vis1 = (1.0 - backward_warp(occ0, ft0)) * t
                total = vis0 + vis1
                fallback = total < 1e-3
                vis0 = np.where(fallback, 1.0 - t, vis0)
                vis1 = np.where(fallback, t, vis1)
                frame = (vis0[:, :, None] * w0 + vis1[:, :, None] * w1) / (vis0 + vis1)[:, :, None]
            else:
                frame = (1.0 - t) * w0 + t * w1
            out.append(np.clip(np.rint(frame), 0, 255).astype(np.uint8))
        return out

    def describe(self) -> dict[str, str]:
        return {"method": self.name, "engine": f"opencv-dis-{self.preset}", "device": "cpu",
                "occlusion": str(self.occlusion).lower(), "max_side": str(self.max_side)}


class RifeInterpolator(Interpolator):
    """RIFE (Practical-RIFE 4.x IFNet) from a local weight file; GPU fp16 when present, else CPU fp32.

    ``scale`` is RIFE's flow resolution factor (1.0; 0.5 for 4K). ``batch`` bounds how many
    intermediate times run in one forward pass.
    """

    name = "rife"
    description = "RIFE 4.x IFNet (Practical-RIFE), weights from a local file; CUDA fp16 or CPU fp32"

    def __init__(self, weights: str | Path, *, sha256: str | None = None, device: str = "auto",
                 precision: str = "auto", scale: float = 1.0, version: str | None = None, batch: int = 4) -> None:
        import torch

        from core.device import describe_device, dtype_from_name, resolve_device
        from models.rife import load_rife

        if scale not in (0.25, 0.5, 1.0, 2.0):
            raise InputError(f"RIFE scale must be 0.25, 0.5, 1.0 or 2.0, got {scale}", hint="use 0.5 for 4K input")
        if batch < 1:
            raise InputError(f"batch must be >= 1, got {batch}")
        self.device = resolve_device(device)
        self.dtype = dtype_from_name(precision, self.device)
        self.scale = scale
        self.batch = batch
        self.model = load_rife(weights, sha256=sha256, device=self.device, dtype=self.dtype, version=version,
                               channels_last=self.device.type == "cuda")
        self.device_info = describe_device(self.device)
        if self.device.type == "cpu":
            log.warning("RIFE runs on the CPU (%s, %s): expect seconds per frame at 1080p; a CUDA GPU runs it in fp16",
                        self.device_info.name, str(self.dtype).replace("torch.", ""))
        self._torch = torch

    def interpolate(self, a: np.ndarray, b: np.ndarray, times: Sequence[float]) -> list[np.ndarray]:
        if not times:
            return []
        torch = self._torch
        from core.media import frames_to_tensor, tensor_to_frames
        from models.rife import pad_to

        pair = frames_to_tensor([a, b], self.device, self.dtype, channels_last=False)
        multiple = max(self.model.modulo, int(self.model.modulo / self.scale))
        padded, (h, w) = pad_to(pair, multiple)
        out: list[np.ndarray] = []
        with torch.inference_mode():
            for start in range(0, len(times), self.batch):
                ts = list(times[start:start + self.batch])
                n = len(ts)
                img0 = padded[0:1].expand(n, -1, -1, -1)
                img1 = padded[1:2].expand(n, -1, -1, -1)
                if self.device.type == "cuda":
                    img0 = img0.contiguous(memory_format=torch.channels_last)
                    img1 = img1.contiguous(memory_format=torch.channels_last)
                t = torch.tensor(ts, device=self.device, dtype=self.dtype)
                y = self.model(img0, img1, t, scale=self.scale)
                out.extend(tensor_to_frames(y[:, :, :h, :w].float()))
        return out

    def describe(self) -> dict[str, str]:
        cfg = self.model.config
        return {"method": self.name, "engine": f"rife-{cfg.version or '4.x'}", "device": str(self.device),
                "device_name": self.device_info.name, "dtype": str(self.dtype).replace("torch.", ""),
                "weights": str(getattr(self.model, "weights_path", "")),
                "weights_sha256": str(getattr(self.model, "weights_sha256", "")), "scale": str(self.scale)}


def make_interpolator(method: str = "flow", *, weights: str | Path | None = None, sha256: str | None = None,
                      device: str = "auto", **options: Any) -> Interpolator:
    """Build an interpolator by name: ``flow`` (default), ``rife`` (needs ``weights``), ``blend``,
    ``repeat``, or a plug-in's name (its factory is called with ``device=``, ``weights=`` and
    ``sha256=`` when weights are given, and ``options``)."""
    if method not in INTERPOLATORS:
        raise InputError(f"unknown interpolation method {method!r}",
                         hint=f"use one of {', '.join(INTERPOLATORS.names())}")
    factory = INTERPOLATORS.factory(method)
    if factory is RifeInterpolator:
        if weights is None:
            raise InputError("method 'rife' needs a weight file",
                             hint="pass weights=PATH to a Practical-RIFE 4.x flownet.pkl, or use method='flow' (no weights)")
        return RifeInterpolator(weights, sha256=sha256, device=device, **options)
    if factory in (FlowInterpolator, BlendInterpolator, RepeatInterpolator):
        if weights is not None:
            raise InputError(f"method {method!r} takes no weights", hint="weights are for method='rife'")
        return factory(**options)
    # a plug-in: pass what was given, and check that it made an interpolator
    extra: dict[str, Any] = {"device": device}
    if weights is not None:
        extra.update(weights=weights, sha256=sha256)
    interp = factory(**extra, **options)
    if not isinstance(interp, Interpolator):
        raise InputError(f"interpolation plug-in {method!r} made a {type(interp).__name__}, not an Interpolator",
                         hint="a plug-in must subclass pipelines.interpolate.Interpolator")
    return interp


# --------------------------------------------------------------------------------------------
# frame-rate conversion (streaming)
# --------------------------------------------------------------------------------------------
@dataclass(slots=True)
class InterpolateStats:
    """What a conversion did, for the run's report."""

    src_fps: Fraction
    dst_fps: Fraction
    method: str
    src_frames: int = 0
    out_frames: int = 0
    copied: int = 0  # output frames that are exactly a source frame (t == 0)
    interpolated: int = 0
    held: int = 0  # repeats: across a cut, or after the last source frame
    cuts: int = 0  # source frame pairs judged to be a scene cut
    seconds: float = 0.0
    engine: dict[str, str] = field(default_factory=dict)

    @property
    def src_duration(self) -> Fraction:
        return Fraction(self.src_frames) / self.src_fps

    @property
    def out_duration(self) -> Fraction:
        return Fraction(self.out_frames) / self.dst_fps

    def as_dict(self) -> dict[str, Any]:
        return {"src_fps": str(self.src_fps), "dst_fps": str(self.dst_fps), "method": self.method,
                "src_frames": self.src_frames, "out_frames": self.out_frames, "copied": self.copied,
                "interpolated": self.interpolated, "held": self.held, "cuts": self.cuts,
                "seconds": round(self.seconds, 3), **{f"engine_{k}": v for k, v in self.engine.items()}}


class FrameRateConverter:
    """Push source frames in order, get output frames as soon as they can be made.

    ``push`` returns the output frames that lie before the pushed frame's time; ``flush`` (once,
    at the end) returns the rest. Output frame ``k`` is at exactly ``output_time(k)`` seconds.
    Memory: the previous source frame only.
    """

    def __init__(self, src_fps: Fraction | int | str, dst_fps: Fraction | int | str, interpolator: Interpolator, *,
                 cut_detector: SceneCutDetector | None = None) -> None:
        self.src_fps = parse_fps(src_fps)
        self.dst_fps = parse_fps(dst_fps)
        self.interpolator = interpolator
        self.cut_detector = cut_detector
        self.stats = InterpolateStats(self.src_fps, self.dst_fps, interpolator.name, engine=interpolator.describe())
        self._prev: np.ndarray | None = None
        self._next_out = 0  # index of the next output frame
        self._flushed = False

    def output_time(self, k: int) -> Fraction:
        return Fraction(k) / self.dst_fps

    def source_position(self, k: int) -> Fraction:
        """Where output frame ``k`` falls, in source frames (exact)."""
        return Fraction(k) * self.src_fps / self.dst_fps

    def output_count(self, src_frames: int) -> int:
        """Output frames for ``src_frames`` source frames: ``ceil(src_frames * dst / src)``."""
        return math.ceil(Fraction(src_frames) * self.dst_fps / self.src_fps)

    def push(self, image: np.ndarray) -> list[np.ndarray]:
        if self._flushed:
            raise InputError("this FrameRateConverter was flushed; make a new one for another stream")
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
            raise InputError(f"expected an H x W x 3 uint8 frame, got {getattr(image, 'shape', None)} "
                             f"{getattr(image, 'dtype', None)}")
        prev = self._prev
        if prev is not None and prev.shape != image.shape:
            raise InputError(f"frame size changed from {prev.shape[1]}x{prev.shape[0]} to "
                             f"{image.shape[1]}x{image.shape[0]} within one stream")
        index = self.stats.src_frames  # of the pushed frame
        self.stats.src_frames += 1
        self._prev = image
        if prev is None:
            return []
        return self._emit(prev, image, index - 1)

    def flush(self) -> list[np.ndarray]:
        """The output frames after the last source frame's time (copies/holds of it)."""
        if self._flushed:
            return []
        self._flushed = True
        if self._prev is None:
            return []
        return self._emit(self._prev, None, self.stats.src_frames - 1)

    def _emit(self, a: np.ndarray, b: np.ndarray | None, i: int) -> list[np.ndarray]:
        """Output frames whose source position lies in [i, i + 1), between ``a`` (frame i) and ``b``."""
        ks: list[int] = []
        ts: list[Fraction] = []
        while True:
            p = self.source_position(self._next_out)
            if p >= i + 1:
                break
            if p < i:  # cannot happen: positions increase and every earlier pair was emitted
                raise RuntimeError(f"output frame {self._next_out} at source position {p} was skipped")
            ks.append(self._next_out)
            ts.append(p - i)
            self._next_out += 1
        if not ks:
            return []
        inner = [t for t in ts if t != 0]
        synth: list[np.ndarray] = []
        if inner:
            if b is None:
                self.stats.held += len(inner)
            elif self.cut_detector is not None and self.cut_detector.is_cut(a, b):
                self.stats.cuts += 1
                self.stats.held += len(inner)
                log.debug("scene cut between source frames %d and %d: holding frame %d", i, i + 1, i)
            else:
                synth = self.interpolator.interpolate(a, b, [float(t) for t in inner])
                if len(synth) != len(inner):
                    raise RuntimeError(f"{self.interpolator.name} returned {len(synth)} frames for {len(inner)} times")
                self.stats.interpolated += len(inner)
        out: list[np.ndarray] = []
        it = iter(synth)
        for t in ts:
            if t == 0:
                out.append(a)
                self.stats.copied += 1
            else:
                out.append(next(it) if synth else a)
        self.stats.out_frames += len(out)
        return out


def convert_frames(frames: Sequence[np.ndarray], src_fps: Fraction | int | str, dst_fps: Fraction | int | str,
                   interpolator: Interpolator | None = None, *,
                   cut_detector: SceneCutDetector | None = None) -> tuple[list[np.ndarray], InterpolateStats]:
    """Convert a short in-memory list of frames (tests, previews)."""
    conv = FrameRateConverter(src_fps, dst_fps, interpolator or FlowInterpolator(), cut_detector=cut_detector)
    out: list[np.ndarray] = []
    for f in frames:
        out.extend(conv.push(f))
    out.extend(conv.flush())
    return out, conv.stats


# --------------------------------------------------------------------------------------------
# file
# --------------------------------------------------------------------------------------------
def interpolate_video(
    src: str | Path,
    dst: str | Path,
    target_fps: Fraction | int | str,
    method: str = "flow",
    weights: str | Path | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    *,
    sha256: str | None = None,
    device: str = "auto",
    scene_threshold: float | None = 12.0,
    crf: int = 18,
    preset: str = "veryfast",
    interpolator: Interpolator | None = None,
) -> InterpolateStats:
    """Convert ``src`` to ``target_fps`` into ``dst`` (H.264 + AAC), streaming.

    ``method``/``weights``/``sha256``/``device`` choose the interpolator (or pass a built
    ``interpolator``); ``scene_threshold`` None turns cut detection off. The sound is
    re-encoded and cut to the exact samples of the frames written; the ``AIGC`` label and
    title/comment of the input are kept. ``progress(done, total)`` counts source frames;
    setting ``cancel`` stops with :class:`KeyboardInterrupt` and leaves no output file.
    """
    from core.aigc import AIGC_KEY
    from core.media import Frame, VideoWriter, even_size, iter_frames, probe
    from core.streams import Prefetch
    from pipelines.video import AudioFeeder, _EncoderThread

    started = time.perf_counter()
    src = Path(src)
    dst = Path(dst)
    info = probe(src)
    if info.video is None:
        raise InputError(f"{str(src)!r} has no video stream")
    if src.resolve() == dst.resolve():
        raise InputError("output path is the input path", hint="choose another output file; the input is kept")
    v = info.video
    fps_out = parse_fps(target_fps)
    if v.variable_fps:
        log.warning("%s has a variable frame rate: frames are taken as evenly spaced at %s fps", src, v.fps)
    interp = interpolator or make_interpolator(method, weights=weights, sha256=sha256, device=device)
    detector = SceneCutDetector(scene_threshold) if scene_threshold is not None else None
    conv = FrameRateConverter(v.fps, fps_out, interp, cut_detector=detector)
    w, h = even_size(*v.display_size)
    meta = {k: val for k, val in info.metadata.items() if k.upper() == AIGC_KEY or k in {"title", "comment"}}
    rate = info.audio.sample_rate if info.audio else None
    channels = min(2, info.audio.channels) if info.audio else 1
    writer = VideoWriter(dst, w, h, fps_out, crf=crf, preset=preset, audio_rate=rate, audio_channels=channels,
                         metadata=meta)
    encoder = _EncoderThread(writer)
    audio = AudioFeeder(Path(src), rate, channels, encoder)
    total = v.frames
    decoder: Prefetch[Frame] = Prefetch(lambda: iter_frames(src), maxsize=8, name="decode")

    def put(frames: list[np.ndarray]) -> None:
        for img in frames:
            encoder.put("video", img[:h, :w])
        audio.advance(conv.stats.out_frames, fps_out)

    try:
        for frame in decoder:
            if cancel is not None and cancel.is_set():
                raise KeyboardInterrupt
            put(conv.push(frame.image))
            if progress is not None:
                progress(conv.stats.src_frames, total)
        put(conv.flush())
        encoder.finish()
        writer.close()  # pads or cuts the audio to the exact video length
    except BaseException:
        decoder.close()
        try:
            encoder.finish()
        except BaseException:  # noqa: BLE001 - the original error matters more
            pass
        writer.abort()
        raise
    stats = conv.stats
    stats.seconds = time.perf_counter() - started
    if stats.out_frames != conv.output_count(stats.src_frames):
        raise RuntimeError(f"wrote {stats.out_frames} frames, expected {conv.output_count(stats.src_frames)}")
    log.info("interpolated %s: %d frames at %s fps -> %d at %s fps (%d new, %d held, %d cuts) in %.1f s", src,
             stats.src_frames, v.fps, stats.out_frames, fps_out, stats.interpolated, stats.held, stats.cuts,
             stats.seconds)
    return stats
