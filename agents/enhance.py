"""Enhance agent: upscale an image or a video with a neural model (or the classic method).

The model is chosen by content, scale and device unless the user names one: anime, illustration
and our own animatic cards go to Real-ESRGAN animevideov3 (official weights, converted from the
ncnn release); live action goes to our PSNR-oriented rf-x2 / rf-x4. ``classic`` (Lanczos +
unsharp mask) stays available and is what runs when no model can load — logged and reported.
GPU or CPU seconds go to the usage records.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agents.base import Agent, AgentResult, RunContext
from core.aigc import AIGC_KEY
from core.errors import FieldError, InputError, MediaError, ModelError
from core.files import atomic_path, check_distinct, check_writable, sweep_parts
from core.media import (
    VIDEO_CONTAINERS,
    check_complete,
    check_video_output,
    iter_frames,
    one_report_per_file,
    probe,
    strict_media,
)
from core.usage import UsageRecord, seconds_since
from pipelines.upscale import (
    CONTENT_MODELS,
    IMAGE_SUFFIXES,
    ClassicUpscaler,
    NeuralUpscaler,
    classify_content,
    is_image,
    video_output_size,
)
from pipelines.video import process_video

log = logging.getLogger(__name__)

# methods that are not one model: the rest are the names of models.SR_MODELS (manifest or plug-in)
METHODS = ("auto", "classic", "animevideov3")


def model_names() -> list[str]:
    """Every name ``method`` accepts: the methods above and the registered super-resolution models."""
    from models import SR_MODELS

    return [*METHODS, *SR_MODELS.names()]


@dataclass(frozen=True, slots=True)
class EnhanceInput:
    src: Path
    dst: Path
    scale: float = 2
    method: str = "auto"  # auto | classic | animevideov3 | a models.SR_MODELS name (x4plus, rf-x2, a plug-in...)
    crf: int = 18
    preset: str = "veryfast"
    device: str = "auto"
    precision: str = "auto"  # auto | fp32 | bf16 | fp16 (GPU) | int8 (CPU, animevideov3)
    tile: int = 0  # 0: whole frames
    batch: int = 0  # 0: 1 on the CPU, 8 on a GPU
    compile: bool | None = None  # None: on for videos on a GPU (2x the model throughput on an H100)
    denoise: bool = False
    denoise_strength: float = 1.0
    fps: str | None = None  # frame-rate conversion target, e.g. "50" or "60000/1001"
    interpolation: str = "flow"  # flow (no weights) | rife (needs rife_weights)
    rife_weights: str | None = None
    strict: bool = False  # a truncated input (fewer frames than its container lists) is an error, not a warning

    def check(self) -> None:
        """Refuse bad values before any work, naming the field, the value and the fix."""
        if not self.src.exists():
            raise InputError(f"input {str(self.src)!r} does not exist", hint="check the path")
        if self.src.is_dir():
            raise InputError(f"input {str(self.src)!r} is a folder", hint="give one image or video file")
        check_distinct(self.src, self.dst)  # the same file by another name, or a link to it, too
        names = model_names()
        if self.method not in names:
            raise FieldError("model", self.method, "is not a model name", hint=f"use one of {', '.join(names)}")
        if isinstance(self.scale, bool) or not isinstance(self.scale, int | float) or not 1 <= self.scale <= 16:
            raise FieldError("scale", self.scale, "must be a number from 1 to 16", hint="2, 3 or 4 for a neural model")
        if isinstance(self.crf, bool) or not isinstance(self.crf, int) or not 0 <= self.crf <= 51:
            raise FieldError("crf", self.crf, "must be a whole number from 0 to 51", hint="18 is visually lossless")
        for name, value in (("tile", self.tile), ("batch", self.batch)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise FieldError(name, value, "must be a whole number, 0 or more", hint="0 chooses by itself")
        if self.denoise_strength <= 0:
            raise FieldError("denoise_strength", self.denoise_strength, "must be more than 0", hint="1.0 is the default")
        if self.fps and is_image(self.src):
            raise InputError("--fps applies to videos; an image has no frame rate")
        if self.interpolation not in ("flow", "rife"):
            raise FieldError("interpolation", self.interpolation, "must be flow or rife", hint="flow needs no weights")
        if self.interpolation == "rife" and not self.rife_weights:
            raise InputError("RIFE interpolation needs its weights file", hint="pass --rife-weights PATH/flownet.pkl")


@dataclass(frozen=True, slots=True)
class EnhanceOutput:
    path: Path
    kind: str  # image | video
    size: tuple[int, int]
    frames: int
    method: str
    device: str = "cpu"
    content: str = ""


def _model_for(method: str, scale: int, content: str) -> str:
    if method == "auto":
        return CONTENT_MODELS[content][scale]
    if method == "animevideov3":
        return f"animevideov3-x{scale}"
    return method


class EnhanceAgent(Agent[EnhanceInput, EnhanceOutput]):
    name = "enhance"
    description = "upscale an image or a video: neural super-resolution by content, or classic resampling"

    def __init__(self) -> None:
        # models loaded by this agent, kept for its next inputs (a pool's worker keeps its agent: one load)
        self._models: dict[tuple[Any, ...], NeuralUpscaler] = {}

    def run(self, inp: EnhanceInput, ctx: RunContext) -> AgentResult[EnhanceOutput]:
        with one_report_per_file(), strict_media(inp.strict):
            return self._run(inp, ctx)

    def _run(self, inp: EnhanceInput, ctx: RunContext) -> AgentResult[EnhanceOutput]:
        image = is_image(inp.src)
        self._check_output(inp, image)  # format, folder and room, before the work
        target_fps = None
        if inp.fps:
            from pipelines.interpolate import parse_fps

            target_fps = parse_fps(inp.fps)
        start = time.perf_counter()
        if not image:
            short = check_complete(inp.src)  # before the work: a truncated file makes a short output
            if short:
                ctx.notes.append(short)
        sample = self._sample(inp.src, image)
        content = classify_content(sample)
        upscaler, engine, licence = self._upscaler(inp, content, ctx)
        device = str(getattr(upscaler, "device", "cpu"))
        if inp.denoise:
            engine += "+denoise"
        if image:
            out = self._image(inp, upscaler, content)
        else:
            out = self._video(inp, upscaler, content, ctx, target_fps)
            if target_fps is not None:
                engine += f"+{inp.interpolation}@{target_fps}"
        elapsed = seconds_since(start, time.perf_counter())
        unit = "gpu_second" if device.startswith("cuda") else "cpu_second"
        usage = [UsageRecord(stage=self.name, engine=engine, unit=unit, quantity=elapsed, seconds=elapsed,
                             model=out.method, device=device, licence=licence,
                             detail={"scale": str(inp.scale), "kind": out.kind, "frames": out.frames,
                                     "content": content, "size": list(out.size)})]
        ctx.record(usage)
        log.info("enhance: %s %s -> %dx%d with %s on %s (%s content) in %ss", out.kind, inp.src.name, out.size[0],
                 out.size[1], out.method, device, content, elapsed)
        return AgentResult(output=out, engine=engine, files=[out.path], usage=usage, notes=list(ctx.notes))

    # ------------------------------------------------------------------------------------
    @staticmethod
    def _check_output(inp: EnhanceInput, image: bool) -> None:
        """Everything about the output that can fail, checked before the work: its format, its folder, the room."""
        dst = inp.dst
        if dst.is_dir() or str(dst).endswith(("/", os.sep)):
            raise InputError(f"output {str(dst)!r} is a folder",
                             hint=f"give a file name, e.g. {dst / (inp.src.stem + '_x2' + inp.src.suffix)}")
        if image:
            if dst.suffix.lower() in VIDEO_CONTAINERS:
                raise InputError(f"{str(inp.src)!r} is a still image and cannot be written as the video {str(dst)!r}",
                                 hint=f"use an image name, e.g. {dst.with_suffix('.png').name}")
            if not is_image(dst):
                raise InputError(f"cannot write an image to {str(dst)!r}: unknown image format {dst.suffix or '(none)'}",
                                 hint=f"use one of {', '.join(sorted(IMAGE_SUFFIXES))}")
            need = 0
        else:
            if is_image(dst):
                raise InputError(f"{str(inp.src)!r} is a video and cannot be written as the image {str(dst)!r}",
                                 hint=f"use a video name, e.g. {dst.with_suffix('.mp4').name}")
            check_video_output(dst)
            info = probe(inp.src)
            if info.video is None:
                raise MediaError(f"{str(inp.src)!r} has no video stream")
            w, h = video_output_size(*info.video.display_size, inp.scale)
            # ~0.1 bit a pixel at CRF 18, plus the sound: a low estimate, so a close call still runs
            need = w * h * max(1, info.video.frames) // 80 + 2**20
            if inp.fps:
                need *= 3  # a near-lossless intermediate precedes the frame-rate conversion
        check_writable(dst.expanduser().absolute().parent, need_bytes=need, what="output")

    def _sample(self, src: Path, image: bool) -> list[np.ndarray]:
        if image:
            return [self._read_image(src)[0]]
        info = probe(src)
        if info.video is None:
            raise MediaError(f"{str(src)!r} has no video stream")
        n = max(1, info.video.frames)
        picks = sorted({0, n // 3, (2 * n) // 3})
        frames = [f.image for f in iter_frames(src, start=picks[0], end=picks[0] + 1)]
        for p in picks[1:]:
            frames += [f.image for f in iter_frames(src, start=p, end=p + 1)]
        return frames or [f.image for f in iter_frames(src, end=1)]

    def _upscaler(self, inp: EnhanceInput, content: str, ctx: RunContext) -> tuple[Any, str, str]:
        if float(inp.scale) == 1.0:
            return _Identity(), "none", "none: no model at scale 1 (frames are copied)"
        classic = ClassicUpscaler(scale=inp.scale)
        if inp.method == "classic":
            ctx.warn(f"enhance uses the classic method ({classic.name}): resampling and sharpening, no learned detail")
            return classic, classic.name, "BSD-3-Clause / Apache-2.0 (OpenCV)"
        if float(inp.scale) not in (2.0, 3.0, 4.0):
            raise InputError(f"neural upscaling supports --scale 2, 3 or 4, got {inp.scale}",
                             hint="use one of those, or --model classic for other factors")
        scale = int(inp.scale)
        name = _model_for(inp.method, scale, content)
        compile_ = inp.compile
        if compile_ is None:
            from core.device import resolve_device

            compile_ = resolve_device(inp.device).type == "cuda" and not is_image(inp.src)
        cache_dir = str(Path(ctx.config.models.cache_dir).expanduser())
        key = (name, scale, inp.device, inp.precision, inp.tile, compile_, cache_dir)
        # int8 calibrates on its first frame: a model kept from another input would carry that input's scales
        reuse = inp.precision.strip().lower() != "int8"
        try:
            up = self._models.get(key) if reuse else None
            if up is None:
                up = NeuralUpscaler.load(name, scale, device=inp.device, precision=inp.precision, tile=inp.tile,
                                         compile=compile_, cache_dir=cache_dir)
                if reuse:
                    self._models[key] = up
        except ModelError as e:
            if inp.method != "auto":
                raise
            ctx.warn(f"model {name!r} is unavailable ({e}); falling back to the classic method")
            return classic, classic.name, "BSD-3-Clause / Apache-2.0 (OpenCV)"
        for note in up.notes:
            ctx.warn(note)
        if up.device.type == "cpu":
            log.info("enhance runs on the CPU (%s, %s); a GPU is many times faster", up.runner.mode,
                     str(up.runner.dtype).replace("torch.", ""))
        return up, f"sr:{name}", up.licence

    @staticmethod
    def _read_image(src: Path) -> tuple[np.ndarray, dict[str, Any], str]:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(src) as im:
                im.load()
                info = dict(im.info)
                alpha = im.mode in {"RGBA", "LA"} or (im.mode == "P" and "transparency" in im.info)
                arr = np.asarray(im.convert("RGBA" if alpha else "RGB"))
        except UnidentifiedImageError as e:
            raise MediaError(f"{str(src)!r} is not a readable image") from e
        except OSError as e:
            raise MediaError(f"{str(src)!r} is damaged or truncated ({e})") from e
        return arr, info, "RGBA" if alpha else "RGB"

    def _image(self, inp: EnhanceInput, up: Any, content: str) -> EnhanceOutput:
        from PIL import Image, PngImagePlugin

        arr, info, mode = self._read_image(inp.src)
        rgb = np.ascontiguousarray(arr[..., :3])
        if inp.denoise:
            from pipelines.denoise import DenoiseSettings, denoise_image

            rgb = denoise_image(rgb, DenoiseSettings(strength=inp.denoise_strength))
        out_rgb = up.upscale(rgb)
        if mode == "RGBA":  # the alpha channel is resampled classically
            import cv2

            alpha = cv2.resize(arr[..., 3], (out_rgb.shape[1], out_rgb.shape[0]), interpolation=cv2.INTER_LANCZOS4)
            out = np.dstack([out_rgb, alpha])
        else:
            out = out_rgb
        inp.dst.parent.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(out, mode)
        kwargs: dict[str, Any] = {}
        if inp.dst.suffix.lower() == ".png":
            png = PngImagePlugin.PngInfo()
            for key in (AIGC_KEY, "XML:com.adobe.xmp"):
                if key in info:
                    png.add_itxt(key, str(info[key]))
            kwargs["pnginfo"] = png
        elif "xmp" in info:
            kwargs["xmp"] = info["xmp"]
        if inp.dst.suffix.lower() in {".jpg", ".jpeg"}:
            img = img.convert("RGB")
            kwargs["quality"] = 95
        with atomic_path(inp.dst) as tmp:
            img.save(tmp, format=Image.registered_extensions()[inp.dst.suffix.lower()], **kwargs)
        method = getattr(up, "name", "classic")
        return EnhanceOutput(inp.dst, "image", (out.shape[1], out.shape[0]), 1, method,
                             str(getattr(up, "device", "cpu")), content)

    def _video(self, inp: EnhanceInput, up: Any, content: str, ctx: RunContext,
               target_fps: Any = None) -> EnhanceOutput:
        info = probe(inp.src)
        assert info.video is not None
        w, h = info.video.display_size
        size = video_output_size(w, h, inp.scale)
        total = max(1, info.video.frames)
        share = 0.6 if target_fps is not None else 1.0  # of the progress bar, before interpolation

        def progress(done: int, _total: int) -> None:
            ctx.step(share * done / total, f"增强 {done}/{total} 帧 · frames")

        fn: Any
        if isinstance(up, _Identity):
            fn = lambda imgs: list(imgs)  # noqa: E731
            output, batch = "rgb", 4
        elif isinstance(up, ClassicUpscaler):
            fn = lambda imgs: up.batch(imgs, size)  # noqa: E731
            output, batch = "rgb", 1
        else:
            gpu = up.device.type == "cuda"
            i420 = gpu and size[1] % 4 == 0
            fn = up.frame_fn(size, i420=i420)
            output = "i420" if i420 else "rgb"
            batch = inp.batch or (8 if gpu else 1)
        denoiser = None
        if inp.denoise:  # the denoiser works on the RGB source frames, before the upscaler
            from pipelines.denoise import DenoiseSettings, TemporalDenoiser

            denoiser = TemporalDenoiser(DenoiseSettings(strength=inp.denoise_strength))
            upscale_fn = fn
            fn = lambda imgs: upscale_fn(denoiser(imgs))  # noqa: E731
        first_dst = inp.dst if target_fps is None else inp.dst.with_name(f".{inp.dst.stem}.{os.getpid()}.pre-fps.mp4")
        # before a frame-rate conversion the intermediate is encoded near-losslessly
        crf = inp.crf if target_fps is None else min(inp.crf, 10)
        sweep_parts(inp.dst)  # part files and intermediates of an earlier run that was killed
        job = process_video(inp.src, first_dst, fn, out_size=size, crf=crf, preset=inp.preset,
                            progress=progress, cancel=ctx.cancel, batch=batch, output=output)
        frames = job.frames
        if denoiser is not None:
            log.info("denoise: %s", denoiser.stats.as_dict())
        if target_fps is not None:
            from pipelines.interpolate import interpolate_video

            def progress2(done: int, total2: int) -> None:
                ctx.step(share + (1 - share) * done / max(1, total2), f"插帧 {done}/{total2} 帧 · frames")

            try:
                stats = interpolate_video(first_dst, inp.dst, target_fps, method=inp.interpolation,
                                          weights=inp.rife_weights, progress=progress2, cancel=ctx.cancel,
                                          device=inp.device, crf=inp.crf, preset=inp.preset)
            finally:
                first_dst.unlink(missing_ok=True)
            if inp.interpolation == "rife" and str(stats.as_dict().get("engine_device", "")).startswith("cpu"):
                ctx.warn("RIFE frame interpolation ran on the CPU: slow; a GPU is many times faster")
            frames = stats.out_frames
        return EnhanceOutput(inp.dst, "video", size, frames, getattr(up, "name", "classic"),
                             str(getattr(up, "device", "cpu")), content)


class _Identity:
    """No upscaling (``--scale 1``): denoise or frame-rate conversion alone."""

    name = "none"

    def upscale(self, image: np.ndarray) -> np.ndarray:
        return image
