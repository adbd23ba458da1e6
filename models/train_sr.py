"""Train ReelForge's own PSNR-oriented super-resolution models (``rf-x2``, ``rf-x4``).

Runs with torch, numpy and Pillow only (plus ``models`` and ``core.errors``), on a CUDA GPU
(bf16 autocast, channels_last) or on the CPU. Training images are CBSD68 + Sun-Hays80 only;
Set5/Set14 are never trained on and are only scored once, at the end.

    # once: copy the training (and evaluation) images into the git-ignored .data/
    python -m models.train_sr --prepare-from ../shared/data/images
    # train (resumes automatically from .runs/rf-x2/last.pt; checkpoints every few minutes)
    python -m models.train_sr --scale 2 --minutes 60
    python -m models.train_sr --scale 4 --minutes 40 --init models/weights/rf-x2.safetensors

A run is either step-based (``--steps N``: cosine learning rate over N steps) or, by default,
time-based: its first invocation turns ``--minutes`` into a training-time budget and the cosine
follows the share of that budget spent, so a busy shared machine only means fewer steps, not a
broken schedule. ``--minutes`` also bounds every invocation; an interrupted run (time out,
Ctrl-C, SIGTERM) checkpoints and the same command resumes it. When the run is done the EMA weights are written to ``models/weights/rf-x{scale}.safetensors``,
their sha256 into ``models/weights/manifest.json``, and the Set5/Set14 scores are printed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import logging
import math
import os
import shutil
import signal
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models.registry import MANIFEST, RF_KWARGS, WEIGHTS_DIR
from models.sr_eval import evaluate, format_score, list_images, model_upscaler
from models.sr_metrics import as_rgb, imresize, load_image, modcrop, psnr, rgb_to_y
from models.srvgg import SRVGGNetCompact
from models.weights_io import read_state_dict, save_weights, sha256_file

log = logging.getLogger("models.train_sr")

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = REPO / ".data" / "sr_train"
EVAL_DIR = REPO / ".data" / "sr_eval"
TRAIN_SETS = ("CBSD68", "CSun_Hays80")
EVAL_SETS = ("CSet5", "CSet14")
FORBIDDEN = ("set5", "set14", "cset5", "cset14")  # never train on the evaluation sets


def shared_images_dir() -> Path:
    """``$REELFORGE_SHARED_DATA/images``, else ``../shared/data/images`` next to the checkout."""
    root = os.environ.get("REELFORGE_SHARED_DATA")
    return (Path(root) if root else REPO.parent / "shared" / "data") / "images"


# --- data -------------------------------------------------------------------------------


def prepare_data(source: Path, data_dir: Path = DATA_DIR, eval_dir: Path = EVAL_DIR) -> None:
    """Copy CBSD68 + Sun-Hays80 (training) and Set5/Set14 (scoring only) into .data/."""
    for name, dest_root in [*((n, data_dir) for n in TRAIN_SETS), *((n, eval_dir) for n in EVAL_SETS)]:
        src = source / name
        if not src.is_dir():
            raise SystemExit(f"{src} does not exist; --prepare-from must hold {', '.join(TRAIN_SETS + EVAL_SETS)}")
        dest = dest_root / name
        dest.mkdir(parents=True, exist_ok=True)
        for path in list_images(src):
            if not (dest / path.name).exists():
                shutil.copy2(path, dest / path.name)
        log.info("copied %s -> %s", src, dest)


def split_files(data_dir: Path, val_every: int) -> tuple[list[Path], list[Path]]:
    """All training images, and every ``val_every``-th of each folder held out for validation."""
    train: list[Path] = []
    val: list[Path] = []
    folders = sorted(p for p in data_dir.iterdir() if p.is_dir()) if data_dir.is_dir() else []
    if not folders:
        raise SystemExit(f"no image folders in {data_dir}; run: python -m models.train_sr --prepare-from "
                         "../shared/data/images")
    for folder in folders:
        if folder.name.lower() in FORBIDDEN:
            raise SystemExit(f"{folder} is an evaluation set; it must not be in the training data")
        files = list_images(folder)
        for i, path in enumerate(files):
            (val if val_every > 0 and i % val_every == 0 else train).append(path)
    return train, val


def _pairs_for(path: Path, scale: int, hr_scales: tuple[float, ...], min_lr: int) -> list[tuple[np.ndarray, np.ndarray]]:
    img = as_rgb(load_image(path))
    out = []
    for f in hr_scales:
        # shrinking the HR first gives more scales of detail and washes out JPEG blocking
        hr = img if f == 1.0 else imresize(img, f)
        hr = modcrop(hr, scale)
        lr = imresize(hr, 1.0 / scale)
        if min(lr.shape[:2]) >= min_lr:
            out.append((np.ascontiguousarray(hr), np.ascontiguousarray(lr)))
    return out


class PatchSampler:
    """Random aligned LR/HR patches with the 8 flips/rotations, gathered in one indexing op.

    All images live flattened in one uint8 buffer on the training device; a batch is built by
    computing every source index (crop offset, flip and transpose folded in) and gathering.
    """

    def __init__(self, pairs: list[tuple[np.ndarray, np.ndarray]], scale: int, patch: int,
                 device: torch.device, seed: int) -> None:
        self.scale, self.patch, self.device = scale, patch, device
        pairs = [(h, lr) for h, lr in pairs if min(lr.shape[:2]) >= patch]
        if not pairs:
            raise SystemExit(f"no training image is at least {patch} px after downscaling")
        self.hr = torch.from_numpy(np.concatenate([h.reshape(-1) for h, _ in pairs])).to(device)
        self.lr = torch.from_numpy(np.concatenate([lr.reshape(-1) for _, lr in pairs])).to(device)
        hr_sizes = [h.size for h, _ in pairs]
        lr_sizes = [lr.size for _, lr in pairs]
        self.hr_off = torch.tensor(np.cumsum([0, *hr_sizes[:-1]]), dtype=torch.int64, device=device)
        self.lr_off = torch.tensor(np.cumsum([0, *lr_sizes[:-1]]), dtype=torch.int64, device=device)
        self.lr_h = torch.tensor([lr.shape[0] for _, lr in pairs], dtype=torch.int64, device=device)
        self.lr_w = torch.tensor([lr.shape[1] for _, lr in pairs], dtype=torch.int64, device=device)
        positions = (self.lr_h - patch + 1) * (self.lr_w - patch + 1)
        self.weights = positions.double() / positions.sum()
        self.gen = torch.Generator(device=device)
        self.gen.manual_seed(seed)
        self.count = len(pairs)
        self.pixels = int(sum(lr_sizes) // 3)

    def _grid(self, size: int, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Source (row, col) inside the patch for each output (i, j) under dihedral transform ``t``."""
        ar = torch.arange(size, device=self.device)
        i = ar.view(1, size, 1).expand(t.numel(), size, size)
        j = ar.view(1, 1, size).expand(t.numel(), size, size)
        tt = t.view(-1, 1, 1)
        i = torch.where(tt & 1 == 1, size - 1 - i, i)
        j = torch.where(tt & 2 == 2, size - 1 - j, j)
        swap = tt & 4 == 4
        return torch.where(swap, j, i), torch.where(swap, i, j)

    def _gather(self, buf: torch.Tensor, off: torch.Tensor, width: torch.Tensor, y0: torch.Tensor,
                x0: torch.Tensor, size: int, t: torch.Tensor) -> torch.Tensor:
        u, v = self._grid(size, t)
        pix = off.view(-1, 1, 1) + ((y0.view(-1, 1, 1) + u) * width.view(-1, 1, 1) + x0.view(-1, 1, 1) + v) * 3
        idx = pix.unsqueeze(1) + torch.arange(3, device=self.device).view(1, 3, 1, 1)
        return buf[idx]

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 (B, 3, p, p) LR and (B, 3, p*s, p*s) HR patches."""
        p, s, g = self.patch, self.scale, self.gen
        img = torch.multinomial(self.weights, batch, replacement=True, generator=g)
        h, w = self.lr_h[img], self.lr_w[img]
        y0 = (torch.rand(batch, generator=g, device=self.device, dtype=torch.float64) * (h - p + 1)).long()
        x0 = (torch.rand(batch, generator=g, device=self.device, dtype=torch.float64) * (w - p + 1)).long()
        t = torch.randint(0, 8, (batch,), generator=g, device=self.device)
        lr = self._gather(self.lr, self.lr_off[img], w, y0, x0, p, t)
        hr = self._gather(self.hr, self.hr_off[img], w * s, y0 * s, x0 * s, p * s, t)
        return lr, hr


# --- model, schedule, checkpoints -------------------------------------------------------


def build_model(scale: int) -> SRVGGNetCompact:
    if scale not in RF_KWARGS:
        raise SystemExit(f"--scale must be one of {sorted(RF_KWARGS)}, got {scale}")
    model = SRVGGNetCompact(**RF_KWARGS[scale])
    with torch.no_grad():  # start close to nearest-neighbour upscaling: a calm first few hundred steps
        last = model.body[-1]
        assert isinstance(last, nn.Conv2d)
        last.weight.mul_(0.1)
        if last.bias is not None:
            last.bias.zero_()
    return model


def init_from(model: nn.Module, path: Path) -> None:
    """Copy every tensor whose name and shape match (e.g. the x4 body from the x2 model)."""
    src = read_state_dict(path)
    own = model.state_dict()
    taken = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(taken, strict=False)
    log.info("initialised %d/%d tensors from %s", len(taken), len(own), path)


def learning_rate(progress: float, step: int, base: float, warmup: int, floor: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from ``base`` to ``floor`` over ``progress`` 0..1."""
    if step < warmup:
        return base * (step + 1) / warmup
    p = min(1.0, max(0.0, progress))
    return floor + 0.5 * (base - floor) * (1 + math.cos(math.pi * p))


class EMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = {k: v.detach().float().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for k, v in model.state_dict().items():
            self.shadow[k].mul_(d).add_(v.detach().float(), alpha=1 - d)


@dataclass(slots=True)
class RunState:
    step: int = 0
    total_steps: int = 0  # a step-based run (--steps); 0 while a time-based run is going
    budget_seconds: float = 0.0  # a time-based run: training seconds the schedule spans
    train_seconds: float = 0.0
    best_val: float = 0.0
    history: list[dict[str, Any]] | None = None


def save_checkpoint(path: Path, model: nn.Module, ema: EMA, opt: torch.optim.Optimizer, state: RunState,
                    sampler: PatchSampler, args: argparse.Namespace) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "model": model.state_dict(), "ema": ema.shadow, "opt": opt.state_dict(),
        "state": {"step": state.step, "total_steps": state.total_steps, "budget_seconds": state.budget_seconds,
                  "train_seconds": state.train_seconds,
                  "best_val": state.best_val, "history": state.history or []},
        "gen": sampler.gen.get_state(), "torch_rng": torch.get_rng_state(),
        "args": {k: v for k, v in vars(args).items() if isinstance(v, int | float | str | bool) or v is None},
    }
    tmp = path.with_name(path.name + ".part")
    torch.save(blob, tmp)
    tmp.replace(path)  # atomic: an interrupted save never destroys the last good checkpoint


