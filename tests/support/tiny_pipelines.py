"""Tiny (or full-size) diffusers pipelines with random weights, built from configs: no download.

For tests of the keyframe and image-to-video paths on the CPU and for GPU timings: the
architectures and the loading/generation code are real, the pictures are noise. Not shipped in
the wheel (they build models that must never be mistaken for real ones).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from core.errors import InputError


def _byte_level_vocab() -> tuple[dict[str, int], str]:
    """A CLIP BPE vocabulary with every byte as a token and no merges (any text tokenises)."""
    # GPT-2/CLIP's reversible byte -> printable character map
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    chars = [chr(c) for c in codes]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab.setdefault(c, len(vocab))
    for c in chars:
        vocab.setdefault(c + "</w>", len(vocab))
    return vocab, "#version: 0.2\n"


def random_sd_pipeline(folder: str | os.PathLike[str], *, scale: str = "tiny", seed: int = 0) -> Path:
    """Save a Stable Diffusion 1.5-architecture pipeline with random weights to ``folder``.

    ``scale="tiny"`` is a few-hundred-kB model for tests; ``scale="sd15"`` is the full SD 1.5
    UNet/VAE/CLIP-L architecture (860M + 84M + 123M parameters) for honest GPU timings. The
    tokenizer is a byte-level CLIP BPE with no merges, written to the folder (no download).
    """
    out = Path(folder)
    build_random_sd(scale=scale, seed=seed).save_pretrained(out)
    return out


def build_random_sd(*, scale: str = "tiny", seed: int = 0, device: str = "cpu") -> Any:
    """The pipeline of :func:`random_sd_pipeline` in memory; ``device="cuda"`` initialises on the GPU (fast)."""
    import json
    import tempfile

    import torch
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    if scale not in ("tiny", "sd15"):
        raise InputError(f"scale {scale!r} is unknown", hint="tiny or sd15")
    torch.manual_seed(seed)
    vocab, merges = _byte_level_vocab()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
        (Path(tmp) / "merges.txt").write_text(merges, encoding="utf-8")
        tokenizer = CLIPTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"),
                                  pad_token="<|endoftext|>", model_max_length=77)
    with torch.device(device):
        return _random_sd_modules(scale, len(vocab), tokenizer, AutoencoderKL, PNDMScheduler, StableDiffusionPipeline,
                                  UNet2DConditionModel, CLIPTextConfig, CLIPTextModel)


def _random_sd_modules(scale: str, vocab_size: int, tokenizer: Any, AutoencoderKL: Any, PNDMScheduler: Any,  # noqa: N803
                       StableDiffusionPipeline: Any, UNet2DConditionModel: Any, CLIPTextConfig: Any,  # noqa: N803
                       CLIPTextModel: Any) -> Any:  # noqa: N803
    if scale == "tiny":
        unet = UNet2DConditionModel(block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4,
                                    out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32,
                                    norm_num_groups=4, attention_head_dim=4)
        vae = AutoencoderKL(block_out_channels=[8, 16], in_channels=3, out_channels=3,
                            down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2,
                            latent_channels=4, norm_num_groups=4, sample_size=32)
        text = CLIPTextModel(CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=32,
                                            intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
                                            vocab_size=vocab_size, max_position_embeddings=77, projection_dim=32))
    else:
        unet = UNet2DConditionModel(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                                    block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768,
                                    attention_head_dim=8,
                                    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                                      "CrossAttnDownBlock2D", "DownBlock2D"),
                                    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                                                    "CrossAttnUpBlock2D"))
        vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=[128, 256, 512, 512],
                            down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4,
                            layers_per_block=2, sample_size=512)
        text = CLIPTextModel(CLIPTextConfig(vocab_size=max(49408, vocab_size), hidden_size=768, intermediate_size=3072,
                                            num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                                            hidden_act="quick_gelu", projection_dim=768, bos_token_id=0, eos_token_id=1,
                                            pad_token_id=1))
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                              steps_offset=1, set_alpha_to_one=False)
    return StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def random_svd_pipeline(folder: str | os.PathLike[str], *, seed: int = 0) -> Path:
    """Save a *tiny* Stable Video Diffusion pipeline with random weights to ``folder``.

    For smoke tests of the image-to-video path with no download: the architecture and the
    loading/generation code are real, the pictures are noise.
    """
    import torch
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=16, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=32, num_attention_heads=8, projection_class_embeddings_input_dim=96,
        addition_time_embed_dim=32,
    )
    scheduler = EulerDiscreteScheduler(
        beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, interpolation_type="linear",
        num_train_timesteps=1000, prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002, steps_offset=1,
        timestep_spacing="leading", timestep_type="continuous", use_karras_sigmas=True,
    )
    vae = AutoencoderKLTemporalDecoder(block_out_channels=[32, 64], in_channels=3, out_channels=3,
                                       down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"], latent_channels=4)
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=32, projection_dim=32, num_hidden_layers=2,
                                                             num_attention_heads=4, image_size=224, intermediate_size=37,
                                                             patch_size=32))  # SVD resizes to 224
    processor = CLIPImageProcessor(crop_size=224, size=224)
    pipe: Any = StableVideoDiffusionPipeline(vae=vae, image_encoder=encoder, unet=unet, scheduler=scheduler,
                                        feature_extractor=processor)
    out = Path(folder)
    pipe.save_pretrained(out)
    return out
