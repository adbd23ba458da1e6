"""Keyframes from text with a diffusers pipeline loaded from local weights.

Whatever ``DiffusionPipeline.from_pretrained(folder)`` loads works here (SD 1.5, SDXL,
SDXL-Turbo, Kolors with Chinese prompts, PixArt, SD3, FLUX, Hunyuan-DiT...); a single
``.safetensors``/``.ckpt`` file goes through ``from_single_file`` of the class you name (its
config must be available offline, see :class:`KeyframePipeline`). Nothing is ever downloaded:
``local_files_only`` is always on.

Every image comes with a :class:`KeyframeRecord` holding the model, pipeline class, scheduler,
steps, guidance, size, prompt, negative prompt, seed, dtype and device, so it can be made again
exactly. Seeds are per image (one ``torch.Generator`` each), so a shot's picture does not
depend on which batch it was generated in, up to float rounding: a batch of 3 and a batch of 1
sum in a different order and may differ by a level or two of 255 (the record keeps the batch
size; the same batch size reproduces bit for bit on the same device).
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError, MissingDependencyError, ModelError

log = logging.getLogger(__name__)

FITS = ("auto", "crop", "outpaint", "aspect")
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".bin")


def seed_for(*parts: str) -> int:
    """A stable 32-bit seed from text (series, character, shot id...)."""
    return int(hashlib.sha256("|".join(parts).encode("utf-8")).hexdigest()[:8], 16)


@dataclass(frozen=True, slots=True)
class KeyframeRequest:
    """What to generate for one image. ``None`` means: the pipeline's own default."""

    prompt: str
    seed: int
    negative_prompt: str = ""
    steps: int | None = None
    guidance: float | None = None
    width: int | None = None  # generation size; None: native (see KeyframePipeline.native_size)
    height: int | None = None
    scheduler: str | None = None  # a diffusers scheduler class name, e.g. "DPMSolverMultistepScheduler"
    init_image: str | None = None  # image-to-image from this file (character sheet)
    strength: float = 0.6  # image-to-image strength
    ip_adapter_image: str | None = None  # IP-Adapter reference (when the adapter is loaded)
    ip_adapter_scale: float = 0.6
    tag: str = ""  # the caller's id for it (a shot id)

    def check(self) -> None:
        if not self.prompt.strip():
            raise InputError(f"keyframe {self.tag or '?'} has an empty prompt", hint="fill the shot's visual_prompt")
        if self.steps is not None and not 1 <= self.steps <= 1000:
            raise InputError(f"steps must be 1..1000, got {self.steps}")
        if self.guidance is not None and not 0 <= self.guidance <= 50:
            raise InputError(f"guidance must be 0..50, got {self.guidance}")
        for name, v in (("width", self.width), ("height", self.height)):
            if v is not None and (v < 8 or v > 4096):
                raise InputError(f"{name} {v} is out of range", hint="use 8..4096 pixels")
        if not 0 < self.strength <= 1:
            raise InputError(f"image-to-image strength must be in (0, 1], got {self.strength}")
        if not 0 <= self.seed < 2**63:
            raise InputError(f"seed {self.seed} is out of range (0 .. 2**63-1)")


@dataclass(slots=True)
class KeyframeRecord:
    """Everything needed to make the same image again (stored in the workspace as JSON)."""

    tag: str
    model: str
    pipeline: str
    scheduler: str
    prompt: str
    negative_prompt: str
    seed: int
    steps: int
    guidance: float | None
    width: int
    height: int
    dtype: str
    device: str
    mode: str  # text2img | img2img | ip-adapter
    seconds: float
    init_image: str | None = None
    strength: float | None = None
    ip_adapter: str | None = None
    ip_adapter_scale: float | None = None
    batch: int = 1
    diffusers: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def request(self) -> KeyframeRequest:
        """The request that reproduces this image."""
        return KeyframeRequest(prompt=self.prompt, seed=self.seed, negative_prompt=self.negative_prompt,
                               steps=self.steps, guidance=self.guidance, width=self.width, height=self.height,
                               scheduler=self.scheduler, init_image=self.init_image, strength=self.strength or 0.6,
                               ip_adapter_image=None, tag=self.tag)


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    device: str = "auto"
    dtype: str = "auto"  # auto: fp16 on CUDA (bf16 with prefer_bf16), fp32 on CPU
    prefer_bf16: bool = False
    attention_slicing: bool | str = "auto"  # auto: on for cards under 12 GB
    cpu_offload: bool | str = "auto"  # auto: model offload for cards under 12 GB
    pipeline_class: str = ""  # for single files: e.g. StableDiffusionXLPipeline
    config: str = ""  # for single files: a local diffusers folder of the same architecture
    ip_adapter: str = ""  # a local folder with IP-Adapter weights (image_encoder + ip-adapter*.safetensors)
    ip_adapter_weight: str = ""  # weight file name inside it; empty: the first ip-adapter*.safetensors/bin
    batch_size: int = 4
    channels_last: bool = True


