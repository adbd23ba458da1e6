from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from core.aigc import AIGC_KEY, label_metadata, make_label
from core.errors import InputError
from core.media import iter_frames, probe
from pipelines.denoise import (
    DenoiseSettings,
    TemporalDenoiser,
    deblock,
    denoise_frames,
    denoise_image,
    denoise_video,
    detect_blocks,
    estimate_noise,
    psnr,
    sharpen,
)
from pipelines.video import process_video
from tests.media_utils import make_clip


def imread_rgb(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, path
    return image[:, :, ::-1]


def degrade(image: np.ndarray, sigma: float, jpeg_quality: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise (camera) then JPEG coding (8x8 blocks, 4:2:0 chroma)."""
    noisy = np.clip(np.rint(image.astype(np.float32) + rng.normal(0, sigma, image.shape)), 0, 255).astype(np.uint8)
    if not jpeg_quality:
        return noisy
    ok, buf = cv2.imencode(".jpg", noisy[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    assert ok
    decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    assert decoded is not None
    return decoded[:, :, ::-1].copy()


@pytest.fixture(scope="module")
def vtest_frames(opencv_data: Path) -> list[np.ndarray]:
    """10 real frames (a 320x256 window of the opencv-doc street clip: people walking, static camera)."""
    return [f.image[160:416, 128:448].copy() for f in iter_frames(opencv_data / "vtest.avi", end=10)]


def _mean_psnr(ref: list[np.ndarray], test: list[np.ndarray], skip: int = 3) -> float:
    return float(np.mean([psnr(a, b) for a, b in zip(ref[skip:], test[skip:], strict=True)]))


@pytest.mark.parametrize(("sigma", "quality"), [(15, 0), (12, 40)])
def test_temporal_denoise_beats_noisy_input_and_per_frame_baseline(vtest_frames: list[np.ndarray], sigma: int,
                                                                   quality: int) -> None:
    rng = np.random.default_rng(7)
    noisy = [degrade(f, sigma, quality, rng) for f in vtest_frames]
    per_frame = denoise_frames(noisy, DenoiseSettings(temporal=False))
    den = TemporalDenoiser()
    temporal = den(noisy)
    p_noisy, p_frame, p_temporal = (_mean_psnr(vtest_frames, x) for x in (noisy, per_frame, temporal))
    # measured on this window: 24.7 / 32.2 / 34.1 dB (sigma 15) and 30.2 / 31.6 / 32.8 dB (sigma 12 + JPEG 40)
    assert p_temporal > p_noisy + 2.0
    assert p_temporal > p_frame + 0.7
    assert den.stats.frames == 10 and den.stats.cuts == 0
    assert den.stats.mean_history > 2.0  # pixels really average several frames
    if quality:
        assert den.stats.deblocked == 10


def test_denoiser_is_causal_and_batch_size_does_not_matter(vtest_frames: list[np.ndarray]) -> None:
    rng = np.random.default_rng(1)
    noisy = [degrade(f, 10, 0, rng) for f in vtest_frames[:6]]
    whole = TemporalDenoiser()(noisy)
    one_by_one: list[np.ndarray] = []
    den = TemporalDenoiser()
    for f in noisy:
        one_by_one += den([f])
    assert len(whole) == len(noisy) == len(one_by_one)
    assert all(np.array_equal(a, b) for a, b in zip(whole, one_by_one, strict=True))
    # causal: a frame's output does not depend on later frames
    first4 = TemporalDenoiser()(noisy[:4])
    assert all(np.array_equal(a, b) for a, b in zip(first4, whole[:4], strict=True))


def test_history_is_dropped_at_a_cut(vtest_frames: list[np.ndarray], opencv_data: Path) -> None:
    other = imread_rgb(opencv_data / "fruits.jpg")
    other = np.ascontiguousarray(cv2.resize(other, (320, 256), interpolation=cv2.INTER_AREA))
    rng = np.random.default_rng(3)
    clean = vtest_frames[:4] + [other, other]
    noisy = [degrade(f, 10, 0, rng) for f in clean]
    den = TemporalDenoiser()
    out = den(noisy)
    assert den.stats.cuts == 1
    # the first frame after the cut shows the new picture only (as a per-frame denoise would)
    alone = denoise_frames([noisy[4]], DenoiseSettings())[0]
    assert np.abs(out[4].astype(int) - alone.astype(int)).mean() < 1.0
    assert psnr(other, out[4]) > psnr(other, noisy[4]) + 2.0


def test_estimate_noise_measures_white_noise() -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:240, 0:320]
    base = (96 + 60 * np.sin(xx / 40.0) * np.cos(yy / 55.0)).astype(np.float32)
    image = np.repeat(base[:, :, None], 3, axis=2)
    assert estimate_noise(image.astype(np.uint8)) < 1.5
    for sigma in (5.0, 12.0):
        noisy = np.clip(np.rint(image + rng.normal(0, sigma, image.shape[:2])[:, :, None]), 0, 255).astype(np.uint8)
        assert estimate_noise(noisy) == pytest.approx(sigma, rel=0.2)


def test_deblocking_finds_the_grid_and_removes_blocks(opencv_data: Path) -> None:
    clean = np.ascontiguousarray(imread_rgb(opencv_data / "building.jpg"))
    # crop by (3, 5) pixels so the grid phase is not zero, then code at low quality
    clean = clean[5:261, 3:355].copy()
    blocky = degrade(clean, 0, 15, np.random.default_rng(0))
    grid = detect_blocks(blocky)
    assert grid.present and (grid.offset_x, grid.offset_y) == (0, 0)
    shifted_clean, shifted = clean[5:, 3:], blocky[5:, 3:]
    g2 = detect_blocks(shifted)
    assert g2.present and (g2.offset_x, g2.offset_y) == (5, 3)
    fixed = deblock(shifted)
    after = detect_blocks(fixed)
    assert max(after.ratio_x, after.ratio_y) < max(g2.ratio_x, g2.ratio_y) - 0.3
    assert psnr(shifted_clean, fixed) > psnr(shifted_clean, shifted) + 0.1


def test_deblocking_leaves_unblocked_pictures_alone() -> None:
    yy, xx = np.mgrid[0:120, 0:160]
    smooth = np.stack([(xx * 1.5) % 256, (yy * 2) % 256, (xx + yy) % 256], axis=2).astype(np.uint8)
    assert not detect_blocks(smooth).present
    assert deblock(smooth) is smooth


def test_denoise_image_improves_a_noisy_photo_and_keeps_alpha(opencv_data: Path) -> None:
    clean = np.ascontiguousarray(imread_rgb(opencv_data / "home.jpg")[100:292, 100:356])
    noisy = degrade(clean, 12, 0, np.random.default_rng(5))
    out = denoise_image(noisy)
    assert out.shape == noisy.shape and out.dtype == np.uint8
    assert psnr(clean, out) > psnr(clean, noisy) + 4.0  # measured 26.6 -> 32.9 dB
    rgba = np.concatenate([noisy, np.full(noisy.shape[:2] + (1,), 77, np.uint8)], axis=2)
    out4 = denoise_image(rgba, DenoiseSettings(sharpen=0.3))
    assert out4.shape == rgba.shape and (out4[:, :, 3] == 77).all()


def test_sharpen_boosts_edges_but_not_flat_grain() -> None:
    img = np.full((40, 40, 3), 100, np.uint8)
    img[:, 20:] = 160
    out = sharpen(img, 0.8)
    assert int(out[20, 19, 0]) < 100 and int(out[20, 20, 0]) > 160  # overshoot at the edge
    assert (out[:, :10] == img[:, :10]).all()  # flat area untouched
    assert sharpen(img, 0.0) is img


def test_bad_settings_and_inputs_raise() -> None:
    for kwargs in ({"strength": -1}, {"history": 0}, {"deblock": "maybe"}, {"sharpen": 5}, {"noise_sigma": -2}):
        with pytest.raises(InputError):
            DenoiseSettings(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        TemporalDenoiser()([np.zeros((8, 8), np.uint8)])
    with pytest.raises(InputError):
        denoise_image(np.zeros((8, 8, 3), np.float32))  # type: ignore[arg-type]
    den = TemporalDenoiser()
    den([np.zeros((16, 16, 3), np.uint8)])
    with pytest.raises(InputError, match="frame size changed"):
        den([np.zeros((16, 18, 3), np.uint8)])
    assert denoise_frames([np.zeros((16, 16, 3), np.uint8)], DenoiseSettings(strength=0))[0].sum() == 0


def test_denoiser_as_process_video_stage_keeps_frames_sound_and_label(tmp_path: Path) -> None:
    meta = label_metadata(make_label("ReelForge", "denoise-test"))
    src = make_clip(tmp_path / "in.mp4", 12, Fraction(25), metadata=meta)
    den = TemporalDenoiser(DenoiseSettings(sharpen=0.2))
    info = probe(src)
    assert info.video is not None
    job = process_video(src, tmp_path / "out.mp4", den, out_size=(info.video.width, info.video.height), batch=4)
    assert job.frames == 12 and den.stats.frames == 12
    stats = denoise_video(src, tmp_path / "out2.mp4")
    assert stats["written"] == 12
    out = probe(tmp_path / "out2.mp4")
    assert out.video is not None and out.video.frames == 12 and out.audio is not None
    assert out.duration is not None and abs(float(out.duration) - 12 / 25) < 0.05
    assert json.loads(out.metadata[AIGC_KEY])["ContentProducer"] == "ReelForge"


def test_deblock_on_filters_a_grid_too_faint_for_auto() -> None:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:128, 0:160]
    base = 100 + 30 * np.sin(xx / 17.0) + 20 * np.cos(yy / 23.0)
    faint = rng.integers(-1, 2, (16, 20)).repeat(8, 0).repeat(8, 1) * 0.6  # steps under one level
    img = np.repeat(np.clip(np.rint(base + faint), 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
    before = detect_blocks(img)
    assert not before.present and before.ratio_y > 1.2
    auto = denoise_frames([img], DenoiseSettings(deblock="auto", spatial=False))[0]
    forced = denoise_frames([img], DenoiseSettings(deblock="on", spatial=False))[0]
    assert np.array_equal(auto, img)
    assert detect_blocks(forced).ratio_y < before.ratio_y - 0.15
