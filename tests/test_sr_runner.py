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


def test_device_colour_conversion_matches_swscale() -> None:
    import av
    from av.video.reformatter import ColorRange, Colorspace

    from pipelines.sr import rgb_to_i420

    rng = np.random.default_rng(1)
    blocks = rng.integers(0, 256, (5, 8, 3), dtype=np.uint8)
    img = np.repeat(np.repeat(blocks, 8, 0), 8, 1)[:36, :64]  # flat 8x8 blocks
    ours = rgb_to_i420(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255)[0].numpy()
    ref = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(
        format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG).to_ndarray()
    assert ours.shape == ref.shape == (54, 64)
    assert np.abs(ours[:36].astype(int) - ref[:36].astype(int)).max() <= 1  # luma: same matrix, same rounding
    # chroma inside each block (swscale filters across block edges, the box filter does not)
    u_ours, u_ref = ours[36:45].reshape(18, 32), ref[36:45].reshape(18, 32)
    v_ours, v_ref = ours[45:].reshape(18, 32), ref[45:].reshape(18, 32)
    inner = (slice(1, 16, 4), slice(1, 32, 4))
    assert np.abs(u_ours[inner].astype(int) - u_ref[inner].astype(int)).max() <= 2
    assert np.abs(v_ours[inner].astype(int) - v_ref[inner].astype(int)).max() <= 2


def test_i420_video_path_end_to_end(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from core.media import iter_frames, probe
    from pipelines.sr import I420Upscaler
    from pipelines.video import process_video
    from tests.media_utils import make_clip, read_index

    src = make_clip(tmp_path / "a.mp4", 12)
    model = TinySR(2)
    last = model.body[-2]
    assert isinstance(last, nn.Conv2d) and last.bias is not None
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)  # the net is now a plain nearest x2: frame numbers stay readable
    up = I420Upscaler(SRRunner(model, 2, torch.device("cpu"), torch.float32))
    job = process_video(src, tmp_path / "b.mp4", up, out_size=(256, 144), batch=4, output="i420")
    assert job.frames == 12 and probe(tmp_path / "b.mp4").video.width == 256  # type: ignore[union-attr]
    from PIL import Image

    got = [read_index(np.asarray(Image.fromarray(f.image).resize((128, 72)))) for f in iter_frames(tmp_path / "b.mp4")]
    assert got == list(range(12))


def test_frozen_cpu_graph_is_the_same_arithmetic_and_prepad_matches_reference() -> None:
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = TinySR(2)
    x = torch.rand(2, 3, 40, 56)
    eager = SRRunner(model, 2, torch.device("cpu"), torch.float32, freeze=False)
    frozen = SRRunner(model, 2, torch.device("cpu"), torch.float32, freeze=True)
    assert frozen.mode == "jit-freeze"
    assert torch.allclose(eager(x), frozen(x), atol=1e-5)
    padded = SRRunner(model, 2, torch.device("cpu"), torch.float32, pre_pad=10, tile=TileSpec(30, 12))
    with torch.no_grad():
        ref = model(F.pad(x, (10, 10, 10, 10), mode="reflect"))[:, :, 20:100, 20:132]
    assert (padded(x) - ref).abs().mean().item() < 1 / 255
