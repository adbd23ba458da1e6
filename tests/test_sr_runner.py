from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from core.errors import InputError
from pipelines.sr import (
    FrameUpscaler,
    SRRunner,
    TileSpec,
    auto_tile,
    mean_abs_error_255,
    tile_windows,
)


class TinySR(nn.Module):
    """6 3x3 convs (receptive-field radius 6) then pixel shuffle, plus the nearest-upsampled input."""

    def __init__(self, scale: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, padding=1), nn.PReLU(16)]
        for _ in range(4):
            layers += [nn.Conv2d(16, 16, 3, padding=1), nn.PReLU(16)]
        layers += [nn.Conv2d(16, 3 * scale * scale, 3, padding=1), nn.PixelShuffle(scale)]
        self.body = nn.Sequential(*layers)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + nn.functional.interpolate(x, scale_factor=self.scale, mode="nearest")


def _frames(n: int = 2, h: int = 50, w: int = 70) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return [np.roll(base, i, axis=1) for i in range(n)]


def test_tiles_cover_the_frame_once() -> None:
    cells = tile_windows(50, 70, 24)
    covered = np.zeros((50, 70), int)
    for y0, y1, x0, x1 in cells:
        covered[y0:y1, x0:x1] += 1
    assert (covered == 1).all()
    assert tile_windows(50, 70, 0) == [(0, 50, 0, 70)]
    with pytest.raises(InputError):
        TileSpec(16, 8)


def test_tiled_equals_untiled_when_overlap_covers_receptive_field() -> None:
    torch.manual_seed(0)
    model = TinySR(2)
    cpu = torch.device("cpu")
    whole = FrameUpscaler(SRRunner(model, 2, cpu, torch.float32))(_frames())
    tiled = FrameUpscaler(SRRunner(model, 2, cpu, torch.float32, tile=TileSpec(24, 8)))(_frames())
    assert whole[0].shape == (100, 140, 3)
    assert mean_abs_error_255(whole, tiled) < 1 / 255  # the seam-free requirement (<= 1/255)
    assert max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(whole, tiled, strict=True)) <= 1
    # too little overlap shows seams: the test above can fail
    seamy = FrameUpscaler(SRRunner(model, 2, cpu, torch.float32, tile=TileSpec(24, 1)))(_frames())
    assert mean_abs_error_255(whole, seamy) > mean_abs_error_255(whole, tiled)


def test_channels_last_and_bf16_error_is_measured() -> None:
    torch.manual_seed(0)
    model = TinySR(2)
    cpu = torch.device("cpu")
    ref = FrameUpscaler(SRRunner(model, 2, cpu, torch.float32, channels_last=False))(_frames())
    cl = FrameUpscaler(SRRunner(model, 2, cpu, torch.float32, channels_last=True))(_frames())
    assert mean_abs_error_255(ref, cl) < 0.05
    bf = FrameUpscaler(SRRunner(model, 2, cpu, torch.bfloat16))(_frames())
    err = mean_abs_error_255(ref, bf)
    assert 0 < err < 8  # reduced precision differs, by a bounded amount


def test_output_resize_on_device() -> None:
    model = TinySR(2)
    up = FrameUpscaler(SRRunner(model, 2, torch.device("cpu"), torch.float32), out_size=(120, 86))
    (out,) = up(_frames(1))
    assert out.shape == (86, 120, 3)


def test_auto_tile_respects_budget() -> None:
    spec = auto_tile(2160, 3840, torch.device("cpu"), bytes_per_pixel=64 * 4 * 2, budget_bytes=256 << 20)
    assert spec.size > 0 and spec.size * spec.size * 64 * 4 * 2 <= 256 << 20
    assert auto_tile(90, 160, torch.device("cpu"), bytes_per_pixel=512, budget_bytes=1 << 30).size == 0