class KeyframePipeline:
    """A text-to-image pipeline built once from local weights and called per batch of shots."""

    def __init__(self, model: str | os.PathLike[str], options: PipelineOptions = PipelineOptions()) -> None:
        self.path = Path(model).expanduser()
        if not self.path.exists():
            raise InputError(f"image model {str(self.path)!r} does not exist",
                             hint="pass a diffusers folder (with model_index.json) or a .safetensors file: --image-model PATH")
        if self.path.is_dir() and not (self.path / "model_index.json").exists():
            raise InputError(f"{str(self.path)!r} is not a diffusers pipeline folder (no model_index.json)",
                             hint="save it with pipe.save_pretrained(DIR), or point at the single .safetensors file")
        if self.path.is_file() and self.path.suffix.lower() not in SINGLE_FILE_SUFFIXES:
            raise InputError(f"{str(self.path)!r} is not a checkpoint file", hint=f"use one of {SINGLE_FILE_SUFFIXES}")
        if options.batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {options.batch_size}")
        self.options = options
        self._pipe: Any = None
        self._img2img: Any = None
        self._scheduler: Any = None
        self.device: Any = None
        self.dtype: Any = None
        self.ip_adapter_loaded = False
        self.load_seconds = 0.0

    @property
    def name(self) -> str:
        return self.path.stem if self.path.is_file() else self.path.name

    @classmethod
    def from_pipe(cls, pipe: Any, name: str = "in-memory", options: PipelineOptions = PipelineOptions()) -> KeyframePipeline:
        """Wrap a pipeline already built and placed on its device (benchmarks, notebooks)."""
        self = cls.__new__(cls)
        self.path = Path(name)
        self.options = options
        self._pipe = pipe
        self._img2img = None
        self._scheduler = None
        self.device = pipe.device
        self.dtype = pipe.dtype
        self.ip_adapter_loaded = False
        self.load_seconds = 0.0
        pipe.set_progress_bar_config(disable=True)
        return self

    # -- loading ---------------------------------------------------------------------------
    def load(self) -> Any:
        if self._pipe is not None:
            return self._pipe
        try:
            import diffusers
            import torch
        except ImportError as e:
            raise MissingDependencyError("diffusers", "gpu") from e
        from core.device import default_dtype, dtype_from_name, resolve_device

        o = self.options
        self.device = resolve_device(o.device)
        self.dtype = (default_dtype(self.device, prefer_bf16=True) if o.prefer_bf16 and o.dtype == "auto"
                      else dtype_from_name(o.dtype, self.device))
        start = time.perf_counter()
        try:
            if self.path.is_dir():
                pipe = diffusers.DiffusionPipeline.from_pretrained(str(self.path), local_files_only=True,
                                                                   **dtype_kwarg(self.dtype))
            else:
                cls_name = o.pipeline_class or "StableDiffusionPipeline"
                cls = getattr(diffusers, cls_name, None)
                if cls is None or not hasattr(cls, "from_single_file"):
                    raise InputError(f"pipeline class {cls_name!r} cannot load a single file",
                                     hint="e.g. StableDiffusionPipeline, StableDiffusionXLPipeline, FluxPipeline")
                kwargs: dict[str, Any] = {"local_files_only": True, **dtype_kwarg(self.dtype)}
                if o.config:
                    kwargs["config"] = o.config
                pipe = cls.from_single_file(str(self.path), **kwargs)
        except InputError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as e:
            hint = ("a single file needs its architecture's config offline: pass config=<a local diffusers folder "
                    "of the same model family>" if self.path.is_file() else "check that every component folder is complete")
            raise ModelError(f"cannot load the image pipeline from {str(self.path)!r}: {e}", hint=hint) from e
        if not _takes(pipe, "prompt"):
            raise ModelError(f"{type(pipe).__name__} from {str(self.path)!r} is not a text-to-image pipeline")
        if "safety_checker" in getattr(pipe, "components", {}) and pipe.components.get("safety_checker") is not None:
            log.info("image model %s has a safety checker: flagged images come back black", self.path)
        small = self.device.type == "cuda" and _small_card(torch, self.device)
        slicing = o.attention_slicing if o.attention_slicing != "auto" else small
        offload = o.cpu_offload if o.cpu_offload != "auto" else small
        if slicing and hasattr(pipe, "enable_attention_slicing"):
            pipe.enable_attention_slicing()
        if offload and self.device.type == "cuda":
            pipe.enable_model_cpu_offload(device=self.device)
        else:
            pipe.to(self.device)
        if o.channels_last and self.device.type == "cuda":
            for comp in ("unet", "vae"):
                module = getattr(pipe, comp, None)
                if module is not None:
                    module.to(memory_format=torch.channels_last)
        pipe.set_progress_bar_config(disable=True)
        if o.ip_adapter:
            self._load_ip_adapter(pipe)
        self.load_seconds = time.perf_counter() - start
        log.info("image model %s (%s) on %s %s in %.1fs%s%s", self.path, type(pipe).__name__, self.device,
                 str(self.dtype).removeprefix("torch."), self.load_seconds, ", attention slicing" if slicing else "",
                 ", CPU offload" if offload and self.device.type == "cuda" else "")
        self._pipe = pipe
        return pipe

    def _load_ip_adapter(self, pipe: Any) -> None:
        folder = Path(self.options.ip_adapter).expanduser()
        if not hasattr(pipe, "load_ip_adapter"):
            raise ModelError(f"{type(pipe).__name__} does not support IP-Adapter", hint="leave ip_adapter empty")
        if not folder.is_dir():
            raise InputError(f"IP-Adapter folder {str(folder)!r} does not exist")
        weight = self.options.ip_adapter_weight
        if not weight:
            found = sorted(p.name for p in folder.iterdir() if p.name.startswith("ip-adapter")
                           and p.suffix in (".safetensors", ".bin"))
            if not found:
                raise InputError(f"no ip-adapter*.safetensors in {str(folder)!r}")
            weight = found[0]
        try:
            pipe.load_ip_adapter(str(folder), subfolder="", weight_name=weight, local_files_only=True)
        except (OSError, ValueError, KeyError) as e:
            raise ModelError(f"cannot load IP-Adapter {weight!r} from {str(folder)!r}: {e}") from e
        self.ip_adapter_loaded = True

    @property
    def pipe(self) -> Any:
        return self.load()

    def native_size(self) -> tuple[int, int]:
        """The size the model was trained at, from its own config (width, height)."""
        pipe = self.load()
        scale = int(getattr(pipe, "vae_scale_factor", 8) or 8)
        sample = getattr(pipe, "default_sample_size", None)
        if not sample:
            for comp in ("unet", "transformer", "prior"):
                module = getattr(pipe, comp, None)
                cfg = getattr(module, "config", None)
                if cfg is not None and getattr(cfg, "sample_size", None):
                    sample = cfg.sample_size
                    break
        if isinstance(sample, list | tuple):
            h, w = int(sample[0]) * scale, int(sample[1]) * scale
            return w, h
        side = int(sample or 64) * scale
        return side, side

    def size_multiple(self) -> int:
        pipe = self.load()
        scale = int(getattr(pipe, "vae_scale_factor", 8) or 8)
        # transformer pipelines pack 2x2 latent patches
        return scale * 2 if getattr(pipe, "transformer", None) is not None else scale

    def generation_size(self, frame: tuple[int, int], fit: str = "auto", size: tuple[int, int] | None = None) -> tuple[int, int]:
        """The size to generate at for a frame of ``frame`` (w, h)."""
        if fit not in FITS:
            raise InputError(f"fit {fit!r} is unknown", hint=f"use one of {', '.join(FITS)}")
        mult = self.size_multiple()
        w: float
        h: float
        if size is not None:
            w, h = size
        elif fit == "aspect":
            nw, nh = self.native_size()
            area = nw * nh
            ratio = frame[0] / frame[1]
            w, h = math.sqrt(area * ratio), math.sqrt(area / ratio)
        else:
            w, h = self.native_size()
        return max(mult, int(round(w / mult)) * mult), max(mult, int(round(h / mult)) * mult)

    def img2img(self) -> Any:
        if self._img2img is None:
            from diffusers import AutoPipelineForImage2Image

            try:
                self._img2img = AutoPipelineForImage2Image.from_pipe(self.load())
            except ValueError as e:
                raise ModelError(f"{type(self.load()).__name__} has no image-to-image variant: {e}") from e
            self._img2img.set_progress_bar_config(disable=True)
        return self._img2img

    # -- generation ------------------------------------------------------------------------
    def generate(self, requests: Sequence[KeyframeRequest]) -> list[tuple[np.ndarray, KeyframeRecord]]:
        """Images (RGB uint8) in the order of ``requests``, batched where the settings agree."""
        for r in requests:
            r.check()
        pipe = self.load()
        results: dict[int, tuple[np.ndarray, KeyframeRecord]] = {}
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, r in enumerate(requests):
            key = (r.steps, r.guidance, r.width, r.height, r.scheduler, r.init_image is not None, r.strength,
                   r.ip_adapter_image is not None, r.ip_adapter_scale)
            groups.setdefault(key, []).append(i)
        for idx in groups.values():
            for start in range(0, len(idx), self.options.batch_size):
                chunk = idx[start:start + self.options.batch_size]
                for i, item in zip(chunk, self._run_batch(pipe, [requests[i] for i in chunk]), strict=True):
                    results[i] = item
        return [results[i] for i in range(len(requests))]

    def _run_batch(self, pipe: Any, batch: list[KeyframeRequest]) -> list[tuple[np.ndarray, KeyframeRecord]]:
        import diffusers
        import torch
        from PIL import Image

        first = batch[0]
        mode = "text2img"
        runner = pipe
        if first.init_image is not None:
            runner = self.img2img()
            mode = "img2img"
        if self._scheduler is None:
            self._scheduler = pipe.scheduler  # the model's own, restored for requests that name none
        if first.scheduler:
            cls = getattr(diffusers, first.scheduler, None)
            if cls is None or not first.scheduler.endswith("Scheduler"):
                raise InputError(f"unknown scheduler {first.scheduler!r}", hint="e.g. EulerDiscreteScheduler, DPMSolverMultistepScheduler")
            runner.scheduler = cls.from_config(self._scheduler.config)
        else:
            runner.scheduler = self._scheduler
        width, height = first.width, first.height
        if width is None or height is None:
            nw, nh = self.native_size()
            width, height = width or nw, height or nh
        kwargs: dict[str, Any] = {"prompt": [r.prompt for r in batch]}
        if _takes(runner, "negative_prompt") and any(r.negative_prompt for r in batch):
            kwargs["negative_prompt"] = [r.negative_prompt for r in batch]
        if first.steps is not None:
            kwargs["num_inference_steps"] = first.steps
        if first.guidance is not None and _takes(runner, "guidance_scale"):
            kwargs["guidance_scale"] = first.guidance
        if mode == "img2img":
            inits = [r.init_image for r in batch]
            if any(p is None for p in inits):
                raise InputError("an image-to-image batch mixes requests with and without init_image",
                                 hint="batch requests with the same settings together")
            kwargs["image"] = [Image.open(str(p)).convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
                               for p in inits]
            kwargs["strength"] = first.strength
        else:
            kwargs["width"], kwargs["height"] = width, height
        if first.ip_adapter_image is not None:
            if not self.ip_adapter_loaded:
                raise ModelError("an IP-Adapter reference was given but no IP-Adapter is loaded",
                                 hint="set ip_adapter to a local IP-Adapter folder")
            runner.set_ip_adapter_scale(first.ip_adapter_scale)
            kwargs["ip_adapter_image"] = [Image.open(r.ip_adapter_image).convert("RGB") for r in batch]  # type: ignore[arg-type]
            mode = "ip-adapter" if mode == "text2img" else mode + "+ip-adapter"
        elif self.ip_adapter_loaded:
            # a loaded adapter needs an image on every call; at scale 0 a flat grey one contributes nothing
            runner.set_ip_adapter_scale(0.0)
            kwargs["ip_adapter_image"] = [Image.new("RGB", (224, 224), (128, 128, 128)) for _ in batch]
        gen_device = "cpu" if self.device.type == "mps" else self.device
        kwargs["generator"] = [torch.Generator(device=gen_device).manual_seed(r.seed) for r in batch]
        kwargs["output_type"] = "np"
        start = time.perf_counter()
        with torch.inference_mode():
            out = runner(**kwargs)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - start
        images = np.asarray(out.images)
        if images.dtype != np.uint8:
            images = (np.clip(images, 0, 1) * 255).round().astype(np.uint8)
        steps = int(kwargs.get("num_inference_steps") or _default(runner, "num_inference_steps") or 0)
        guidance = kwargs.get("guidance_scale", _default(runner, "guidance_scale"))
        sched = type(runner.scheduler).__name__
        results = []
        for img, r in zip(images, batch, strict=True):
            rec = KeyframeRecord(
                tag=r.tag, model=str(self.path), pipeline=type(runner).__name__, scheduler=sched, prompt=r.prompt,
                negative_prompt=r.negative_prompt, seed=r.seed, steps=steps,
                guidance=float(guidance) if guidance is not None else None, width=int(img.shape[1]), height=int(img.shape[0]),
                dtype=str(self.dtype).removeprefix("torch."), device=str(self.device), mode=mode,
                seconds=round(seconds / len(batch), 4), init_image=r.init_image,
                strength=r.strength if r.init_image else None,
                ip_adapter=self.options.ip_adapter or None if r.ip_adapter_image else None,
                ip_adapter_scale=r.ip_adapter_scale if r.ip_adapter_image else None, batch=len(batch),
                diffusers=diffusers.__version__,
            )
            results.append((np.ascontiguousarray(img[..., :3]), rec))
        return results

    def regenerate(self, record: KeyframeRecord) -> tuple[np.ndarray, KeyframeRecord]:
        """Make the image of ``record`` again from its recorded settings."""
        return self.generate([record.request()])[0]