def export(ema: EMA, scale: int, out: Path, info: dict[str, Any]) -> str:
    kwargs = RF_KWARGS[scale]
    state = {k: v for k, v in ema.shadow.items()}
    save_weights(state, out, arch="srvgg", kwargs=kwargs, source=f"reelforge models.train_sr x{scale}")
    digest = sha256_file(out)
    if out.resolve().parent == WEIGHTS_DIR.resolve():
        import fcntl  # the x2 and x4 runs may finish at the same moment

        with open(Path(tempfile.gettempdir()) / "reelforge-manifest.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                manifest = json.loads(MANIFEST.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                manifest = {}
            manifest[out.name] = {"sha256": digest, "arch": "srvgg", "kwargs": kwargs, **info}
            MANIFEST.write_text(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n",
                                encoding="utf-8")
    log.info("exported %s (sha256 %s)", out, digest)
    return digest


@torch.no_grad()
def validate(model: nn.Module, images: list[tuple[np.ndarray, np.ndarray]], scale: int,
             device: torch.device) -> float:
    """Mean Y-PSNR on the held-out training-set images (never Set5/Set14)."""
    model.eval()
    values = []
    for hr, lr in images:
        x = torch.from_numpy(lr).permute(2, 0, 1)[None].float().div(255).to(device)
        y = model(x.contiguous(memory_format=torch.channels_last)).float().clamp(0, 1)
        sr = y.mul(255).round()[0].permute(1, 2, 0).to(torch.uint8).cpu().numpy()
        values.append(psnr(rgb_to_y(sr), rgb_to_y(hr), border=scale))
    model.train()
    return float(np.mean(values))


# --- main -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m models.train_sr", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=int, default=2, choices=sorted(RF_KWARGS))
    p.add_argument("--prepare-from", type=Path, help="copy training/eval images from this folder into .data/ first")
    p.add_argument("--data", type=Path, default=DATA_DIR, help="training image folders (default .data/sr_train)")
    p.add_argument("--eval", type=Path, nargs="*", default=None,
                   help="folders scored at the end (default .data/sr_eval/CSet5 CSet14, else ../shared/data/images/...)")
    p.add_argument("--run-dir", type=Path, default=None, help="checkpoints (default .runs/rf-x{scale})")
    p.add_argument("--out", type=Path, default=None, help="exported weights (default models/weights/rf-x{scale}.safetensors)")
    p.add_argument("--minutes", type=float, default=30.0, help="wall-clock budget of this invocation")
    p.add_argument("--steps", type=int, default=0, help="total steps of the run (0: calibrate from --minutes)")
    p.add_argument("--batch", type=int, default=0, help="patches per step (default 16 on CPU, 64 on CUDA)")
    p.add_argument("--patch", type=int, default=0, help="LR patch size (default 48 for x2, 32 for x4; 64/48 on CUDA)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-6)
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--hr-scales", type=str, default="1.0,0.8,0.6", help="HR downscale factors used as extra data")
    p.add_argument("--val-every-image", type=int, default=20, help="hold out every n-th image of each folder")
    p.add_argument("--val-steps", type=int, default=1000, help="validate every n steps")
    p.add_argument("--ckpt-minutes", type=float, default=3.0, help="checkpoint at least this often")
    p.add_argument("--init", type=Path, help="initialise matching tensors from these weights (e.g. rf-x2 for x4)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda[:N]")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="ignore an existing checkpoint in --run-dir")
    p.add_argument("--no-export", action="store_true", help="do not write weights at the end")
    return p.parse_args(argv)


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda was asked for but CUDA is not available; use --device cpu")
    return dev


def _eval_dirs(args: argparse.Namespace) -> list[Path]:
    if args.eval is not None:
        return list(args.eval)
    for root in (EVAL_DIR, shared_images_dir()):
        dirs = [root / n for n in EVAL_SETS if (root / n).is_dir()]
        if dirs:
            return dirs
    return []


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    started = time.monotonic()
    if args.prepare_from:
        prepare_data(args.prepare_from, args.data)
    device = _device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    scale = args.scale
    batch = args.batch or (64 if cuda else 16)
    patch = args.patch or ({2: 64, 4: 48} if cuda else {2: 48, 4: 32})[scale]
    run_dir = args.run_dir or REPO / ".runs" / f"rf-x{scale}"
    out = args.out or WEIGHTS_DIR / f"rf-x{scale}.safetensors"
    ckpt_path = run_dir / "last.pt"

    train_files, val_files = split_files(args.data, args.val_every_image)
    hr_scales = tuple(float(v) for v in args.hr_scales.split(","))
    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, min(16, os.cpu_count() or 1))) as pool:
        pairs = [pair for chunk in pool.map(lambda f: _pairs_for(f, scale, hr_scales, patch), train_files)
                 for pair in chunk]
        val = [pair for chunk in pool.map(lambda f: _pairs_for(f, scale, (1.0,), 8), val_files) for pair in chunk]
    sampler = PatchSampler(pairs, scale, patch, device, args.seed)
    log.info("data: %d training images -> %d HR/LR pairs (%.1f M LR pixels), %d validation images; %.0fs",
             len(train_files), sampler.count, sampler.pixels / 1e6, len(val), time.monotonic() - t0)

    torch.manual_seed(args.seed)
    model = build_model(scale)
    if args.init and not (ckpt_path.exists() and not args.fresh):
        init_from(model, args.init)
    model = model.to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit memory_format
    ema = EMA(model, args.ema)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.99))
    state = RunState(history=[])
    if ckpt_path.exists() and not args.fresh:
        blob = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(blob["model"])
        ema.shadow = {k: v.to(device) for k, v in blob["ema"].items()}
        opt.load_state_dict(blob["opt"])
        st = blob["state"]
        state = RunState(st["step"], st["total_steps"], st.get("budget_seconds", 0.0), st["train_seconds"],
                         st["best_val"], st["history"])
        sampler.gen.set_state(blob["gen"].cpu())
        torch.set_rng_state(blob["torch_rng"].cpu())
        log.info("resumed %s at step %d/%d (%.1f min trained)", ckpt_path, state.step, state.total_steps,
                 state.train_seconds / 60)
    if args.steps:
        state.total_steps, state.budget_seconds = args.steps, 0.0
    train_model: Any = torch.compile(model) if args.compile else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)

    stop = {"flag": False}

    def _on_signal(signum: int, _frame: Any) -> None:
        log.warning("signal %d: saving a checkpoint and stopping", signum)
        stop["flag"] = True

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _train(args, device, scale, batch, patch, run_dir, out, ckpt_path, sampler, val, model,
                      train_model, ema, opt, state, autocast, stop, started)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _train(args: argparse.Namespace, device: torch.device, scale: int, batch: int, patch: int, run_dir: Path,
           out: Path, ckpt_path: Path, sampler: PatchSampler, val: list[tuple[np.ndarray, np.ndarray]],
           model: nn.Module, train_model: Any, ema: EMA, opt: torch.optim.Optimizer, state: RunState,
           autocast: Any, stop: dict[str, bool], started: float) -> int:
    cuda = device.type == "cuda"

    budget = args.minutes * 60.0
    reserve = 30.0 if cuda else 90.0  # export + final scoring
    warmup = 200
    last_ckpt = time.monotonic()
    if not state.total_steps and not state.budget_seconds:
        # a time-based run: the learning-rate schedule follows the share of the training time
        # spent, so it stays smooth however the speed of a shared machine changes
        overhead = 1.03 + 0.02 * (1000 / args.val_steps)  # validation and checkpoints
        state.budget_seconds = max(30.0, (budget - reserve - (time.monotonic() - started)) / overhead)
        log.info("time-based run: %.1f min of training", state.budget_seconds / 60)
    loss_sum, loss_n = 0.0, 0
    model.train()
    while not stop["flag"]:
        if state.total_steps and state.step >= state.total_steps:
            break
        progress = (state.train_seconds / state.budget_seconds if state.budget_seconds
                    else (state.step - warmup) / max(1, state.total_steps - warmup))
        if state.budget_seconds and progress >= 1.0:
            state.total_steps = state.step
            break
        if time.monotonic() - started > budget - reserve:
            log.info("time budget of this invocation is spent at step %d", state.step)
            if state.budget_seconds and progress >= 0.97:  # the learning rate is at its floor: done
                state.total_steps = state.step
            break
        for group in opt.param_groups:
            group["lr"] = learning_rate(progress, state.step, args.lr, warmup, args.min_lr)
        tick = time.monotonic()
        lr_u8, hr_u8 = sampler.sample(batch)
        x = lr_u8.float().div_(255).contiguous(memory_format=torch.channels_last)
        y = hr_u8.float().div_(255)
        with autocast:
            pred = train_model(x)
        loss = F.l1_loss(pred.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ema.update(model, state.step)
        state.step += 1
        loss_sum += float(loss.detach()) if state.step % 50 == 0 or not cuda else 0.0
        loss_n += 1 if state.step % 50 == 0 or not cuda else 0
        state.train_seconds += time.monotonic() - tick
        if state.step % args.val_steps == 0:
            ema_model = build_model(scale).to(device)
            ema_model.load_state_dict({k: v.to(device) for k, v in ema.shadow.items()})
            value = validate(ema_model, val, scale, device)
            state.best_val = max(state.best_val, value)
            mean_loss = loss_sum / max(1, loss_n)
            state.history = [*(state.history or []), {"step": state.step, "val_psnr_y": round(value, 3),
                                                     "loss": round(mean_loss, 5)}]
            done = (state.train_seconds / state.budget_seconds if state.budget_seconds
                    else state.step / state.total_steps)
            log.info("step %d (%.0f%%)  lr %.2e  L1 %.4f  held-out Y-PSNR %.3f dB  (%.1f min)", state.step,
                     100 * done, opt.param_groups[0]["lr"], mean_loss, value, (time.monotonic() - started) / 60)
            loss_sum, loss_n = 0.0, 0
        if time.monotonic() - last_ckpt > args.ckpt_minutes * 60:
            save_checkpoint(ckpt_path, model, ema, opt, state, sampler, args)
            last_ckpt = time.monotonic()
    save_checkpoint(ckpt_path, model, ema, opt, state, sampler, args)
    log.info("checkpoint %s at step %d", ckpt_path, state.step)
    if not state.total_steps or state.step < state.total_steps:
        log.info("not finished: run the same command again to resume")
        return 0

    final = build_model(scale)
    final.load_state_dict({k: v.cpu() for k, v in ema.shadow.items()})
    final = final.eval().to(device).to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    val_psnr = validate(final, val, scale, device)
    if not args.no_export:
        info = {"steps": state.step, "train_minutes": round(state.train_seconds / 60, 1),
                "device": torch.cuda.get_device_name(device) if cuda else f"cpu ({torch.get_num_threads()} threads)",
                "trained_on": list(TRAIN_SETS), "held_out_val_psnr_y": round(val_psnr, 3),
                "batch": batch, "patch": patch, "date": _dt.date.today().isoformat()}
        export(ema, scale, out, info)
    print(f"rf-x{scale}: {state.step} steps, {state.train_seconds / 60:.1f} min of training, "
          f"held-out Y-PSNR {val_psnr:.3f} dB")
    for folder in _eval_dirs(args):
        score = evaluate(model_upscaler(final, device), list_images(folder), scale, folder.name)
        print(format_score(score))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
