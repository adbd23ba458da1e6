"""Frames to and from torch tensors, and batches of decoded frames on a background thread."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from core.media.decode import Frame, iter_frames


def frames_to_tensor(images: Sequence[np.ndarray], device: Any = "cpu", dtype: Any = None,
                     channels_last: bool = True) -> Any:
    """Stack RGB uint8 frames into an ``N x 3 x H x W`` float tensor in [0, 1] on ``device``.

    The uint8 copy goes to the device first (4x less traffic than float), then converts there.
    """
    import torch

    batch = torch.from_numpy(np.stack(images)).to(device, non_blocking=True)
    batch = batch.permute(0, 3, 1, 2).to(dtype or torch.float32).div_(255.0)
    return batch.contiguous(memory_format=torch.channels_last) if channels_last else batch.contiguous()


def tensor_to_frames(batch: Any) -> list[np.ndarray]:
    """``N x 3 x H x W`` float tensor in [0, 1] -> RGB uint8 frames on the host (rounded, clamped)."""
    out = batch.detach().clamp(0, 1).mul(255.0).round().to(dtype=__import__("torch").uint8)
    arr = out.permute(0, 2, 3, 1).contiguous().cpu().numpy()
    return [arr[i] for i in range(arr.shape[0])]


def iter_tensors(path: str | os.PathLike[str], batch: int = 4, *, device: Any = "cpu", dtype: Any = None,
                 size: tuple[int, int] | None = None, prefetch: int = 8) -> Iterator[tuple[list[int], Any]]:
    """Decode on a background thread and yield ``(frame indices, N x 3 x H x W tensor)`` batches."""
    from core.streams import Prefetch

    frames = Prefetch(lambda: iter_frames(path, size=size), maxsize=prefetch, name="decode")
    for group in iter_batches(frames, batch):
        yield [f.index for f in group], frames_to_tensor([f.image for f in group], device, dtype)


def iter_batches(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    for fr in frames:
        batch.append(fr)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
