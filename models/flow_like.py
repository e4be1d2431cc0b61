"""A tiny flow model in the on-disk layout the diffusion adapter reads (models/diffusion.py): an SD3 or a
Qwen-Image transformer, a 4x VAE of the same family giving 64 px images, and a tiny Qwen2.5-VL as text encoder and
understanding side. Random weights; for CPU tests of the diffusion backend."""

from __future__ import annotations

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
