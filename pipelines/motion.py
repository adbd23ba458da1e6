"""Motion for a shot: camera moves on a still (CPU), or image-to-video diffusion (GPU).

Camera moves (pan, tilt, zoom, slow push-in, handheld, two-layer parallax) are affine maps
computed per frame in float64 from the frame number, eased, and applied with
``cv2.warpAffine`` on a plate at least as large as the frame, so a move is smooth and exact to
the sub-pixel (OpenCV's bilinear warp resolves 1/32 pixel). No border ever shows: the move is
clamped so the frame stays inside the plate.

Image-to-video goes through any diffusers pipeline loaded from a local folder whose call takes
an ``image`` (Stable Video Diffusion, CogVideoX-I2V, Wan I2V, LTX-Video I2V, I2VGen-XL...).
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError, MissingDependencyError, ModelError

log = logging.getLogger(__name__)

MOVES = ("static", "push_in", "pull_out", "pan_left", "pan_right", "tilt_up", "tilt_down", "handheld", "zoom_in",
         "zoom_out")


def _cv2() -> Any:
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - a core dependency
        raise MissingDependencyError("opencv-python-headless", "all") from e
    return cv2


def ease(t: float, kind: str = "inout") -> float:
    """Easing on [0, 1]: ``linear``, ``inout`` (smoothstep, no jerk at the ends) or ``out``."""
    t = min(1.0, max(0.0, t))
    if kind == "linear":
        return t
    if kind == "out":
        return 1 - (1 - t) ** 2
    return t * t * (3 - 2 * t)


@dataclass(frozen=True, slots=True)
class CameraMove:
    """A move from a start view to an end view of a plate.

    A view is (zoom, cx, cy): ``zoom`` >= 1 magnifies the plate (1 = the whole plate fits the
    frame in its shorter direction), ``cx, cy`` is the point of the plate at the frame centre,
    as a fraction of the plate's size.
    """

    kind: str = "static"
    start: tuple[float, float, float] = (1.0, 0.5, 0.5)
    end: tuple[float, float, float] = (1.0, 0.5, 0.5)
    easing: str = "inout"
    shake: float = 0.0  # handheld amplitude, in frame pixels
    seed: int = 0

    @property
    def is_static(self) -> bool:
        return self.start == self.end and self.shake == 0

    @classmethod
    def preset(cls, kind: str, strength: float = 1.0, seed: int = 0) -> CameraMove:
        """Moves named like ``core.screenplay.CameraMove`` plus zooms; ``strength`` scales the travel."""
        kind = (kind or "static").lower()
        if kind not in MOVES:
            raise InputError(f"unknown camera move {kind!r}", hint=f"use one of {', '.join(MOVES)}")
        s = max(0.0, strength)
        z = 1.0 + 0.12 * s  # zoom used by pans so there is plate to travel across
        d = 0.05 * s  # pan travel as a fraction of the plate
        table = {
            "static": ((1.0, 0.5, 0.5), (1.0, 0.5, 0.5)),
            "push_in": ((1.0, 0.5, 0.5), (1.0 + 0.15 * s, 0.5, 0.47)),
            "zoom_in": ((1.0, 0.5, 0.5), (1.0 + 0.3 * s, 0.5, 0.5)),
            "pull_out": ((1.0 + 0.15 * s, 0.5, 0.47), (1.0, 0.5, 0.5)),
            "zoom_out": ((1.0 + 0.3 * s, 0.5, 0.5), (1.0, 0.5, 0.5)),
            "pan_left": ((z, 0.5 + d, 0.5), (z, 0.5 - d, 0.5)),
            "pan_right": ((z, 0.5 - d, 0.5), (z, 0.5 + d, 0.5)),
            "tilt_up": ((z, 0.5, 0.5 + d), (z, 0.5, 0.5 - d)),
            "tilt_down": ((z, 0.5, 0.5 - d), (z, 0.5, 0.5 + d)),
            "handheld": ((1.06, 0.5, 0.5), (1.06, 0.5, 0.5)),
        }
        start, end = table[kind]
        return cls(kind, start, end, "linear" if kind == "handheld" else "inout",
                   shake=4.0 * s if kind == "handheld" else 0.0, seed=seed)

    def view(self, i: int, n: int) -> tuple[float, float, float]:
        t = ease(i / (n - 1), self.easing) if n > 1 else 0.0
        return tuple(a + (b - a) * t for a, b in zip(self.start, self.end, strict=True))  # type: ignore[return-value]

    def matrix(self, i: int, n: int, plate: tuple[int, int], frame: tuple[int, int], fps: Fraction = Fraction(25),
               depth: float = 1.0) -> np.ndarray:
        """2x3 affine map from plate pixels to frame pixels for frame ``i`` of ``n``.

        ``depth`` scales the move for a layer (parallax: a near layer moves more than a far one).
        """
        pw, ph = plate
        fw, fh = frame
        zoom, cx, cy = self.view(i, n)
        if depth != 1.0:
            zoom = 1.0 + (zoom - 1.0) * depth
            cx = 0.5 + (cx - 0.5) * depth
            cy = 0.5 + (cy - 0.5) * depth
        base = max(fw / pw, fh / ph)  # cover: the plate fills the frame at zoom 1
        scale = base * zoom
        # keep the frame inside the plate: clamp the centre
        half_w, half_h = fw / (2 * scale), fh / (2 * scale)
        px = min(max(cx * pw, half_w), pw - half_w)
        py = min(max(cy * ph, half_h), ph - half_h)
        if self.shake:
            t = float(Fraction(i) / fps)
            rng = np.random.default_rng(self.seed)
            f = rng.uniform(0.3, 1.3, 4)
            ph0 = rng.uniform(0, 2 * math.pi, 4)
            dx = self.shake * (0.6 * math.sin(2 * math.pi * f[0] * t + ph0[0]) + 0.4 * math.sin(2 * math.pi * f[1] * t + ph0[1]))
            dy = self.shake * (0.6 * math.sin(2 * math.pi * f[2] * t + ph0[2]) + 0.4 * math.sin(2 * math.pi * f[3] * t + ph0[3]))
            # the shake must not show the plate's edge: it is absorbed by the zoom margin
            px = min(max(px + dx / scale, half_w), pw - half_w)
            py = min(max(py + dy / scale, half_h), ph - half_h)
        # frame = scale * (plate - p) + frame_centre; pixel centres sit at +0.5
        tx = fw / 2 - scale * (px) + 0.5 * scale - 0.5
        ty = fh / 2 - scale * (py) + 0.5 * scale - 0.5
        return np.array([[scale, 0.0, tx], [0.0, scale, ty]], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Sprite:
    """A foreground layer (RGBA) placed on the frame, e.g. a character card, for parallax."""

    rgba: np.ndarray  # h x w x 4 uint8
    x: float  # top-left in frame pixels at the start of the shot
    y: float
    depth: float = 1.6  # how much more than the background it moves


def prepare_plate(image: np.ndarray, frame: tuple[int, int], move: CameraMove, oversample: float = 1.0,
                  *, channels: int = 3) -> np.ndarray:
    """Resize the plate once so the largest zoom of the move still samples it near 1:1.

    Warping from a plate much larger than the frame aliases; much smaller blurs. The plate is
    rescaled (area for a downscale, Lanczos for an upscale) to cover the frame at the move's
    largest zoom. ``channels=4`` returns RGBX: OpenCV warps 4-channel images about 2.5x faster
    than 3-channel ones (vectorised path), and the encoder takes RGBA frames as they are.
    """
    plate = _prepare_plate(image, frame, move, oversample)
    if channels == 4:
        cv2 = _cv2()
        return cv2.cvtColor(plate, cv2.COLOR_RGB2RGBA)
    return plate


def _prepare_plate(image: np.ndarray, frame: tuple[int, int], move: CameraMove, oversample: float) -> np.ndarray:
    cv2 = _cv2()
    ph, pw = image.shape[:2]
    fw, fh = frame
    zmax = max(move.start[0], move.end[0]) * (1.0 + (0.02 if move.shake else 0.0)) * oversample
    cover = max(fw / pw, fh / ph) * zmax
    new = (max(fw, int(math.ceil(pw * cover))), max(fh, int(math.ceil(ph * cover))))
    if abs(new[0] - pw) <= 1 and abs(new[1] - ph) <= 1:
        return np.ascontiguousarray(image[..., :3])
    interp = cv2.INTER_AREA if new[0] < pw else cv2.INTER_LANCZOS4
    return cv2.resize(np.ascontiguousarray(image[..., :3]), new, interpolation=interp)


def render_move(plate: np.ndarray, frame: tuple[int, int], move: CameraMove, n: int, *,
                fps: Fraction = Fraction(25), sprites: tuple[Sprite, ...] = ()) -> Iterator[np.ndarray]:
    """Yield ``n`` frames of ``move`` over ``plate`` (prepared with :func:`prepare_plate`; RGB or RGBX,
    the frames have the plate's channels). The same buffer is reused: copy a frame to keep it."""
    cv2 = _cv2()
    fw, fh = frame
    ph, pw = plate.shape[:2]
    out = np.empty((fh, fw, plate.shape[2]), np.uint8)
    for i in range(n):
        m = move.matrix(i, n, (pw, ph), frame, fps)
        cv2.warpAffine(plate, m, (fw, fh), dst=out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        for sp in sprites:
            _blend_sprite(out, sp, move, i, n, frame, fps)
        yield out


def _blend_sprite(frame_img: np.ndarray, sp: Sprite, move: CameraMove, i: int, n: int, frame: tuple[int, int],
                  fps: Fraction) -> None:
    """Warp a sprite by the parallax-scaled move and alpha-blend it in its bounding box only."""
    cv2 = _cv2()
    fw, fh = frame
    m_bg = move.matrix(i, n, frame, frame, fps, depth=sp.depth)  # the move as seen on a frame-sized layer
    m_0 = move.matrix(0, n, frame, frame, fps, depth=sp.depth)
    # the sprite follows the layer's motion relative to the first frame
    inv0 = cv2.invertAffineTransform(m_0)
    rel = _compose(m_bg, inv0)
    h, w = sp.rgba.shape[:2]
    corners = np.array([[sp.x, sp.y], [sp.x + w, sp.y], [sp.x, sp.y + h], [sp.x + w, sp.y + h]])
    mapped = corners @ rel[:, :2].T + rel[:, 2]
    x0 = max(0, int(math.floor(mapped[:, 0].min())) - 1)
    y0 = max(0, int(math.floor(mapped[:, 1].min())) - 1)
    x1 = min(fw, int(math.ceil(mapped[:, 0].max())) + 1)
    y1 = min(fh, int(math.ceil(mapped[:, 1].max())) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    # sprite pixel -> frame pixel, then shift into the patch
    m = rel.copy()
    m[:, 2] += rel[:, :2] @ np.array([sp.x, sp.y])
    m[0, 2] -= x0
    m[1, 2] -= y0
    patch = cv2.warpAffine(sp.rgba, m, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=(0, 0, 0, 0))
    blend_rgba(frame_img[y0:y1, x0:x1, :3], patch)


def _compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Affine ``a ∘ b`` for 2x3 matrices."""
    a3 = np.vstack([a, [0, 0, 1]])
    b3 = np.vstack([b, [0, 0, 1]])
    return (a3 @ b3)[:2]


def blend_rgba(dst: np.ndarray, rgba: np.ndarray) -> None:
    """Alpha-blend ``rgba`` over ``dst`` in place (same height/width), integer arithmetic."""
    alpha = rgba[..., 3:4].astype(np.uint16)
    if not alpha.any():
        return
    # uint16 so 255 * 255 fits; +127 rounds
    mixed = (dst.astype(np.uint16) * (255 - alpha) + rgba[..., :3].astype(np.uint16) * alpha + 127) // 255
    dst[...] = mixed.astype(np.uint8)


@dataclass(frozen=True, slots=True)
class Overlay:
    """A static RGBA layer on top of every frame, kept as its non-transparent boxes only."""

    boxes: tuple[tuple[int, int, np.ndarray], ...]  # (x, y, rgba patch)

    @classmethod
    def from_rgba(cls, rgba: np.ndarray, grid: int = 64) -> Overlay:
        """Split into row bands that hold any opaque pixel, each cropped to its columns."""
        alpha = rgba[..., 3]
        rows = np.flatnonzero(alpha.any(axis=1))
        if not len(rows):
            return cls(())
        boxes: list[tuple[int, int, np.ndarray]] = []
        # group consecutive rows (allowing small gaps) into bands
        splits = np.flatnonzero(np.diff(rows) > grid) + 1
        for band in np.split(rows, splits):
            y0, y1 = int(band[0]), int(band[-1]) + 1
            cols = np.flatnonzero(alpha[y0:y1].any(axis=0))
            x0, x1 = int(cols[0]), int(cols[-1]) + 1
            boxes.append((x0, y0, np.ascontiguousarray(rgba[y0:y1, x0:x1])))
        return cls(tuple(boxes))

    def apply(self, frame_img: np.ndarray) -> np.ndarray:
        """Blend onto an RGB or RGBX frame in place (the fourth channel is left alone)."""
        for x, y, patch in self.boxes:
            h, w = patch.shape[:2]
            blend_rgba(frame_img[y:y + h, x:x + w, :3], patch)
        return frame_img


# ------------------------------------------------------------------------------------------
# image-to-video diffusion
# ------------------------------------------------------------------------------------------
@dataclass(slots=True)
class VideoRecord:
    model: str
    pipeline: str
    seed: int
    frames: int
    fps: int
    steps: int
    width: int
    height: int
    device: str
    dtype: str
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


class VideoPipeline:
    """Image-to-video with a diffusers pipeline from a local folder (no download, ever)."""

    def __init__(self, model: str | os.PathLike[str], *, device: str = "auto", dtype: str = "auto",
                 cpu_offload: bool | str = "auto", local_files_only: bool = True) -> None:
        self.path = Path(model).expanduser()
        if not self.path.exists():
            raise InputError(f"video model {str(self.path)!r} does not exist",
                             hint="pass a diffusers folder (model_index.json inside), e.g. --video-model /models/svd")
        if self.path.is_dir() and not (self.path / "model_index.json").exists():
            raise InputError(f"{str(self.path)!r} is not a diffusers pipeline folder (no model_index.json)",
                             hint="save it with pipe.save_pretrained(DIR) or download the full repository")
        self.device_name = device
        self.dtype_name = dtype
        self.cpu_offload = cpu_offload
        self.local_files_only = local_files_only
        self._pipe: Any = None
        self.device: Any = None
        self.dtype: Any = None

    @property
    def name(self) -> str:
        return self.path.name

    def load(self) -> Any:
        if self._pipe is not None:
            return self._pipe
        try:
            import torch
            from diffusers import DiffusionPipeline
        except ImportError as e:
            raise MissingDependencyError("diffusers", "gpu") from e
        from core.device import dtype_from_name, resolve_device

        self.device = resolve_device(self.device_name)
        self.dtype = dtype_from_name(self.dtype_name, self.device)
        start = time.perf_counter()
        try:
            from pipelines.diffusion import dtype_kwarg

            pipe = DiffusionPipeline.from_pretrained(str(self.path), local_files_only=self.local_files_only,
                                                     **dtype_kwarg(self.dtype))
        except (OSError, ValueError, KeyError) as e:
            raise ModelError(f"cannot load the video pipeline from {str(self.path)!r}: {e}") from e
        params = inspect.signature(pipe.__call__).parameters
        if "image" not in params:
            raise ModelError(f"{type(pipe).__name__} from {str(self.path)!r} does not take an image",
                             hint="use an image-to-video pipeline (SVD, CogVideoX-I2V, Wan-I2V, LTX I2V, I2VGen-XL)")
        offload = self.cpu_offload
        if offload == "auto":
            offload = self.device.type == "cuda" and _small_card(torch, self.device)
        if offload and self.device.type == "cuda":
            pipe.enable_model_cpu_offload(device=self.device)
        else:
            pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        log.info("video model %s (%s) on %s %s in %.1fs", self.path, type(pipe).__name__, self.device,
                 str(self.dtype).removeprefix("torch."), time.perf_counter() - start)
        self._pipe = pipe
        return pipe

    def generate(self, image: np.ndarray, *, seed: int, frames: int = 14, fps: int = 7, steps: int | None = None,
                 width: int | None = None, height: int | None = None, prompt: str = "",
                 **extra: Any) -> tuple[list[np.ndarray], VideoRecord]:
        """Frames (RGB uint8) animated from ``image``; the settings come back in the record."""
        import torch
        from PIL import Image

        if frames < 2:
            raise InputError(f"frames must be at least 2, got {frames}")
        pipe = self.load()
        params = inspect.signature(pipe.__call__).parameters
        h, w = image.shape[:2]
        width = width or w
        height = height or h
        mult = 16 if "transformer" in getattr(pipe, "components", {}) else 8
        width, height = max(mult, width - width % mult), max(mult, height - height % mult)
        kwargs: dict[str, Any] = {"image": Image.fromarray(image[..., :3]).resize((width, height), Image.Resampling.LANCZOS)}
        generator = torch.Generator(device="cpu").manual_seed(int(seed))
        kwargs["generator"] = generator
        for key, value in (("num_frames", frames), ("height", height), ("width", width), ("fps", fps),
                           ("num_inference_steps", steps), ("prompt", prompt or None), ("output_type", "np")):
            if key in params and value is not None:
                kwargs[key] = value
        for key, value in extra.items():
            if key not in params:
                raise InputError(f"{type(pipe).__name__} has no setting {key!r}")
            kwargs[key] = value
        start = time.perf_counter()
        with torch.inference_mode():
            out = pipe(**kwargs)
        seconds = time.perf_counter() - start
        video = out.frames[0] if hasattr(out, "frames") else out[0][0]
        arr = np.asarray(video)
        if arr.dtype != np.uint8:
            arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
        result = [np.ascontiguousarray(f[..., :3]) for f in arr]
        rec = VideoRecord(model=str(self.path), pipeline=type(pipe).__name__, seed=int(seed), frames=len(result),
                          fps=fps, steps=int(kwargs.get("num_inference_steps") or 0), width=width, height=height,
                          device=str(self.device), dtype=str(self.dtype).removeprefix("torch."), seconds=round(seconds, 3))
        return result, rec


def retime(frames: list[np.ndarray], src_fps: Fraction, dst_fps: Fraction, n: int) -> list[np.ndarray]:
    """Map a generated clip onto ``n`` frames at ``dst_fps``: plays at its own speed, then holds."""
    if not frames:
        raise InputError("no frames to retime")
    out = []
    for i in range(n):
        src = int(Fraction(i) * src_fps / dst_fps)
        out.append(frames[min(src, len(frames) - 1)])
    return out


def _small_card(torch: Any, device: Any) -> bool:
    try:
        total = torch.cuda.get_device_properties(device).total_memory
    except Exception:  # noqa: BLE001 - a probe
        return False
    return bool(total < 12 * 1024**3)
