"""A tiny flow model in the on-disk layout the diffusion adapter reads (models/diffusion.py): an SD3 or a
Qwen-Image transformer, a 4x VAE of the same family giving 64 px images, and a tiny Qwen2.5-VL as text encoder and
understanding side. Random weights; for CPU tests of the diffusion backend."""

from __future__ import annotations

import math
from pathlib import Path


def transformer_and_vae(family: str, hidden: int):
    """Tiny random transformer and VAE of a family: 16 x 16 x 4 latents, 64 px images."""
    from diffusers import AutoencoderKL, AutoencoderKLQwenImage, QwenImageTransformer2DModel, SD3Transformer2DModel
    if family == "sd3":
        return (SD3Transformer2DModel(sample_size=16, patch_size=2, in_channels=4, num_layers=1, attention_head_dim=8,
                                      num_attention_heads=2, joint_attention_dim=hidden, caption_projection_dim=16,
                                      pooled_projection_dim=hidden, out_channels=4, pos_embed_max_size=16),
                AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32, 32),
                              down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                              layers_per_block=1, sample_size=64))
    if family == "qwen_image":
        return (QwenImageTransformer2DModel(patch_size=2, in_channels=16, out_channels=4, num_layers=1,
                                            attention_head_dim=16, num_attention_heads=2, joint_attention_dim=hidden,
                                            axes_dims_rope=(4, 6, 6)),
                AutoencoderKLQwenImage(base_dim=16, z_dim=4, dim_mult=[1, 1, 1], num_res_blocks=1,
                                       temperal_downsample=[False, False], latents_mean=[0.0] * 4, latents_std=[1.0] * 4))
    raise ValueError(f"unknown flow family {family!r}; valid: sd3, qwen_image")


def qwen_image_shape(path: Path, layers: int = 2, dtype=None, seed: int = 0) -> Path:
    """Qwen-Image's real shapes with `layers` layers and random weights (launch/gpu_smoke.py): the MMDiT's widths
    (24 heads x 128, text width 3584, 16-channel latents packed 2x2), its VAE as published, a Qwen2.5-VL at the 7B's
    widths (vocabulary 152064, hidden 3584) with `layers` text and vision layers; 512 px (64 x 64 latents, 1024
    image tokens), 10 SDE steps, 128 text tokens. The tokenizer is the tiny one (its ids fit the real vocabulary)."""
    import torch
    from diffusers import AutoencoderKLQwenImage, QwenImageTransformer2DModel
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from models import qwen_vl_like
    from models.diffusion import DiffusionAdapter, FlowSettings
    from models.qwen_vl import QwenVLUnderstanding

    _, tok, proc = qwen_vl_like.build(seed=seed)
    ids = {t: tok.convert_tokens_to_ids(t) for t in qwen_vl_like.SPECIAL}
    torch.manual_seed(seed)
    cfg = Qwen2_5_VLConfig(
        text_config=dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=layers, num_attention_heads=28,
                         num_key_value_heads=4, vocab_size=152064, max_position_embeddings=4096,
                         rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]},
                         bos_token_id=ids["<|im_start|>"], eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(depth=layers, hidden_size=1280, intermediate_size=3420, num_heads=16,
                           out_hidden_size=3584, fullatt_block_indexes=list(range(layers))),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    vlm = QwenVLUnderstanding(Qwen2_5_VLForConditionalGeneration(cfg).eval(), tok, proc)
    transformer, vae = QwenImageTransformer2DModel(num_layers=layers), AutoencoderKLQwenImage()
    if dtype is not None:
        for m in (vlm.model, transformer, vae):
            m.to(dtype)
    # the time shift of Qwen-Image's scheduler at 1024 image tokens: exp(mu), mu = 0.5 + 0.4 (1024 - 256) / (8192 - 256)
    settings = FlowSettings(shift=math.exp(0.5 + 0.4 * (1024 - 256) / (8192 - 256)))
    adapter = DiffusionAdapter(transformer, vae, None, settings, latent_channels=16, latent_size=64, understanding=vlm)
    adapter.save_pretrained(path)
    return Path(path)


