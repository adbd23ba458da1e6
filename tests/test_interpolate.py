from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from core.aigc import AIGC_KEY, label_metadata, make_label
from core.errors import CorruptMediaError, InputError, MediaError, ModelError
from core.media import iter_frames, probe
from models.rife import (
    PRESETS,
    IFNet,
    build_ifnet,
    config_from_state_dict,
    load_rife,
    pad_to,
    save_rife,
)
from pipelines.denoise import psnr
from pipelines.interpolate import (
    BlendInterpolator,
    FlowInterpolator,
    FrameRateConverter,
    RepeatInterpolator,
    RifeInterpolator,
    SceneCutDetector,
    convert_frames,
    interpolate_video,
    make_interpolator,
    parse_fps,
)
from tests.media_utils import make_clip


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random colour texture (what optical flow can track: detail at every place)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h, w, 3)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(base, (0, 0), 2.0) * 2.5 - 190, 0, 255).astype(np.uint8)


def moving(shift_per_frame: int, count: int, h: int = 96, w: int = 128, seed: int = 0,
           extra: tuple[int, ...] = ()) -> list[np.ndarray]:
    """``count`` windows of one texture, each ``shift_per_frame`` px further; then windows at ``extra`` offsets."""
    big = texture(h, w + shift_per_frame * count, seed)
    offsets = [k * shift_per_frame for k in range(count)] + list(extra)
    return [np.ascontiguousarray(big[:, o:o + w]) for o in offsets]


# --------------------------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------------------------
def test_parse_fps_is_exact() -> None:
    assert parse_fps("24000/1001") == Fraction(24000, 1001)
    assert parse_fps(59.94) == Fraction(2997, 50)
    assert parse_fps("50") == 50 and parse_fps(Fraction(30000, 1001)) == Fraction(30000, 1001)
    for bad in ("fast", "0", "-25", "1/0", "5000"):
        with pytest.raises(InputError):
            parse_fps(bad)


