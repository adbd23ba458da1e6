"""Enhance agent: upscale an image or a video.

The foundation engine is classic (Lanczos + unsharp mask) and is reported as such; neural
super-resolution, denoising and frame interpolation plug into the same agent.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agents.base import Agent, AgentResult, RunContext
from core.aigc import AIGC_KEY
from core.errors import InputError, MediaError
from core.media import probe
from core.usage import UsageRecord, seconds_since
from pipelines.upscale import ClassicUpscaler, is_image, video_output_size
from pipelines.video import process_video

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EnhanceInput:
    src: Path
    dst: Path
    scale: float = 2
    method: str = "classic"
    crf: int = 18
    preset: str = "veryfast"


@dataclass(frozen=True, slots=True)
class EnhanceOutput:
    path: Path
    kind: str  # image | video
    size: tuple[int, int]
    frames: int
    method: str


class EnhanceAgent(Agent[EnhanceInput, EnhanceOutput]):
    name = "enhance"
    description = "upscale an image or a video (classic Lanczos + sharpening for now)"

    def run(self, inp: EnhanceInput, ctx: RunContext) -> AgentResult[EnhanceOutput]:
        if inp.method != "classic":
            raise InputError(f"enhance method {inp.method!r} is not available", hint="use --method classic")
        if not inp.src.exists():
            raise InputError(f"input {str(inp.src)!r} does not exist")
        if inp.src.resolve() == inp.dst.resolve():
            raise InputError("output path is the input path", hint="choose another output file; the input is kept")
        upscaler = ClassicUpscaler(scale=inp.scale)
        ctx.warn(f"enhance uses the classic method ({upscaler.name}): resampling and sharpening, no learned detail")
        start = time.perf_counter()
        if is_image(inp.src):
            out = self._image(inp, upscaler)
        else:
            out = self._video(inp, upscaler, ctx)
        elapsed = seconds_since(start, time.perf_counter())
        usage = [UsageRecord(stage=self.name, engine=upscaler.name, unit="cpu_second", quantity=elapsed, seconds=elapsed,
                             device="cpu", licence="BSD-3-Clause / Apache-2.0 (OpenCV)",
                             detail={"scale": str(inp.scale), "kind": out.kind, "frames": out.frames})]
        ctx.record(usage)
        return AgentResult(output=out, engine=upscaler.name, files=[out.path], usage=usage, notes=list(ctx.notes))

    def _image(self, inp: EnhanceInput, up: ClassicUpscaler) -> EnhanceOutput:
        from PIL import Image, PngImagePlugin, UnidentifiedImageError

        try:
            with Image.open(inp.src) as im:
                im.load()
                info = dict(im.info)
                mode = "RGBA" if im.mode in {"RGBA", "LA", "P"} and "transparency" in im.info or im.mode == "RGBA" else "RGB"
                arr = np.asarray(im.convert(mode))
        except UnidentifiedImageError as e:
            raise MediaError(f"{str(inp.src)!r} is not a readable image") from e
        except OSError as e:
            raise MediaError(f"{str(inp.src)!r} is damaged or truncated ({e})") from e
        out = up.upscale(arr)
        inp.dst.parent.mkdir(parents=True, exist_ok=True)
        img = Image.fromarray(out, mode)
        kwargs: dict[str, object] = {}
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
        img.save(inp.dst, **kwargs)
        return EnhanceOutput(inp.dst, "image", (out.shape[1], out.shape[0]), 1, up.name)

    def _video(self, inp: EnhanceInput, up: ClassicUpscaler, ctx: RunContext) -> EnhanceOutput:
        info = probe(inp.src)
        if info.video is None:
            raise MediaError(f"{str(inp.src)!r} has no video stream")
        w, h = info.video.display_size
        size = video_output_size(w, h, inp.scale)
        total = max(1, info.video.frames)

        def progress(done: int, _total: int) -> None:
            ctx.step(done / total, f"增强 {done}/{total} 帧 · frames")

        job = process_video(inp.src, inp.dst, lambda imgs: up.batch(imgs, size), out_size=size, crf=inp.crf,
                            preset=inp.preset, progress=progress, cancel=ctx.cancel)
        return EnhanceOutput(inp.dst, "video", size, job.frames, up.name)