def build(path: Path, seed: int = 0, steps: int = 4, trained_steps: tuple[int, ...] = (), family: str = "sd3") -> Path:
    import torch

    from models import qwen_vl_like
    from models.diffusion import DiffusionAdapter, FlowSettings
    from models.qwen_vl import QwenVLUnderstanding

    vlm = QwenVLUnderstanding(*qwen_vl_like.build(seed=seed))
    torch.manual_seed(seed)
    transformer, vae = transformer_and_vae(family, vlm.model.config.text_config.hidden_size)
    settings = FlowSettings(steps=steps, trained_steps=trained_steps, text_tokens=24)
    adapter = DiffusionAdapter(transformer, vae, None, settings, latent_channels=4, latent_size=16, understanding=vlm)
    adapter.save_pretrained(path)
    return Path(path)


def published_pipeline(path: Path, kind: str, seed: int = 0, steps: int = 4, text_tokens: int = 16) -> Path:
    """A tiny FLUX (`flux`, guidance-distilled, CLIP + T5) or SD3 (`sd3_pipeline`, two CLIPs + T5) pipeline saved
    by diffusers in its published layout (model_index.json names the pipeline class), plus meta_ttrl.json with
    tiny sampling settings (16 x 16 x 4 latents, 64 px). No VLM: rubrics need `model.understanding_path`."""
    import json
    from dataclasses import asdict

    import torch
    from diffusers import (AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel,
                           SD3Transformer2DModel, StableDiffusion3Pipeline)
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config, T5EncoderModel

    from models.diffusion import ADAPTER_FILE, FlowSettings
    from models.janus_pro_like import bpe_tokenizer

    tok = bpe_tokenizer(("<|endoftext|>", "<|startoftext|>", "<pad>"), bos_token="<|startoftext|>",
                        eos_token="<|endoftext|>", pad_token="<pad>")
    tok.model_max_length = 77
    ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    clip = dict(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                max_position_embeddings=77, projection_dim=16, **ids)
    t5 = T5EncoderModel(T5Config(vocab_size=len(tok), d_model=32, d_ff=64, num_layers=1, num_heads=2, d_kv=16,
                                 pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id))
    _, vae = transformer_and_vae("sd3", 32)
    if kind == "flux":
        scheduler = FlowMatchEulerDiscreteScheduler(use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15)
        transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                             attention_head_dim=16, num_attention_heads=2, joint_attention_dim=32,
                                             pooled_projection_dim=16, guidance_embeds=True, axes_dims_rope=(4, 6, 6))
        pipe = FluxPipeline(scheduler, vae, CLIPTextModel(CLIPTextConfig(**clip)), tok, t5, tok, transformer)
    elif kind == "sd3_pipeline":
        scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
        transformer = SD3Transformer2DModel(sample_size=16, patch_size=2, in_channels=4, num_layers=1,
                                            attention_head_dim=8, num_attention_heads=2, joint_attention_dim=32,
                                            caption_projection_dim=16, pooled_projection_dim=32, out_channels=4,
                                            pos_embed_max_size=16)
        pipe = StableDiffusion3Pipeline(transformer, scheduler, vae, CLIPTextModelWithProjection(CLIPTextConfig(**clip)),
                                        tok, CLIPTextModelWithProjection(CLIPTextConfig(**clip)), tok, t5, tok)
    else:
        raise ValueError(f"unknown published pipeline {kind!r}; valid: flux, sd3_pipeline")
    pipe.save_pretrained(path)
    meta = {"backend": "flow", "flow": asdict(FlowSettings(steps=steps, text_tokens=text_tokens)),
            "latent_channels": 4, "latent_size": 16}
    (Path(path) / ADAPTER_FILE).write_text(json.dumps(meta, indent=1))
    return Path(path)
