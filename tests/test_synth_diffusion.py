"""Keyframes, image-to-image, image-to-video and consistency scores through the real diffusers and
transformers loading code, with tiny random pipelines saved to a temp folder (no download)."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

if importlib.util.find_spec("diffusers") is None or importlib.util.find_spec("transformers") is None:
    pytest.skip("diffusers and transformers are not installed (pip install 'reelforge[gpu]')", allow_module_level=True)

from agents.base import RunContext  # noqa: E402
from agents.synth import BudgetExceeded, SynthAgent, SynthInput, review_shot  # noqa: E402
from core.config import load_config  # noqa: E402
from core.screenplay import CameraMove, Character, Episode, Line, Scene, Series, Shot  # noqa: E402
from core.usage import UsageStore  # noqa: E402
from pipelines.consistency import ClassicalDescriptor, TransformersImageEncoder, score_shot  # noqa: E402
from pipelines.diffusion import (  # noqa: E402
    KeyframePipeline,
    KeyframeRecord,
    KeyframeRequest,
    PipelineOptions,
    fit_to_frame,
)
from tests.support.tiny_pipelines import random_sd_pipeline, random_svd_pipeline  # noqa: E402


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_sd_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="session")
def keyframes(tiny_sd: Path) -> KeyframePipeline:
    return KeyframePipeline(tiny_sd, PipelineOptions(device="cpu", batch_size=2))


def series() -> Series:
    shots = [
        Shot(id="e01s01k00", seconds=1.6, camera=CameraMove.PUSH_IN, visual_prompt="未庄街景，清晨，薄雾"),
        Shot(id="e01s01k01", camera=CameraMove.STATIC, characters=["阿Q"], visual_prompt="阿Q站在酒店门口",
             lines=[Line(speaker="阿Q", text="我们先前比你阔的多啦！")]),
        Shot(id="e01s01k02", camera=CameraMove.PAN_LEFT, characters=["阿Q", "赵太爷"], visual_prompt="",
             lines=[Line(speaker="赵太爷", text="你那里配姓赵！")]),
    ]
    return Series(title="测试剧", characters=[Character(name="阿Q", appearance="瘦小，黄辫子，破夹袄"),
                                            Character(name="赵太爷", appearance="胖，绸长衫")],
                  episodes=[Episode(number=1, title="开端",
                                    scenes=[Scene(id="e01s01", place="未庄", shots=shots, summary="阿Q在未庄")])])


def test_keyframes_are_seeded_batched_and_reproducible(keyframes: KeyframePipeline, tmp_path: Path) -> None:
    assert keyframes.native_size() == (32, 32)  # the tiny UNet's sample size x the VAE factor, from its config
    reqs = [KeyframeRequest(prompt=f"阿Q 在未庄 {i}", seed=100 + i, steps=2, tag=f"s{i}", negative_prompt="模糊")
            for i in range(3)]
    out = keyframes.generate(reqs)
    assert [r.tag for _, r in out] == ["s0", "s1", "s2"] and [r.batch for _, r in out] == [2, 2, 1]
    img, rec = out[1]
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    assert (rec.seed, rec.steps, rec.width, rec.height, rec.pipeline) == (101, 2, 32, 32, "StableDiffusionPipeline")
    assert rec.scheduler == "PNDMScheduler" and rec.dtype == "float32" and rec.device == "cpu"
    assert rec.guidance == 7.5 and rec.negative_prompt == "模糊" and rec.mode == "text2img"
    # the same seed alone, or regenerated from the record (through JSON), gives the same picture
    assert np.array_equal(keyframes.generate([reqs[1]])[0][0], img)
    stored = KeyframeRecord(**json.loads(json.dumps(rec.to_json())))
    assert np.array_equal(keyframes.regenerate(stored)[0], img)
    assert not np.array_equal(out[0][0], img)  # another seed, another picture
    # size, scheduler and steps per request
    other = keyframes.generate([KeyframeRequest(prompt="x", seed=1, steps=3, width=48, height=64,
                                                scheduler="EulerDiscreteScheduler")])[0]
    assert other[0].shape == (64, 48, 3) and other[1].scheduler == "EulerDiscreteScheduler" and other[1].steps == 3
    # a scheduler named for one request does not leak into the next
    back = keyframes.generate([reqs[1]])[0]
    assert back[1].scheduler == "PNDMScheduler" and np.array_equal(back[0], img)
    # image-to-image from a reference (the character-sheet path)
    from PIL import Image

    Image.fromarray(img).save(tmp_path / "ref.png")
    i2i = keyframes.generate([KeyframeRequest(prompt="阿Q", seed=5, steps=4, init_image=str(tmp_path / "ref.png"),
                                              strength=0.5)])[0]
    assert i2i[1].mode == "img2img" and i2i[1].pipeline == "StableDiffusionImg2ImgPipeline" and i2i[1].strength == 0.5
    with pytest.raises(Exception, match="unknown scheduler"):
        keyframes.generate([KeyframeRequest(prompt="x", seed=1, steps=1, scheduler="NoSuchScheduler")])
    with pytest.raises(Exception, match="empty prompt"):
        keyframes.generate([KeyframeRequest(prompt=" ", seed=1)])


def test_fit_to_frame_crops_or_outpaints_to_the_aspect() -> None:
    img = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    tall, how = fit_to_frame(img, (90, 160), "auto")
    assert tall.shape == (160, 90, 3) and how == "outpaint-classical"  # a square keeps only 56 % as 9:16
    wide, how = fit_to_frame(np.zeros((60, 80, 3), np.uint8), (160, 90), "auto")
    assert wide.shape == (90, 160, 3) and how == "crop"  # 4:3 -> 16:9 keeps 75 %
    crop, how = fit_to_frame(img, (90, 160), "crop")
    assert how == "crop" and crop.shape == (160, 90, 3)


def test_missing_or_wrong_models_fail_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="does not exist"):
        KeyframePipeline(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="model_index.json"):
        KeyframePipeline(tmp_path / "empty")
    with pytest.raises(Exception, match="needs an image model"):
        SynthAgent()(SynthInput(series=series(), episode=1, out_dir=tmp_path / "s", width=90, height=160,
                                engine="diffusers"), RunContext(config=load_config()))


def test_episode_with_image_model_records_seeds_and_scores(tiny_sd: Path, tmp_path: Path) -> None:
    cfg = load_config()
    cfg.synth.batch_size = 4
    usage = UsageStore(tmp_path / "usage.sqlite")
    ctx = RunContext(config=cfg, usage=usage, run_id=usage.start_run("test"))
    out = tmp_path / "synth" / "ep01"
    inp = SynthInput(series=series(), episode=1, out_dir=out, width=90, height=160, tts="silence",
                     image_model=str(tiny_sd), steps=2)
    agent = SynthAgent()
    render = agent(inp, ctx).output
    assert render.engine == "diffusers"
    assert [s.picture for s in render.shots] == ["diffusers"] * 3
    assert [s.motion for s in render.shots] == ["camera:push_in", "static", "camera:pan_left"]
    for shot in render.shots:
        rec = json.loads((out / shot.keyframe_record).read_text(encoding="utf-8"))["record"]
        assert rec["seed"] == shot.seed and rec["steps"] == 2 and rec["model"] == str(tiny_sd)
        assert rec["prompt"] == shot.prompt and rec["width"] == 32
    # appearance text is carried into the prompt; an empty visual prompt is built from the scene
    assert "瘦小，黄辫子，破夹袄" in render.shots[1].prompt
    assert "未庄" in render.shots[2].prompt and "胖，绸长衫" in render.shots[2].prompt
    # character sheets were made once per character, and scored with the named classical descriptor
    sheets = sorted(p.name for p in (tmp_path / "synth" / "characters").glob("*.png"))
    assert len(sheets) == 2
    assert render.shots[1].consistency is not None
    assert render.shots[1].consistency_method == "classical:hsv-hist+grad-hist"
    assert render.shots[0].consistency is None  # no character in the establishing shot
    assert (out / render.cover).exists()
    # the keyframe reproduces exactly from its record
    from PIL import Image

    kp = KeyframePipeline(tiny_sd, PipelineOptions(device="cpu"))
    rec = KeyframeRecord(**json.loads((out / render.shots[1].keyframe_record).read_text(encoding="utf-8"))["record"])
    # (it was made in a batch of 3: a batch of 1 sums in another order, so allow 1-2 levels of rounding)
    diff = kp.regenerate(rec)[0].astype(int) - np.asarray(Image.open(out / "keyframes" / "e01s01k01.png")).astype(int)
    assert np.abs(diff).max() <= 2 and np.abs(diff).mean() < 0.1
    # usage: generation time and image counts with the model and seeds
    events = list(usage.events())
    images = sum(e["quantity"] for e in events if e["unit"] == "image")
    assert images == 5  # 3 keyframes + 2 character sheets
    gen = [e for e in events if e["engine"] == "diffusers" and e["unit"] == "cpu_second"]
    assert gen and all(e["model"] == "tiny-sd" and e["device"] == "cpu" for e in gen)
    assert sorted(s for e in gen for s in e["detail"]["seeds"])  # seeds are on record
    assert (tmp_path / "synth" / "calibration.json").exists()
    # regenerate one shot: only its keyframe and clip change, with a new seed
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "keyframes").glob("*.png")}
    review_shot(out, "e01s01k02", "regenerate")
    again = agent(inp, ctx).output
    changed = {p.name for p in (out / "keyframes").glob("*.png") if p.stat().st_mtime_ns != stamps[p.name]}
    assert changed == {"e01s01k02.png"}
    assert again.shots[2].seed != render.shots[2].seed and again.shots[1].seed == render.shots[1].seed
    # per-shot settings: this shot's own seed, steps and scheduler
    review_shot(out, "e01s01k01", "set", settings={"seed": "42", "steps": "3", "scheduler": "EulerDiscreteScheduler"})
    third = agent(inp, ctx).output
    rec = json.loads((out / third.shots[1].keyframe_record).read_text(encoding="utf-8"))["record"]
    assert (third.shots[1].seed, rec["steps"], rec["scheduler"]) == (42, 3, "EulerDiscreteScheduler")
    assert third.shots[0].seed == render.shots[0].seed
    with pytest.raises(Exception, match="unknown shot setting"):
        review_shot(out, "e01s01k01", "set", settings={"cfg": 3})


def test_quote_and_budget_cap_stop_before_generating(tiny_sd: Path, tmp_path: Path) -> None:
    cfg = load_config()
    out = tmp_path / "ep01"
    inp = SynthInput(series=series(), episode=1, out_dir=out, width=90, height=160, tts="silence",
                     image_model=str(tiny_sd), steps=2, price=lambda model, unit, day: Decimal("0.25") if unit == "image" else None)
    q = SynthAgent().quote(inp, cfg)
    assert q.images == 5 and not q.priced  # the time line has no price in this price book
    assert any("no price for" in n for n in q.notes) and "Quote" in q.table()
    priced = replace(inp, price=lambda model, unit, day: Decimal("0.25"))
    q2 = SynthAgent().quote(priced, cfg)
    assert q2.priced and q2.lines[0].cost_fen == 125
    cfg.synth.budget_cny = "1.00"
    with pytest.raises(BudgetExceeded, match="exceeds the cap"):
        SynthAgent()(priced, RunContext(config=cfg))
    assert not (out / "keyframes").exists() or not list((out / "keyframes").glob("*.png"))
    cfg.synth.budget_cny = ""
    cfg.synth.gpu_seconds_cap = "0.001"
    with pytest.raises(BudgetExceeded, match="GPU seconds"):
        SynthAgent()(priced, RunContext(config=cfg))
    none = SynthAgent().quote(replace(inp, price=None), load_config())
    assert none.images == 5 and not none.priced


def test_consistency_scores_with_a_configured_encoder(tmp_path: Path) -> None:
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    enc_dir = tmp_path / "encoder"
    CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=32, projection_dim=16, num_hidden_layers=2,
                                                   num_attention_heads=4, image_size=32, intermediate_size=37,
                                                   patch_size=8)).save_pretrained(enc_dir)
    CLIPImageProcessor(crop_size=32, size=32).save_pretrained(enc_dir)
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    b = 255 - a
    enc = TransformersImageEncoder(enc_dir, device="cpu")
    same = score_shot(enc, a, {"阿Q": a})
    assert same is not None and same.score == pytest.approx(1.0, abs=1e-4) and same.method == "encoder:encoder"
    classical = ClassicalDescriptor()
    s_same = score_shot(classical, a, {"x": a.copy()})
    s_diff = score_shot(classical, a, {"x": b})
    assert s_same is not None and s_diff is not None and s_same.score > s_diff.score
    assert score_shot(classical, a, {}) is None


def test_image_to_video_with_a_tiny_svd(tiny_sd: Path, tmp_path: Path) -> None:
    from fractions import Fraction

    from pipelines.motion import VideoPipeline, retime

    folder = random_svd_pipeline(tmp_path / "tiny-svd")
    vp = VideoPipeline(folder, device="cpu")
    img = np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8)
    frames, rec = vp.generate(img, seed=3, frames=3, fps=7, steps=1, width=32, height=32)
    assert len(frames) == 3 and frames[0].shape == (32, 32, 3) and frames[0].dtype == np.uint8
    assert rec.pipeline == "StableVideoDiffusionPipeline" and rec.seed == 3 and rec.frames == 3
    again, _ = vp.generate(img, seed=3, frames=3, fps=7, steps=1, width=32, height=32)
    assert all(np.array_equal(x, y) for x, y in zip(frames, again, strict=True))
    # 3 frames at 7 fps on a 25 fps timeline of 20 frames: plays at its own speed, then holds
    timeline = retime(frames, Fraction(7), Fraction(25), 20)
    assert timeline[0] is frames[0] and timeline[4] is frames[1] and timeline[19] is frames[2]
    with pytest.raises(Exception, match="does not take an image"):
        VideoPipeline(random_sd_pipeline(tmp_path / "t2i"), device="cpu").load()

    # through the agent: one shot, keyframe from the tiny SD, motion from the tiny SVD
    one = series()
    one.episodes[0].scenes[0].shots = one.episodes[0].scenes[0].shots[:1]
    cfg = load_config()
    cfg.synth.video_frames, cfg.synth.video_fps = 3, 7
    render = SynthAgent()(SynthInput(series=one, episode=1, out_dir=tmp_path / "ep", width=90, height=160,
                                     tts="silence", image_model=str(tiny_sd), video_model=str(folder), steps=1),
                          RunContext(config=cfg)).output
    shot = render.shots[0]
    assert shot.motion == "i2v:StableVideoDiffusionPipeline" and shot.frames == 40
    from core.media import iter_frames

    clip = [f.image.astype(int) for f in iter_frames(tmp_path / "ep" / shot.clip)]
    assert len(clip) == 40
    # moves, then holds (the keyframe at 28, where the episode's fade-out begins, re-codes the held
    # picture: a level or so of difference, against ~15 while it moves)
    assert np.abs(clip[0] - clip[8]).mean() > 5 and np.abs(clip[20] - clip[39]).mean() < 3


def test_usage_records_name_the_model_cards_licences(tiny_sd: Path, tmp_path: Path) -> None:
    import shutil

    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    from models.modelcard import is_placeholder_licence

    image = shutil.copytree(tiny_sd, tmp_path / "carded-sd")
    (image / "README.md").write_text("---\nlicense: creativeml-openrail-m\nlibrary_name: diffusers\n---\n# tiny\n",
                                     encoding="utf-8")
    video = random_svd_pipeline(tmp_path / "svd")
    (video / "README.md").write_text("---\nlicense: other\nlicense_name: stable-video-diffusion-community\n"
                                     "license_link: LICENSE.md\n---\n", encoding="utf-8")
    encoder = tmp_path / "encoder"
    CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=32, projection_dim=16, num_hidden_layers=2,
                                                   num_attention_heads=4, image_size=32, intermediate_size=37,
                                                   patch_size=8)).save_pretrained(encoder)
    CLIPImageProcessor(crop_size=32, size=32).save_pretrained(encoder)
    (encoder / "LICENSE").write_text("MIT License\n\nCopyright (c) 2021 OpenAI\n", encoding="utf-8")
    one = series()
    one.episodes[0].scenes[0].shots = one.episodes[0].scenes[0].shots[1:2]  # 阿Q: a sheet and a score too
    cfg = load_config()
    cfg.synth.video_frames, cfg.synth.video_fps, cfg.synth.image_encoder = 3, 7, str(encoder)
    res = SynthAgent()(SynthInput(series=one, episode=1, out_dir=tmp_path / "ep", width=90, height=160, tts="silence",
                                  image_model=str(image), video_model=str(video), steps=1), RunContext(config=cfg))
    licences = {(r.engine, r.unit): r.licence for r in res.usage}
    assert licences[("diffusers", "cpu_second")] == "creativeml-openrail-m"
    assert licences[("diffusers", "image")] == "creativeml-openrail-m"
    assert licences[("diffusers-video", "cpu_second")] == "other: stable-video-diffusion-community (LICENSE.md)"
    assert licences[("consistency", "use")] == "MIT"
    bad = [(r.engine, r.unit, r.licence) for r in res.usage if is_placeholder_licence(r.licence)]
    assert not bad, bad
    # a model folder without a card: recorded as unknown, naming the folder, and reported
    ctx = RunContext(config=load_config())
    bare = SynthAgent()(SynthInput(series=one, episode=1, out_dir=tmp_path / "ep2", width=90, height=160,
                                   tts="silence", image_model=str(tiny_sd), steps=1), ctx)
    unknown = {r.licence for r in bare.usage if r.engine == "diffusers"}
    assert len(unknown) == 1 and unknown.pop().startswith(f"unknown: no licence in a model card (README.md front "
                                                          f"matter) or a LICENSE file in {tiny_sd}")
    assert any("add its model card" in n for n in ctx.notes)


def _tiny_ip_adapter(pipe_dir: Path, out: Path) -> Path:
    """IP-Adapter weights for the tiny UNet: a CLIP vision encoder, the image projection and the
    to_k_ip/to_v_ip of every cross-attention layer (random, shaped like the real ones)."""
    import diffusers
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=32, projection_dim=24, num_hidden_layers=2,
                                                   num_attention_heads=4, image_size=32, intermediate_size=37,
                                                   patch_size=8)).save_pretrained(out / "image_encoder")
    CLIPImageProcessor(crop_size=32, size=32).save_pretrained(out / "image_encoder")
    unet = diffusers.UNet2DConditionModel.from_pretrained(pipe_dir / "unet")
    cross, tokens, channels = unet.config.cross_attention_dim, 4, unet.config.block_out_channels
    sd = {"image_proj.proj.weight": torch.randn(cross * tokens, 24) * 0.5, "image_proj.proj.bias": torch.zeros(cross * tokens),
          "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross)}
    key = 1
    for name in unet.attn_processors:
        if not name.endswith("attn2.processor"):
            continue
        if name.startswith("mid_block"):
            hidden = channels[-1]
        elif name.startswith("up_blocks"):
            hidden = list(reversed(channels))[int(name.split(".")[1])]
        else:
            hidden = channels[int(name.split(".")[1])]
        sd[f"ip_adapter.{key}.to_k_ip.weight"] = torch.randn(hidden, cross) * 0.5
        sd[f"ip_adapter.{key}.to_v_ip.weight"] = torch.randn(hidden, cross) * 0.5
        key += 2
    save_file(sd, str(out / "ip-adapter_tiny.safetensors"))
    return out


def test_ip_adapter_reference_from_local_weights(tiny_sd: Path, keyframes: KeyframePipeline, tmp_path: Path) -> None:
    from PIL import Image

    folder = _tiny_ip_adapter(tiny_sd, tmp_path / "ip")
    kp = KeyframePipeline(tiny_sd, PipelineOptions(device="cpu", ip_adapter=str(folder)))
    kp.load()
    assert kp.ip_adapter_loaded
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "ref.png")
    with_ref = kp.generate([KeyframeRequest(prompt="阿Q", seed=1, steps=2, ip_adapter_image=str(tmp_path / "ref.png"),
                                            ip_adapter_scale=1.0)])[0]
    without = kp.generate([KeyframeRequest(prompt="阿Q", seed=1, steps=2)])[0]
    plain = keyframes.generate([KeyframeRequest(prompt="阿Q", seed=1, steps=2)])[0]
    assert with_ref[1].mode == "ip-adapter" and with_ref[1].ip_adapter == str(folder)
    assert np.abs(with_ref[0].astype(int) - without[0].astype(int)).mean() > 0.5  # the reference steers the picture
    assert np.array_equal(without[0], plain[0])  # loaded but unused (scale 0): the plain pipeline's picture


@pytest.mark.gpu
def test_keyframes_on_cuda_in_half_precision(tiny_sd: Path) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    kp = KeyframePipeline(tiny_sd, PipelineOptions(device="cuda", batch_size=2, attention_slicing=True))
    out = kp.generate([KeyframeRequest(prompt="阿Q", seed=s, steps=2) for s in (1, 2, 3)])
    assert [r.dtype for _, r in out] == ["float16"] * 3 and all(r.device.startswith("cuda") for _, r in out)
    assert np.array_equal(kp.generate([KeyframeRequest(prompt="阿Q", seed=3, steps=2)])[0][0], out[2][0])
