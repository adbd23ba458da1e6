"""Reading and writing weight files: safetensors (ours) and the official PyTorch ``.pth``.

Plain torch + safetensors only, so the training script can use it on a bare GPU machine.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.errors import ModelError
from models.rrdbnet import RRDBNet
from models.srvgg import SRVGGNetCompact

ARCHS: dict[str, type[nn.Module]] = {"srvgg": SRVGGNetCompact, "rrdbnet": RRDBNet}
METADATA_KEY = "reelforge"
_CHUNK = 1 << 20


def build_arch(arch: str, kwargs: Mapping[str, Any]) -> nn.Module:
    """Instantiate an architecture by its registry name (``srvgg`` or ``rrdbnet``)."""
    cls = ARCHS.get(arch)
    if cls is None:
        raise ModelError(f"unknown architecture {arch!r}", hint=f"use one of {', '.join(sorted(ARCHS))}")
    try:
        return cls(**dict(kwargs))
    except (TypeError, ValueError) as e:
        raise ModelError(f"bad settings {dict(kwargs)!r} for architecture {arch!r}: {e}") from e


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def weights_metadata(arch: str, kwargs: Mapping[str, Any], *, source: str) -> dict[str, str]:
    """safetensors metadata naming the architecture.

    One key only: safetensors writes several metadata keys in a random order, which would
    make the file's sha256 change from one conversion to the next.
    """
    payload = {"arch": arch, "kwargs": dict(kwargs), "source": source}
    return {METADATA_KEY: json.dumps(payload, sort_keys=True, ensure_ascii=False)}


_ST_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
              torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8"}


def _write_safetensors(tensors: Mapping[str, torch.Tensor], path: Path, metadata: Mapping[str, str]) -> None:
    """The safetensors format written by hand (8-byte header length, JSON header, raw data).

    Used when the ``safetensors`` package is missing (bare GPU machines); the files it writes
    are read by ``safetensors`` like any other.
    """
    header: dict[str, Any] = {"__metadata__": dict(metadata)}
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        data = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": _ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for chunk in chunks:
            f.write(chunk)


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file without the ``safetensors`` package."""
    by_name = {v: k for k, v in _ST_DTYPES.items()}
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + size])
    base = 8 + size
    meta = header.pop("__metadata__", None) or {}
    out = {}
    for name, info in header.items():
        start, end = info["data_offsets"]
        buf = bytearray(raw[base + start: base + end])
        dtype = by_name[info["dtype"]]
        out[name] = torch.frombuffer(buf, dtype=torch.uint8).view(dtype).reshape(info["shape"]) if buf else \
            torch.empty(info["shape"], dtype=dtype)
    return out, meta


def save_weights(state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike[str], *,
                 arch: str, kwargs: Mapping[str, Any], source: str,
                 dtype: torch.dtype = torch.float32) -> Path:
    """Write ``state_dict`` as safetensors (atomically) with the architecture in the metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", dtype).contiguous() for k, v in state_dict.items()}
    metadata = weights_metadata(arch, kwargs, source=source)
    tmp = path.with_name(path.name + ".part")
    try:
        from safetensors.torch import save_file
    except ImportError:
        _write_safetensors(tensors, tmp, metadata)
    else:
        save_file(tensors, str(tmp), metadata=metadata)
    os.chmod(tmp, 0o644)  # safetensors creates owner-only files; weights are not secrets
    tmp.replace(path)
    return path


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``{"arch", "kwargs", "source"}`` block of one of our safetensors files, if any."""
    try:
        from safetensors import safe_open
    except ImportError:
        meta = _read_safetensors(Path(path))[1]
    else:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    text = meta.get(METADATA_KEY)
    if not text:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelError(f"{str(path)!r}: unreadable metadata {text[:80]!r}") from e
    return data if isinstance(data, dict) else None


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` file or an official ``.pth`` (``params_ema`` preferred).

    ``.pth`` files are read with ``weights_only=True``: no code in a weight file ever runs.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".safetensors":
            try:
                from safetensors.torch import load_file
            except ImportError:
                return _read_safetensors(path)[0]
            return load_file(str(path))
        if suffix in {".pth", ".pt", ".ckpt", ".bin"}:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        else:
            raise ModelError(f"{str(path)!r}: unknown weight file type {suffix!r}",
                             hint="use a .safetensors or .pth file")
    except ModelError:
        raise
    except Exception as e:  # safetensors / pickle errors have many types
        raise ModelError(f"cannot read weights {str(path)!r}: {e}",
                         hint="the file is damaged or not a weight file; fetch it again") from e
    if isinstance(obj, Mapping):
        for key in ("params_ema", "params", "state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ModelError(f"{str(path)!r} does not hold a state dict of tensors")
    return {str(k): v for k, v in obj.items()}
