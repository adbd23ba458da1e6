"""One device resolver and the dtype policy that follows the device.

``resolve_device("auto")`` picks cuda, then mps, then cpu and logs the choice; a device
asked for by name that is missing raises :class:`DeviceError` instead of falling back.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import DeviceError, InputError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

_KNOWN = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What ran where: kept in usage records and reports."""

    type: str  # cpu | cuda | mps
    index: int | None
    name: str  # human readable, e.g. "NVIDIA H100 80GB HBM3" or "CPU (2 threads)"

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"


def _torch():  # type: ignore[no-untyped-def]
    import torch

    return torch


def _cuda_available() -> bool:
    torch = _torch()
    return bool(torch.cuda.is_available())


def _mps_available() -> bool:
    torch = _torch()
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(requested: str | None = "auto") -> torch.device:
    """Return the torch device to use for ``requested`` (``auto``, ``cpu``, ``cuda[:N]``, ``mps``)."""
    torch = _torch()
    spec = (requested or "auto").strip().lower()
    kind, _, index_text = spec.partition(":")
    if kind not in _KNOWN:
        raise InputError(
            f"unknown device {requested!r}",
            hint="use one of auto, cpu, cuda, cuda:N, mps",
        )
    if kind == "auto":
        if _cuda_available():
            dev = torch.device("cuda", torch.cuda.current_device())
            log.info("device auto -> %s (%s)", dev, torch.cuda.get_device_name(dev))
        elif _mps_available():
            dev = torch.device("mps")
            log.info("device auto -> mps")
        else:
            dev = torch.device("cpu")
            log.info("device auto -> cpu (%d threads); no CUDA or MPS device found", torch.get_num_threads())
        return dev
    if kind == "cuda":
        if not _cuda_available():
            raise DeviceError(
                f"device {requested!r} was requested but CUDA is not available",
                hint="install a CUDA build of torch, or pass --device cpu / auto",
            )
        index = int(index_text) if index_text else 0
        count = torch.cuda.device_count()
        if index >= count:
            raise DeviceError(
                f"device {requested!r} was requested but only {count} CUDA device(s) exist",
                hint=f"use cuda:0 .. cuda:{count - 1}",
            )
        return torch.device("cuda", index)
    if kind == "mps":
        if not _mps_available():
            raise DeviceError(f"device {requested!r} was requested but MPS is not available", hint="use --device cpu")
        return torch.device("mps")
    return torch.device("cpu")


def describe_device(device: torch.device) -> DeviceInfo:
    torch = _torch()
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return DeviceInfo("cuda", index, torch.cuda.get_device_name(index))
    if device.type == "mps":
        return DeviceInfo("mps", None, "Apple MPS")
    return DeviceInfo("cpu", None, f"CPU ({torch.get_num_threads()} threads, {os.cpu_count()} cores)")


def default_dtype(device: torch.device, *, prefer_bf16: bool = False) -> torch.dtype:
    """dtype policy: fp16 (or bf16 when asked and supported) on CUDA, fp16 on MPS, fp32 on CPU.

    bf16 on the CPU is an explicit option (see ``precision``) whose error the caller measures.
    """
    torch = _torch()
    if device.type == "cuda":
        if prefer_bf16 and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def dtype_from_name(name: str, device: torch.device) -> torch.dtype:
    """Parse ``auto|fp32|fp16|bf16`` for ``device``; fp16 on the CPU is refused (too slow/inexact)."""
    torch = _torch()
    key = name.strip().lower()
    if key == "auto":
        return default_dtype(device)
    table = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16,
             "float16": torch.float16, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
    if key not in table:
        raise InputError(f"unknown precision {name!r}", hint="use auto, fp32, fp16 or bf16")
    dtype = table[key]
    if device.type == "cpu" and dtype is torch.float16:
        raise InputError("precision 'fp16' is not supported on the CPU", hint="use fp32 or bf16 on the CPU")
    return dtype
