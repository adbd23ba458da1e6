"""GGUF files without llama.cpp: read a model's own metadata, and write a tiny probe model.

:func:`read_gguf_info` reads the key/value header of a GGUF file (versions 2 and 3) in pure
Python: the licence (``general.license``), the publisher (``general.organization``, the author,
or the owner of the source repository), the trained context length, the parameter count, the
chat template. Nothing here loads weights, so it is safe to call before the runtime is trusted.

:func:`write_probe_model` writes a valid ~0.2 MB Llama model (one layer, byte-level vocabulary,
Q8_0 weights so the CPU's quantised matrix kernels run, as they do for a real model). The
runtime probe (:mod:`agents.script.llm.llamacpp`) loads and runs it in a child process to find
out whether this build of llama.cpp works on this CPU at all, with no model configured.
"""

from __future__ import annotations

import mmap
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ModelError

MAGIC = b"GGUF"
ALIGNMENT = 32

# value types of the GGUF key/value section
_UINT8, _INT8, _UINT16, _INT16, _UINT32, _INT32, _FLOAT32, _BOOL, _STRING, _ARRAY, _UINT64, _INT64, _FLOAT64 = range(13)
_SCALAR = {_UINT8: "<B", _INT8: "<b", _UINT16: "<H", _INT16: "<h", _UINT32: "<I", _INT32: "<i", _FLOAT32: "<f",
           _BOOL: "<?", _UINT64: "<Q", _INT64: "<q", _FLOAT64: "<d"}
