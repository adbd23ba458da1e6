"""IFNet, the flow network of RIFE (Practical-RIFE 4.x, ``IFNet_HDv3``), loading users' weights.

The modules and parameter names are those of the public ``IFNet_HDv3.py`` of Practical-RIFE
(hzwer), so an official ``flownet.pkl`` loads with ``strict=True`` once the ``module.`` prefix
that ``DistributedDataParallel`` adds is stripped:

- ``block{i}.conv0.{0,1}.0.{weight,bias}``: two stride-2 convs (LeakyReLU 0.2 in ``.1``);
- ``block{i}.convblock.{0..7}.{conv.weight,conv.bias,beta}``: eight residual convs;
- ``block{i}.lastconv.0.{weight,bias}``: a stride-2 transposed conv, then a pixel shuffle;
- ``encode.cnn{0..3}.{weight,bias}``: the feature head of v4.13 and later.

One class covers the 4.x family; the versions differ in numbers that the weights themselves
reveal (block widths, head width, block-to-block features), plus one behaviour that they do not
(v4.0-4.6 refine the fusion mask additively, later versions replace it), which
:func:`config_from_state_dict` infers from the presence of the head. Layouts checked against
the public sources: 4.6, 4.18, 4.22, 4.25 and 4.26 (:data:`PRESETS`).

Nothing is downloaded: :func:`load_rife` reads a file the user points at, records its sha256 and
checks it when one is given. ``.pkl``/``.pth``/``.pt`` files are read with
``torch.load(weights_only=True)``, so no code in a weight file ever runs.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from core.errors import ModelError
from models.flow_utils import torch_warp
from models.weights_io import sha256_file

log = logging.getLogger(__name__)

RIFE_LICENCE = "MIT (Practical-RIFE / ECCV2022-RIFE, hzwer); the weights carry their own terms"
# keys of training-only modules that some released checkpoints still hold; they are not part of
# the inference network and are dropped (and logged) before the strict load
TRAINING_ONLY_PREFIXES = ("teacher.", "caltime.", "contextnet.", "unet.")
WEIGHT_SUFFIXES = (".pkl", ".pth", ".pt", ".ckpt", ".safetensors")


@dataclass(frozen=True, slots=True)
class IFNetConfig:
    """The numbers that tell RIFE 4.x versions apart."""

    block_channels: tuple[int, ...]  # width ``c`` of each IFBlock, coarse to fine
    head_hidden: int = 0  # width of the feature head; 0 = no head (v4.0-4.6)
    head_out: int = 0  # feature channels per image from the head
    feat_channels: int = 0  # features passed from block to block (v4.21 and later: 8)
    mask_residual: bool = False  # v4.0-4.6: the mask is refined by adding; later: replaced
    version: str = ""  # informative only

    def __post_init__(self) -> None:
        if not self.block_channels or any(c < 2 or c % 2 for c in self.block_channels):
            raise ValueError(f"block_channels must be even widths, got {self.block_channels}")
        if (self.head_hidden == 0) != (self.head_out == 0):
            raise ValueError("head_hidden and head_out are both 0 (no head) or both positive")

    @property
    def blocks(self) -> int:
        return len(self.block_channels)

    @property
    def out_channels(self) -> int:
        """Channels after the last conv's pixel shuffle: flow 4 + mask 1 + features (or 1 unused)."""
        return 5 + self.feat_channels if self.feat_channels else 6

    def in_planes(self, index: int) -> int:
        first = 3 + 3 + 2 * self.head_out + 1  # img0, img1, two feature maps, timestep
        if index == 0:
            return first
        return first + 1 + self.feat_channels + 4  # + mask, features, flow

    @property
    def modulo(self) -> int:
        """Input sides must be multiples of this (coarsest scale x the two stride-2 convs)."""
        return 2 ** (self.blocks - 1) * 4

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["block_channels"] = list(self.block_channels)
        return d


PRESETS: dict[str, IFNetConfig] = {
    "4.6": IFNetConfig((192, 128, 96, 64), mask_residual=True, version="4.6"),
    "4.18": IFNetConfig((192, 128, 96, 64), head_hidden=32, head_out=8, version="4.18"),
    "4.22": IFNetConfig((256, 192, 96, 48), head_hidden=32, head_out=8, feat_channels=8, version="4.22"),
    "4.25": IFNetConfig((192, 128, 96, 64, 32), head_hidden=16, head_out=4, feat_channels=8, version="4.25"),
    "4.26": IFNetConfig((192, 128, 96, 64, 32), head_hidden=16, head_out=4, feat_channels=8, version="4.26"),
}