def dtype_kwarg(dtype: Any) -> dict[str, Any]:
    """``dtype=`` for diffusers >= 0.40 (``torch_dtype`` is deprecated there), else ``torch_dtype=``."""
    import diffusers

    major, minor = (int(x) for x in diffusers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (0, 40) else {"torch_dtype": dtype}


def native_size_from_folder(folder: str | os.PathLike[str]) -> tuple[int, int] | None:
    """The native size of a diffusers folder from its JSON configs alone (no weights loaded), for quotes."""
    import json

    root = Path(folder)
    try:
        vae = json.loads((root / "vae" / "config.json").read_text(encoding="utf-8"))
        factor = 2 ** (len(vae.get("block_out_channels", [0, 0, 0, 0])) - 1)
    except (OSError, ValueError):
        factor = 8
    for comp in ("unet", "transformer"):
        try:
            cfg = json.loads((root / comp / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        sample = cfg.get("sample_size")
        if isinstance(sample, list) and sample:
            return int(sample[-1]) * factor, int(sample[0]) * factor
        if isinstance(sample, int):
            return sample * factor, sample * factor
    return None


def _takes(pipe: Any, name: str) -> bool:
    return name in inspect.signature(pipe.__call__).parameters


def _default(pipe: Any, name: str) -> Any:
    param = inspect.signature(pipe.__call__).parameters.get(name)
    return None if param is None or param.default is inspect.Parameter.empty else param.default


def _small_card(torch: Any, device: Any) -> bool:
    try:
        total = torch.cuda.get_device_properties(device).total_memory
    except Exception:  # noqa: BLE001 - a probe
        return False
    return bool(total < 12 * 1024**3)


# ------------------------------------------------------------------------------------------
# fitting a generated image to the episode's frame
# ------------------------------------------------------------------------------------------
def fit_to_frame(image: np.ndarray, frame: tuple[int, int], fit: str = "auto", *, margin: float = 1.0) -> tuple[np.ndarray, str]:
    """Bring a generated image to the frame's aspect ratio, at ``margin`` x the frame size.

    ``crop`` cuts the centre; ``outpaint`` keeps the whole image and extends it to the frame's
    aspect with a mirrored, blurred and darkened continuation (a classical fill, named as such in
    the report); ``auto`` crops when at least 70 % of the image survives, else outpaints.
    Returns the image and the method used.
    """
    import cv2

    if fit not in FITS:
        raise InputError(f"fit {fit!r} is unknown", hint=f"use one of {', '.join(FITS)}")
    h, w = image.shape[:2]
    fw, fh = frame
    target = fw / fh
    ratio = w / h
    keep = min(target / ratio, ratio / target)
    method = fit
    if fit in ("auto", "aspect"):
        method = "crop" if keep >= 0.7 else "outpaint"
    if abs(ratio - target) < 1e-3:
        method = "none"
    out_w, out_h = int(round(fw * margin)), int(round(fh * margin))
    if method in ("crop", "none"):
        if ratio > target:  # too wide
            cw = int(round(h * target))
            x0 = (w - cw) // 2
            img = image[:, x0:x0 + cw]
        else:
            ch = int(round(w / target))
            y0 = (h - ch) // 2
            img = image[y0:y0 + ch]
        interp = cv2.INTER_AREA if img.shape[1] > out_w else cv2.INTER_LANCZOS4
        return cv2.resize(np.ascontiguousarray(img), (out_w, out_h), interpolation=interp), method
    # outpaint: scale to fit inside, then extend with a mirrored, blurred border
    scale = min(out_w / w, out_h / h)
    iw, ih = max(1, int(round(w * scale))), max(1, int(round(h * scale)))
    inner = cv2.resize(np.ascontiguousarray(image), (iw, ih), interpolation=cv2.INTER_LANCZOS4 if scale > 1 else cv2.INTER_AREA)
    left, top = (out_w - iw) // 2, (out_h - ih) // 2
    canvas = cv2.copyMakeBorder(inner, top, out_h - ih - top, left, out_w - iw - left, cv2.BORDER_REFLECT101)
    k = max(3, int(min(out_w, out_h) * 0.06) | 1)
    blurred = cv2.GaussianBlur(canvas, (k, k), 0)
    # darken the fill towards the outside, keep the generated picture untouched
    yy, xx = np.mgrid[0:out_h, 0:out_w]
    dist = np.maximum(np.maximum(left - xx, xx - (left + iw - 1)), np.maximum(top - yy, yy - (top + ih - 1)))
    span = max(1, max(left, top, out_w - iw - left, out_h - ih - top))
    shade = np.clip(1 - 0.45 * np.clip(dist, 0, None) / span, 0.55, 1)[..., None]
    out = (blurred.astype(np.float32) * shade).astype(np.uint8)
    out[top:top + ih, left:left + iw] = inner
    return out, "outpaint-classical"


def with_size(req: KeyframeRequest, size: tuple[int, int]) -> KeyframeRequest:
    return replace(req, width=size[0], height=size[1])


@dataclass(slots=True)
class Calibration:
    """Measured generation speed (seconds per step per megapixel) by model and device, for quotes."""

    entries: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def key(model: str, device: str) -> str:
        return f"{model}@{device}"

    def get(self, model: str, device: str) -> float | None:
        return self.entries.get(self.key(model, device))

    def update(self, model: str, device: str, seconds: float, steps: int, pixels: int) -> None:
        if steps <= 0 or pixels <= 0 or seconds <= 0:
            return
        value = seconds / steps / (pixels / 1e6)
        old = self.entries.get(self.key(model, device))
        self.entries[self.key(model, device)] = value if old is None else 0.5 * old + 0.5 * value

    @classmethod
    def load(cls, path: Path) -> Calibration:
        import json

        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return cls()
        return cls({str(k): float(v) for k, v in data.get("seconds_per_step_megapixel", {}).items()})

    def save(self, path: Path) -> None:
        import json

        from core.files import atomic_write_text

        # a unique temporary name: keyframe tasks on several workers may save at once
        atomic_write_text(path, json.dumps({"seconds_per_step_megapixel": self.entries}, indent=2, sort_keys=True) + "\n")