# ggml tensor types used by the probe model
_F32, _Q8_0 = 0, 8

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMBT])\s*$", re.I)
_SCALE = {"K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}


@dataclass(slots=True)
class GGUFInfo:
    """What a GGUF file says about itself (empty strings where a key is absent)."""

    path: Path
    version: int
    architecture: str = ""
    name: str = ""
    licence: str = ""  # general.license, e.g. "apache-2.0"
    publisher: str = ""  # general.organization, else the author, else the source repository's owner
    size_label: str = ""  # general.size_label, e.g. "135M"
    parameters: int = 0  # from the tensor shapes (exact), 0 when the header could not be read that far
    context_length: int = 0  # the context the model was trained for
    file_type: int = -1
    chat_template: bool = False
    file_bytes: int = 0
    keys: dict[str, Any] = field(default_factory=dict)  # every scalar and string value (arrays left out)


class _Reader:
    def __init__(self, buf: mmap.mmap | bytes, path: Path) -> None:
        self.buf = buf
        self.pos = 0
        self.path = path

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise ModelError(f"{self.path} is cut short: the GGUF header ends early",
                             hint="the download or copy is incomplete; fetch the file again")
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self) -> str:
        n = self.take("<Q")
        if n > 1 << 26 or self.pos + n > len(self.buf):
            raise ModelError(f"{self.path}: a GGUF string of {n} bytes runs past the end of the file",
                             hint="the file is damaged or not a GGUF model")
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return raw.decode("utf-8", "replace")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALAR:
            return self.take(_SCALAR[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            itype = self.take("<I")
            n = self.take("<Q")
            if itype in _SCALAR:  # skipped: vocabularies and scores are large and not needed here
                self.pos += n * struct.calcsize(_SCALAR[itype])
                return None
            if itype == _STRING:
                for _ in range(n):
                    length = self.take("<Q")
                    self.pos += length
                return None
            raise ModelError(f"{self.path}: unsupported GGUF array of type {itype}")
        raise ModelError(f"{self.path}: unknown GGUF value type {vtype}", hint="the file is damaged or not a GGUF model")


def read_gguf_info(path: str | Path) -> GGUFInfo:
    """Read the metadata of a GGUF model; :class:`ModelError` (with a fix) for a file that is not one."""
    p = Path(path).expanduser()
    try:
        with p.open("rb") as f:
            size = p.stat().st_size
            if size < 24:
                raise ModelError(f"{p} is {size} bytes: too short to be a GGUF model",
                                 hint="give the path of a complete .gguf file")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _parse(_Reader(buf, p), size)
    except OSError as e:
        raise ModelError(f"cannot read {p}: {e.strerror or e}", hint="check the path and its permissions") from e


def _parse(r: _Reader, size: int) -> GGUFInfo:
    if bytes(r.buf[:4]) != MAGIC:
        raise ModelError(f"{r.path} is not a GGUF file (it starts with {bytes(r.buf[:4])!r}, not b'GGUF')",
                         hint="convert the model to GGUF (llama.cpp's convert_hf_to_gguf.py) or give a transformers folder")
    r.pos = 4
    version = r.take("<I")
    if version not in (2, 3):
        raise ModelError(f"{r.path} is GGUF version {version}; versions 2 and 3 are supported",
                         hint="convert it again with a current llama.cpp")
    n_tensors = r.take("<Q")
    n_kv = r.take("<Q")
    keys: dict[str, Any] = {}
    for _ in range(n_kv):
        key = r.string()
        value = r.value(r.take("<I"))
        if value is not None:
            keys[key] = value
    params = 0
    for _ in range(n_tensors):
        r.string()  # name
        dims = [r.take("<Q") for _ in range(r.take("<I"))]
        r.take("<I")  # type
        r.take("<Q")  # offset
        count = 1
        for d in dims:
            count *= d
        params += count
    arch = str(keys.get("general.architecture", ""))
    info = GGUFInfo(path=r.path, version=version, architecture=arch, keys=keys, file_bytes=size,
                    name=str(keys.get("general.name", "")), licence=str(keys.get("general.license", "")),
                    size_label=str(keys.get("general.size_label", "")), parameters=params,
                    context_length=int(keys.get(f"{arch}.context_length", 0) or 0),
                    file_type=int(keys.get("general.file_type", -1)),
                    chat_template="tokenizer.chat_template" in keys)
    info.publisher = _publisher(keys)
    if not info.parameters:
        info.parameters = parameters_from_label(info.size_label)
    return info


def _publisher(keys: dict[str, Any]) -> str:
    for key in ("general.organization", "general.author", "general.base_model.0.organization"):
        if str(keys.get(key, "")).strip():
            return str(keys[key]).strip()
    for key in ("general.source.huggingface.repository", "general.base_model.0.repo_url", "general.source.url"):
        value = str(keys.get(key, "")).strip().rstrip("/")
        if "/" in value:
            parts = [x for x in value.split("/") if x]
            if len(parts) >= 2:
                return parts[-2]
    return ""


def parameters_from_label(label: str) -> int:
    """``"135M"`` -> 135_000_000; 0 for a label that is not a size (``"8x7B"`` and the like)."""
    m = _SIZE.match(label or "")
    return int(float(m.group(1)) * _SCALE[m.group(2).upper()]) if m else 0


# --- the probe model --------------------------------------------------------------------------


def _kv(key: str, vtype: int, value: Any) -> bytes:
    out = _str(key) + struct.pack("<I", vtype)
    if vtype == _STRING:
        return out + _str(value)
    if vtype == _ARRAY:
        itype, items = value
        body = struct.pack("<IQ", itype, len(items))
        if itype == _STRING:
            return out + body + b"".join(_str(x) for x in items)
        return out + body + b"".join(struct.pack(_SCALAR[itype], x) for x in items)
    return out + struct.pack(_SCALAR[vtype], value)


def _str(s: str) -> bytes:
    raw = s.encode("utf-8")
    return struct.pack("<Q", len(raw)) + raw


def _q8_0(values: list[float]) -> bytes:
    """ggml's Q8_0: blocks of 32 weights as one float16 scale and 32 signed bytes."""
    out = bytearray()
    for i in range(0, len(values), 32):
        block = values[i:i + 32]
        amax = max(abs(v) for v in block)
        d = amax / 127 if amax else 0.0
        out += struct.pack("<e", d)
        out += bytes((round(v / d) if d else 0) & 0xFF for v in block)
    return bytes(out)


def write_probe_model(path: str | Path, *, n_embd: int = 64, n_ff: int = 128, seed: int = 7) -> Path:
    """Write a one-layer Llama GGUF with a byte vocabulary and deterministic pseudo-random weights."""
    import random

    rng = random.Random(seed)
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256  # unknown, control, control, byte
    n_vocab = len(tokens)
    heads = 2
    kv = [
        _kv("general.architecture", _STRING, "llama"),
        _kv("general.name", _STRING, "reelforge-probe"),
        _kv("general.license", _STRING, "apache-2.0"),
        _kv("general.alignment", _UINT32, ALIGNMENT),
        _kv("llama.context_length", _UINT32, 256),
        _kv("llama.embedding_length", _UINT32, n_embd),
        _kv("llama.block_count", _UINT32, 1),
        _kv("llama.feed_forward_length", _UINT32, n_ff),
        _kv("llama.attention.head_count", _UINT32, heads),
        _kv("llama.attention.head_count_kv", _UINT32, heads),
        _kv("llama.attention.layer_norm_rms_epsilon", _FLOAT32, 1e-5),
        _kv("llama.rope.dimension_count", _UINT32, n_embd // heads),
        _kv("tokenizer.ggml.model", _STRING, "llama"),
        _kv("tokenizer.ggml.tokens", _ARRAY, (_STRING, tokens)),
        _kv("tokenizer.ggml.scores", _ARRAY, (_FLOAT32, [0.0] * n_vocab)),
        _kv("tokenizer.ggml.token_type", _ARRAY, (_INT32, types)),
        _kv("tokenizer.ggml.unknown_token_id", _UINT32, 0),
        _kv("tokenizer.ggml.bos_token_id", _UINT32, 1),
        _kv("tokenizer.ggml.eos_token_id", _UINT32, 2),
    ]

    def rand(n: int, scale: float = 0.5) -> list[float]:
        return [rng.uniform(-scale, scale) for _ in range(n)]

    # (name, ggml dims with the fastest-varying first, type, data)
    tensors: list[tuple[str, list[int], int, bytes]] = [
        ("token_embd.weight", [n_embd, n_vocab], _Q8_0, _q8_0(rand(n_embd * n_vocab))),
        ("output_norm.weight", [n_embd], _F32, struct.pack(f"<{n_embd}f", *([1.0] * n_embd))),
        ("output.weight", [n_embd, n_vocab], _Q8_0, _q8_0(rand(n_embd * n_vocab))),
        ("blk.0.attn_norm.weight", [n_embd], _F32, struct.pack(f"<{n_embd}f", *([1.0] * n_embd))),
        ("blk.0.ffn_norm.weight", [n_embd], _F32, struct.pack(f"<{n_embd}f", *([1.0] * n_embd))),
    ]
    for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
        tensors.append((f"blk.0.{name}.weight", [n_embd, n_embd], _Q8_0, _q8_0(rand(n_embd * n_embd))))
    tensors.append(("blk.0.ffn_gate.weight", [n_embd, n_ff], _Q8_0, _q8_0(rand(n_embd * n_ff))))
    tensors.append(("blk.0.ffn_up.weight", [n_embd, n_ff], _Q8_0, _q8_0(rand(n_embd * n_ff))))
    tensors.append(("blk.0.ffn_down.weight", [n_ff, n_embd], _Q8_0, _q8_0(rand(n_ff * n_embd))))

    infos = b""
    offset = 0
    for name, dims, ttype, data in tensors:
        infos += _str(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        infos += struct.pack("<IQ", ttype, offset)
        offset += len(data) + (-len(data)) % ALIGNMENT
    head = MAGIC + struct.pack("<IQQ", 3, len(tensors), len(kv)) + b"".join(kv) + infos
    head += b"\0" * ((-len(head)) % ALIGNMENT)
    body = b"".join(data + b"\0" * ((-len(data)) % ALIGNMENT) for _n, _d, _t, data in tensors)
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_bytes(head + body)
    tmp.replace(p)
    return p