def _conv(in_planes: int, out_planes: int, kernel_size: int = 3, stride: int = 1, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_planes, out_planes, kernel_size, stride, padding, bias=True),
                         nn.LeakyReLU(0.2, True))


class Head(nn.Module):
    """Per-image feature encoder (v4.13+): 3 convs at half size, a transposed conv back up."""

    def __init__(self, hidden: int, out: int) -> None:
        super().__init__()
        self.cnn0 = nn.Conv2d(3, hidden, 3, 2, 1)
        self.cnn1 = nn.Conv2d(hidden, hidden, 3, 1, 1)
        self.cnn2 = nn.Conv2d(hidden, hidden, 3, 1, 1)
        self.cnn3 = nn.ConvTranspose2d(hidden, out, 4, 2, 1)
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.cnn0(x))
        x = self.relu(self.cnn1(x))
        x = self.relu(self.cnn2(x))
        return self.cnn3(x)


class ResConv(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1)
        self.beta = nn.Parameter(torch.ones((1, c, 1, 1)))
        self.relu = nn.LeakyReLU(0.2, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x) * self.beta + x)


class IFBlock(nn.Module):
    """One scale: downsample by ``scale``, predict a flow/mask update at 1/4 of that, upsample."""

    def __init__(self, in_planes: int, c: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Sequential(_conv(in_planes, c // 2, 3, 2, 1), _conv(c // 2, c, 3, 2, 1))
        self.convblock = nn.Sequential(*[ResConv(c) for _ in range(8)])
        self.lastconv = nn.Sequential(nn.ConvTranspose2d(c, 4 * out_channels, 4, 2, 1), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor, flow: torch.Tensor | None, scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.interpolate(x, scale_factor=1.0 / scale, mode="bilinear", align_corners=False)
        if flow is not None:
            flow = F.interpolate(flow, scale_factor=1.0 / scale, mode="bilinear", align_corners=False) / scale
            x = torch.cat((x, flow), 1)
        feat = self.conv0(x)
        feat = self.convblock(feat)
        tmp = self.lastconv(feat)
        tmp = F.interpolate(tmp, scale_factor=scale, mode="bilinear", align_corners=False)
        return tmp[:, :4] * scale, tmp[:, 4:5], tmp[:, 5:]


class IFNet(nn.Module):
    """RIFE's coarse-to-fine intermediate-flow network.

    ``forward(img0, img1, timestep, scale)``: ``img0``/``img1`` are ``N x 3 x H x W`` in [0, 1]
    with ``H`` and ``W`` multiples of :attr:`modulo` ``/ scale`` (see :func:`pad_to`), and
    ``timestep`` is ``N x 1 x H x W`` (or ``N``, broadcast) in (0, 1). Returns the frame at
    ``timestep``: both inputs warped by the estimated flows, fused by the sigmoid mask.
    ``scale`` < 1 estimates the flow at a lower resolution (0.5 for 4K, as upstream).
    """

    def __init__(self, config: IFNetConfig) -> None:
        super().__init__()
        self.config = config
        for i, c in enumerate(config.block_channels):
            setattr(self, f"block{i}", IFBlock(config.in_planes(i), c, config.out_channels))
        self.encode = Head(config.head_hidden, config.head_out) if config.head_out else None

    @property
    def modulo(self) -> int:
        return self.config.modulo

    def scale_list(self, scale: float = 1.0) -> list[float]:
        n = self.config.blocks
        return [2 ** (n - 1 - i) / scale for i in range(n)]

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, timestep: torch.Tensor | float,
                scale: float = 1.0) -> torch.Tensor:
        n, _, h, w = img0.shape
        if not torch.is_tensor(timestep):
            timestep = torch.full((n, 1, h, w), float(timestep), device=img0.device, dtype=img0.dtype)
        elif timestep.ndim == 1:
            timestep = timestep.to(img0.dtype).view(n, 1, 1, 1).expand(n, 1, h, w)
        cfg = self.config
        f0 = f1 = None
        if self.encode is not None:
            f0 = self.encode(img0)
            f1 = self.encode(img1)
        warped0, warped1 = img0, img1
        flow: torch.Tensor | None = None
        mask: torch.Tensor | None = None
        feat: torch.Tensor | None = None
        for i, s in enumerate(self.scale_list(scale)):
            block: IFBlock = getattr(self, f"block{i}")
            if flow is None:
                parts = [img0, img1] + ([f0, f1] if f0 is not None else []) + [timestep]
                flow, mask, feat = block(torch.cat(parts, 1), None, s)  # type: ignore[arg-type]
            else:
                assert mask is not None and feat is not None
                parts = [warped0, warped1]
                if f0 is not None and f1 is not None:
                    parts += [torch_warp(f0, flow[:, :2]), torch_warp(f1, flow[:, 2:4])]
                parts += [timestep, mask]
                if cfg.feat_channels:
                    parts.append(feat)
                fd, m0, feat = block(torch.cat(parts, 1), flow, s)
                mask = mask + m0 if cfg.mask_residual else m0
                flow = flow + fd
            warped0 = torch_warp(img0, flow[:, :2])
            warped1 = torch_warp(img1, flow[:, 2:4])
        assert mask is not None
        m = torch.sigmoid(mask)
        return warped0 * m + warped1 * (1 - m)


def pad_to(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad ``N x C x H x W`` on the right/bottom to multiples of ``multiple``; returns (padded, (h, w))."""
    h, w = x.shape[-2:]
    ph = math.ceil(h / multiple) * multiple
    pw = math.ceil(w / multiple) * multiple
    if (ph, pw) == (h, w):
        return x, (h, w)
    return F.pad(x, (0, pw - w, 0, ph - h)), (h, w)


# --------------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------------
def clean_state_dict(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Strip the DDP ``module.`` prefix and drop the training-only modules (logged)."""
    out: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    for key, value in state.items():
        k = str(key)
        if k.startswith("module."):
            k = k[len("module."):]
        if k.startswith(TRAINING_ONLY_PREFIXES):
            dropped.append(k)
            continue
        if not isinstance(value, torch.Tensor):
            raise ModelError(f"entry {key!r} of the state dict is a {type(value).__name__}, not a tensor")
        out[k] = value
    if dropped:
        log.info("RIFE weights: dropped %d training-only tensors (%s...)", len(dropped), dropped[0])
    return out


def config_from_state_dict(state: Mapping[str, torch.Tensor]) -> IFNetConfig:
    """Read the architecture off the tensor shapes of a (cleaned) IFNet state dict."""
    widths: list[int] = []
    while f"block{len(widths)}.conv0.1.0.weight" in state:
        widths.append(int(state[f"block{len(widths)}.conv0.1.0.weight"].shape[0]))
    if not widths:
        sample = ", ".join(sorted(state)[:5])
        raise ModelError(f"these weights are not an IFNet (RIFE 4.x): no block0.conv0.1.0.weight; keys start {sample}",
                         hint=f"use a Practical-RIFE 4.x flownet.pkl; checked layouts: {', '.join(PRESETS)}")
    head_hidden = head_out = 0
    if "encode.cnn0.weight" in state:
        head_hidden = int(state["encode.cnn0.weight"].shape[0])
        head_out = int(state["encode.cnn3.weight"].shape[1])  # ConvTranspose2d: (in, out, k, k)
    elif any(k.startswith("encode.") for k in state):
        raise ModelError("these RIFE weights use an early feature head (v4.7-4.12, 'encode.0.weight')",
                         hint=f"use a 4.6 or a 4.13+ model; checked layouts: {', '.join(PRESETS)}")
    feat = 0
    if len(widths) > 1:
        in1 = int(state["block1.conv0.0.0.weight"].shape[1])
        feat = in1 - (3 + 3 + 2 * head_out + 1 + 1 + 4)
        if feat < 0:
            raise ModelError(f"block1 takes {in1} input channels, which no RIFE 4.x layout has")
    cfg = IFNetConfig(tuple(widths), head_hidden, head_out, feat, mask_residual=head_out == 0)
    matches = [name for name, preset in PRESETS.items()
               if preset.block_channels == cfg.block_channels
               and (preset.head_hidden, preset.head_out, preset.feat_channels) == (head_hidden, head_out, feat)]
    if matches:  # versions with one layout (4.25 and 4.26) are named together
        preset = PRESETS[matches[0]]
        return IFNetConfig(cfg.block_channels, head_hidden, head_out, feat, preset.mask_residual,
                           version="/".join(matches))
    log.warning("RIFE weights with an unlisted layout %s: built from the tensor shapes (mask %s)",
                cfg.as_dict(), "added" if cfg.mask_residual else "replaced")
    return cfg


def read_rife_state(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Tensors of a RIFE weight file (``flownet.pkl``, ``.pth``, ``.pt``, ``.safetensors``), cleaned."""
    p = Path(path).expanduser()
    suffix = p.suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise ModelError(f"{str(p)!r}: unknown weight file type {suffix!r}", hint=f"use one of {', '.join(WEIGHT_SUFFIXES)}")
    try:
        if suffix == ".safetensors":
            from models.weights_io import read_state_dict

            obj: Any = read_state_dict(p)
        else:
            obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except ModelError:
        raise
    except Exception as e:  # pickle/zip/safetensors errors have many types
        raise ModelError(f"cannot read RIFE weights {str(p)!r}: {e}",
                         hint="the file is damaged or not a weight file; fetch it again") from e
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "flownet"):
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                obj = inner
                break
    if not isinstance(obj, Mapping):
        raise ModelError(f"{str(p)!r} does not hold a state dict (got {type(obj).__name__})")
    return clean_state_dict(obj)


def build_ifnet(config: IFNetConfig | str) -> IFNet:
    """A randomly initialised IFNet for a config or a preset name (``"4.25"``)."""
    if isinstance(config, str):
        if config not in PRESETS:
            raise ModelError(f"unknown RIFE version {config!r}", hint=f"known: {', '.join(PRESETS)}")
        config = PRESETS[config]
    return IFNet(config)


def load_rife(path: str | os.PathLike[str], *, sha256: str | None = None, device: str | torch.device = "cpu",
              dtype: torch.dtype | None = None, version: str | None = None, channels_last: bool = False) -> IFNet:
    """Build an IFNet from a user's weight file, checked and loaded with ``strict=True``.

    ``version`` forces a preset (else the layout is read off the weights). ``sha256`` is the
    expected digest; without it the file loads with a WARNING. The module carries
    ``weights_sha256`` and ``weights_path``, in eval mode with gradients off.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelError(f"RIFE weights {str(p)!r} do not exist",
                         hint="pass the path of a Practical-RIFE flownet.pkl (ReelForge never downloads weights)")
    digest = sha256_file(p)
    if sha256 is None:
        log.warning("RIFE weights %s are not verified: no sha256 was given (got %s)", p, digest)
    elif digest != sha256.lower():
        raise ModelError(f"RIFE weights {str(p)!r} have sha256 {digest}, expected {sha256}",
                         hint="fetch the file again or pass the right sha256")
    state = read_rife_state(p)
    config = build_ifnet(version).config if version else config_from_state_dict(state)
    model = IFNet(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ModelError(f"RIFE weights {str(p)!r} do not fit IFNet {config.as_dict()}: {e}",
                         hint="the file is for another RIFE version or another network") from e
    model = model.to(device=torch.device(device) if isinstance(device, str) else device)
    if dtype is not None:
        model = model.to(dtype=dtype)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    model.eval().requires_grad_(False)
    model.weights_sha256 = digest  # type: ignore[assignment]
    model.weights_path = str(p)  # type: ignore[assignment]
    log.info("loaded RIFE %s (%d blocks) from %s (sha256 %s...)", config.version or "4.x", config.blocks, p,
             digest[:12])
    return model


def save_rife(model: IFNet, path: str | os.PathLike[str], *, ddp_prefix: bool = False) -> Path:
    """Write the state dict the way Practical-RIFE does (``torch.save``), or as safetensors by suffix."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    state = {(f"module.{k}" if ddp_prefix else k): v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if p.suffix.lower() == ".safetensors":
        from models.weights_io import save_weights

        return save_weights(state, p, arch="rife-ifnet", kwargs=model.config.as_dict(), source="reelforge")
    torch.save(state, str(p))
    return p
