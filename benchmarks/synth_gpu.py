"""Overhead of ReelForge's keyframe path over a bare diffusers call, on one GPU.

Builds the full Stable Diffusion 1.5 architecture (UNet 860M, VAE 84M, CLIP-L text 123M) from its
config with random weights, directly on the device (no download, no weights on disk), then times

* bare:  ``pipe(prompt=[...] * B, num_inference_steps=N, generator=[...], output_type="np")``
* ours:  ``KeyframePipeline.from_pipe(pipe).generate([KeyframeRequest(...)] * B)`` (request checks,
  batching by settings, per-image generators, uint8 conversion, the settings record)

at the same settings (fp16, 512x512, batch B, N steps), alternating, after a warm-up of each, and
prints the medians and the overhead in percent (target: under 5 %).

Run on a GPU machine from the repository root (about a minute on an H100):

    python -m benchmarks.synth_gpu                       # fp16, batch 4 and 1, 25 steps
    python -m benchmarks.synth_gpu --device cpu --scale tiny --steps 2 --repeats 2   # plumbing check

Needs torch (CUDA build), diffusers (0.42.1 tested), transformers (5.x), numpy; not PyAV or pydantic.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a source tree without installing

import numpy as np  # noqa: E402


def _sync(torch: object, device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()  # type: ignore[attr-defined]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--scale", default="sd15", choices=("sd15", "tiny"))
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batches", default="4,1")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    import diffusers
    import torch
    import transformers

    from pipelines.diffusion import KeyframePipeline, KeyframeRequest, PipelineOptions
    from tests.support.tiny_pipelines import build_random_sd

    dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
    t0 = time.perf_counter()
    pipe = build_random_sd(scale=args.scale, device=args.device).to(args.device, dtype)
    if args.device.startswith("cuda"):
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    pipe.set_progress_bar_config(disable=True)
    build_s = time.perf_counter() - t0
    params = sum(p.numel() for m in (pipe.unet, pipe.vae, pipe.text_encoder) for p in m.parameters())
    size = args.size if args.scale == "sd15" else 32
    ours = KeyframePipeline.from_pipe(pipe, f"random-{args.scale}", PipelineOptions(device=args.device, batch_size=64))

    gpu = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"machine: {platform.node()} | {gpu} | torch {torch.__version__} | diffusers {diffusers.__version__} | "
          f"transformers {transformers.__version__} | python {platform.python_version()}")
    print(f"model: SD 1.5 architecture ({args.scale}), random weights, {params / 1e6:.0f}M parameters, "
          f"{str(dtype).removeprefix('torch.')}, built in {build_s:.1f}s; {size}x{size}, {args.steps} steps, PNDM")
    print(f"{'batch':>5} {'bare s':>9} {'ours s':>9} {'overhead':>9} {'img/s bare':>11} {'img/s ours':>11}  runs")
    worst = 0.0
    for batch in [int(b) for b in args.batches.split(",")]:
        prompts = [f"未庄的街道，清晨，薄雾，电影感 {i}" for i in range(batch)]

        def bare(prompts: list[str] = prompts) -> None:
            gens = [torch.Generator(device=args.device).manual_seed(1000 + i) for i in range(len(prompts))]
            with torch.inference_mode():
                out = pipe(prompt=prompts, num_inference_steps=args.steps, width=size, height=size, generator=gens,
                           output_type="np")
            _sync(torch, args.device)
            np.asarray(out.images)

        def wrapped(prompts: list[str] = prompts) -> None:
            reqs = [KeyframeRequest(prompt=p, seed=1000 + i, steps=args.steps, width=size, height=size, tag=str(i))
                    for i, p in enumerate(prompts)]
            ours.generate(reqs)

        bare()
        wrapped()  # warm-up (cuDNN autotune, allocator)
        times: dict[str, list[float]] = {"bare": [], "ours": []}
        for _ in range(args.repeats):
            for name, fn in (("bare", bare), ("ours", wrapped)):
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
        b, o = statistics.median(times["bare"]), statistics.median(times["ours"])
        overhead = (o - b) / b * 100
        worst = max(worst, overhead)
        print(f"{batch:>5} {b:>9.3f} {o:>9.3f} {overhead:>8.2f}% {batch / b:>11.2f} {batch / o:>11.2f}  {args.repeats}")
    print(f"worst overhead {worst:.2f}% (target < 5%)")
    # the same seed gives the same picture through both paths (checked once, batch 1)
    with torch.inference_mode():
        ref = pipe(prompt=["check"], num_inference_steps=2, width=size, height=size,
                   generator=[torch.Generator(device=args.device).manual_seed(7)], output_type="np").images[0]
    img, _ = ours.generate([KeyframeRequest(prompt="check", seed=7, steps=2, width=size, height=size)])[0]
    same = np.abs((np.clip(ref, 0, 1) * 255).round().astype(np.int16) - img.astype(np.int16)).max()
    print(f"same seed, same picture: max difference {same} levels of 255")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