def test_25_to_50_doubles_the_count_with_exact_times_and_copies() -> None:
    frames = moving(4, 10)
    out, stats = convert_frames(frames, 25, 50, FlowInterpolator())
    assert len(out) == 20 and stats.out_frames == 20 and stats.src_frames == 10
    assert stats.copied == 10 and stats.interpolated == 9 and stats.held == 1  # the last half frame is held
    assert stats.out_duration == stats.src_duration == Fraction(2, 5)
    for k in range(0, 20, 2):
        assert np.array_equal(out[k], frames[k // 2])  # source frames pass through bit for bit
    conv = FrameRateConverter(25, 50, RepeatInterpolator())
    assert [conv.output_time(k) for k in range(3)] == [0, Fraction(1, 50), Fraction(1, 25)]


def test_ntsc_film_to_60_uses_exact_fractions() -> None:
    src = Fraction(24000, 1001)
    conv = FrameRateConverter(src, 60, BlendInterpolator())
    n = 25
    out = []
    for f in moving(2, n, 32, 48):
        out += conv.push(f)
    out += conv.flush()
    assert len(out) == conv.output_count(n) == math.ceil(Fraction(n) * 60 / src) == 63
    assert conv.source_position(1001) == 400  # exactly on source frame 400: copied, not synthesised
    assert conv.stats.copied == 1  # within 25 frames only output 0 lands on a source frame
    assert conv.stats.out_duration >= conv.stats.src_duration > conv.stats.out_duration - Fraction(1, 60)


def test_downconversion_picks_source_frames() -> None:
    frames = moving(3, 12, 32, 48)
    out, stats = convert_frames(frames, 50, 25, RepeatInterpolator())
    assert len(out) == 6 and stats.interpolated == 0
    assert all(np.array_equal(o, frames[2 * k]) for k, o in enumerate(out))


# --------------------------------------------------------------------------------------------
# picture quality
# --------------------------------------------------------------------------------------------
def test_flow_middle_frame_of_a_linear_motion_is_close_to_the_truth() -> None:
    a, truth, b, quarter = moving(5, 3, extra=(2,))  # 5 px per frame: frames 0 and 2 are 10 px apart
    flow = FlowInterpolator().interpolate(a, b, [0.5])[0]
    blend = BlendInterpolator().interpolate(a, b, [0.5])[0]
    inner = (slice(8, -8), slice(16, -16))  # the borders cannot be known from either neighbour
    p_flow, p_blend = psnr(truth[inner], flow[inner]), psnr(truth[inner], blend[inner])
    assert p_flow > 35.0 and p_flow > p_blend + 10.0
    occ = FlowInterpolator(occlusion=True).interpolate(a, b, [0.5])[0]
    assert psnr(truth[inner], occ[inner]) > 35.0  # nothing is occluded: the weighting must not hurt
    q = FlowInterpolator().interpolate(a, b, [0.2])[0]  # a fifth of the way: 2 px from a
    assert psnr(quarter[inner], q[inner]) > 30.0


def test_no_blending_across_a_hard_cut(opencv_data: Path) -> None:
    shot_a = moving(3, 3, seed=1)
    fruits = cv2.imread(str(opencv_data / "fruits.jpg"))
    assert fruits is not None
    other = fruits[:, :, ::-1]
    shot_b = [np.ascontiguousarray(cv2.resize(other, (128, 96), interpolation=cv2.INTER_AREA))] * 3
    frames = shot_a + shot_b
    out, stats = convert_frames(frames, 25, 50, FlowInterpolator(), cut_detector=SceneCutDetector())
    assert stats.cuts == 1 and len(out) == 12
    assert np.array_equal(out[5], shot_a[-1])  # between the shots: the last picture of shot A held
    assert np.array_equal(out[6], shot_b[0])
    assert stats.interpolated == 4  # 2 pairs inside shot A, 2 inside shot B
    # without the detector the same pair is blended into a picture that belongs to neither shot
    blended, _ = convert_frames(frames, 25, 50, BlendInterpolator())
    assert min(psnr(shot_a[-1], blended[5]), psnr(shot_b[0], blended[5])) < 20.0


def test_scene_cut_score_separates_motion_from_cuts(opencv_data: Path) -> None:
    det = SceneCutDetector()
    frames = [f.image for f in iter_frames(opencv_data / "Megamind.avi", start=95, end=101)]
    scores = [det.score(frames[i], frames[i + 1]) for i in range(5)]
    cut = int(np.argmax(scores))
    assert cut == 3  # frames 98 -> 99 is a cut in this clip
    assert scores[cut] > 25 and max(s for i, s in enumerate(scores) if i != cut) < 8


# --------------------------------------------------------------------------------------------
# RIFE
# --------------------------------------------------------------------------------------------
def test_rife_layouts_match_the_public_key_names_and_shapes() -> None:
    sd = build_ifnet("4.25").state_dict()
    assert sd["block0.conv0.0.0.weight"].shape == (96, 15, 3, 3)  # IFBlock(7+8, c=192)
    assert sd["block1.conv0.0.0.weight"].shape == (64, 28, 3, 3)  # IFBlock(8+4+8+8, c=128)
    assert sd["block4.lastconv.0.weight"].shape == (32, 52, 4, 4)  # ConvTranspose2d(c, 4*13, 4, 2, 1)
    assert sd["block0.convblock.7.beta"].shape == (1, 192, 1, 1)
    assert sd["encode.cnn3.weight"].shape == (16, 4, 4, 4)  # ConvTranspose2d(16, 4, 4, 2, 1)
    assert len(sd) == 5 * (4 + 8 * 3 + 2) + 8
    sd46 = build_ifnet("4.6").state_dict()
    assert sd46["block0.conv0.0.0.weight"].shape == (96, 7, 3, 3)
    assert sd46["block3.lastconv.0.weight"].shape == (64, 24, 4, 4)
    assert not any(k.startswith("encode.") for k in sd46) and len(sd46) == 4 * 30
    sd22 = build_ifnet("4.22").state_dict()
    assert sd22["block0.conv0.1.0.weight"].shape == (256, 128, 3, 3)
    assert sd22["block1.conv0.0.0.weight"].shape == (96, 36, 3, 3)  # IFBlock(8+4+16+8, c=192)
    for name, cfg in PRESETS.items():
        found = config_from_state_dict(build_ifnet(name).state_dict())
        assert found.block_channels == cfg.block_channels and found.mask_residual == cfg.mask_residual
        assert name in found.version.split("/")


@pytest.mark.parametrize("version", ["4.6", "4.25"])
def test_rife_pkl_round_trip_is_strict_and_records_sha256(tmp_path: Path, version: str) -> None:
    torch.manual_seed(0)
    model = build_ifnet(version).eval()
    path = save_rife(model, tmp_path / "flownet.pkl", ddp_prefix=True)  # as Practical-RIFE's training saves it
    raw = torch.load(path, weights_only=True)
    assert all(k.startswith("module.") for k in raw)
    from models.weights_io import sha256_file

    digest = sha256_file(path)
    loaded = load_rife(path, sha256=digest)
    assert loaded.weights_sha256 == digest and loaded.config.version.startswith(version)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    x0, x1 = torch.rand(2, 1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(model(x0, x1, 0.5), loaded(x0, x1, 0.5))
    st = save_rife(model, tmp_path / "flownet.safetensors")
    assert load_rife(st).config.block_channels == model.config.block_channels


def test_rife_loading_refuses_what_does_not_fit(tmp_path: Path) -> None:
    model = build_ifnet("4.25")
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    torch.save({**state, "module.teacher.conv0.0.0.weight": torch.zeros(1)}, tmp_path / "train.pkl")
    assert isinstance(load_rife(tmp_path / "train.pkl"), IFNet)  # training-only tensors are dropped
    torch.save({**state, "module.block0.extra.weight": torch.zeros(1)}, tmp_path / "extra.pkl")
    with pytest.raises(ModelError, match="do not fit"):
        load_rife(tmp_path / "extra.pkl")
    partial = {k: v for k, v in state.items() if "block4" not in k or "convblock.3" not in k}
    torch.save(partial, tmp_path / "partial.pkl")
    with pytest.raises(ModelError):
        load_rife(tmp_path / "partial.pkl", version="4.25")
    with pytest.raises(ModelError, match="sha256"):
        load_rife(tmp_path / "train.pkl", sha256="0" * 64)
    with pytest.raises(ModelError, match="do not exist"):
        load_rife(tmp_path / "missing.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle at all")
    with pytest.raises(ModelError, match="cannot read"):
        load_rife(tmp_path / "junk.pkl")
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ModelError, match="not an IFNet"):
        load_rife(tmp_path / "other.pth")


def test_rife_forward_wiring_with_known_weights() -> None:
    """All-zero weights: no flow and a 0.5 mask, so the output is the mean of the inputs.
    Then a constant flow from the first block's bias: the warp follows RIFE's convention."""
    model = build_ifnet("4.6").eval()
    for p in model.parameters():
        p.data.zero_()
    img0, img1 = torch.rand(2, 1, 3, 64, 96)
    with torch.inference_mode():
        assert torch.allclose(model(img0, img1, 0.3), (img0 + img1) / 2, atol=1e-4)
    d = 4.0  # middle frame = img0 moved right by d = img1 moved left by d
    base = torch.from_numpy(texture(64, 128)).permute(2, 0, 1)[None].float() / 255
    a, mid, b = base[..., 8:104], base[..., 4:100], base[..., 0:96]  # content moves right by 4 px per half step
    bias = model.block0.lastconv[0].bias  # type: ignore[union-attr,index]  # pixel-shuffled: output channel c <- 4c..4c+3
    scale0 = model.scale_list()[0]
    bias.data[0:4] = -d / scale0  # flow to img0: x component
    bias.data[8:12] = d / scale0  # flow to img1: x component
    with torch.inference_mode():
        out = model(a, b, 0.5)
    assert torch.allclose(out[..., 8:-8], mid[..., 8:-8], atol=1e-4)


def test_rife_interpolator_end_to_end_pads_and_crops(tmp_path: Path) -> None:
    torch.manual_seed(1)
    path = save_rife(build_ifnet("4.25"), tmp_path / "flownet.pkl", ddp_prefix=True)
    rife = make_interpolator("rife", weights=path, device="cpu")
    assert isinstance(rife, RifeInterpolator)
    assert rife.describe()["weights_sha256"] == rife.model.weights_sha256
    a, b = moving(2, 2, 50, 70)
    out = rife.interpolate(a, b, [0.25, 0.5, 0.75])
    assert len(out) == 3 and all(o.shape == (50, 70, 3) and o.dtype == np.uint8 for o in out)
    padded, size = pad_to(torch.zeros(1, 3, 50, 70), rife.model.modulo)
    assert padded.shape[-2:] == (64, 128) and size == (50, 70)
    frames, stats = convert_frames(moving(2, 4, 50, 70), 25, 50, rife)
    assert len(frames) == 8 and stats.interpolated == 3 and stats.engine["method"] == "rife"


def test_make_interpolator_checks_its_arguments(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="needs a weight file"):
        make_interpolator("rife")
    with pytest.raises(InputError, match="unknown interpolation method"):
        make_interpolator("magic")
    with pytest.raises(InputError, match="takes no weights"):
        make_interpolator("flow", weights=tmp_path / "x.pkl")
    with pytest.raises(ModelError):
        make_interpolator("rife", weights=tmp_path / "missing.pkl", device="cpu")


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------
def test_interpolate_video_keeps_sound_in_sync_and_the_label(tmp_path: Path) -> None:
    meta = label_metadata(make_label("ReelForge", "interp-test"))
    src = make_clip(tmp_path / "in.mp4", 15, Fraction(25), metadata=meta)
    seen: list[tuple[int, int]] = []
    stats = interpolate_video(src, tmp_path / "out.mp4", 50, progress=lambda d, t: seen.append((d, t)))
    assert stats.src_frames == 15 and stats.out_frames == 30
    assert seen[-1] == (15, 15)
    out = probe(tmp_path / "out.mp4")
    assert out.video is not None and out.video.fps == 50 and out.video.frames == 30
    assert out.audio is not None and out.audio.duration is not None
    assert abs(out.audio.duration - Fraction(30, 50)) < Fraction(1, 40)  # within one AAC frame
    assert json.loads(out.metadata[AIGC_KEY])["ProduceID"] == json.loads(meta[AIGC_KEY])["ProduceID"]
    ntsc = interpolate_video(src, tmp_path / "ntsc.mp4", "30000/1001")
    assert ntsc.out_frames == math.ceil(Fraction(15) * Fraction(30000, 1001) / 25) == 18
    assert probe(tmp_path / "ntsc.mp4").video.fps == Fraction(30000, 1001)  # type: ignore[union-attr]


def test_interpolate_video_with_rife_weights(tmp_path: Path) -> None:
    torch.manual_seed(2)
    weights = save_rife(build_ifnet("4.6"), tmp_path / "flownet.pkl", ddp_prefix=True)
    src = make_clip(tmp_path / "in.mp4", 6, Fraction(25), audio=False)
    stats = interpolate_video(src, tmp_path / "out.mp4", 50, method="rife", weights=weights, device="cpu")
    assert stats.out_frames == 12 and stats.engine["engine"] == "rife-4.6"
    assert probe(tmp_path / "out.mp4").video.frames == 12  # type: ignore[union-attr]


def test_interpolate_video_rejects_bad_inputs(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x01 definitely not a video " * 64)
    with pytest.raises(MediaError):
        interpolate_video(junk, tmp_path / "out.mp4", 50)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(CorruptMediaError):
        interpolate_video(empty, tmp_path / "out.mp4", 50)
    with pytest.raises(InputError):
        interpolate_video(tmp_path / "missing.mp4", tmp_path / "out.mp4", 50)
    src = make_clip(tmp_path / "ok.mp4", 4, Fraction(25), audio=False)
    with pytest.raises(InputError):
        interpolate_video(src, tmp_path / "out.mp4", "fast")
    with pytest.raises(InputError, match="input path"):
        interpolate_video(src, src, 50)
    # a truncated file: the header survives, the picture data does not
    data = src.read_bytes()
    cut = tmp_path / "truncated.mp4"
    cut.write_bytes(data[: len(data) // 3])
    with pytest.raises(MediaError):
        interpolate_video(cut, tmp_path / "out2.mp4", 50)
    assert not (tmp_path / "out.mp4").exists() and not (tmp_path / "out2.mp4").exists()


def test_cancel_leaves_no_output(tmp_path: Path) -> None:
    import threading

    src = make_clip(tmp_path / "in.mp4", 8, Fraction(25), audio=False)
    stop = threading.Event()
    stop.set()
    with pytest.raises(KeyboardInterrupt):
        interpolate_video(src, tmp_path / "out.mp4", 50, cancel=stop)
    assert not (tmp_path / "out.mp4").exists()
