"""How each diffusers flow transformer is called: latent layout, timestep scale, conditioning, guidance, decoding.
The SDE and log-probs (models/flow_sde.py, models/diffusion.py) are the same for all of them; each family's
guidance is computed the same way in sampling and in the teacher-forced log-prob (both call `velocity`).

- sd3: SD3Transformer2DModel, latents (B, C, h, w), timestep t x 1000, prompt states + pooled vector, CFG against
  the empty prompt, AutoencoderKL with scaling/shift factors.
- qwen_image: QwenImageTransformer2DModel, latents packed 2x2 into tokens (B, h/2 x w/2, 4C), timestep t in [0, 1],
  prompt states with their mask (the Qwen2.5-VL's last states after Qwen-Image's system prompt, dropped), CFG
  rescaled to the conditional prediction's norm per token (as QwenImagePipeline does), AutoencoderKLQwenImage
  (one-frame video latents, per-channel mean / std).
- flux: FluxTransformer2DModel, latents packed 2x2 with (row, column) position ids, timestep t in [0, 1], T5
  states + CLIP pooled vector. FLUX.1-dev is guidance-distilled (`guidance_embeds`): the guidance scale is an input
  of one conditional pass, no empty-prompt branch; a FLUX without it gets true CFG against the empty prompt.
  AutoencoderKL with scaling/shift factors.
"""

from __future__ import annotations

import torch

from models.flow_sde import guided_velocity
from models.flow_text import TextCondition

# Qwen-Image's prompt template; its system part is dropped from the encoder states (QwenImagePipeline's drop_idx).
QWEN_IMAGE_PROMPT = ("<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, quantity, "
                     "text, spatial relationships of the objects and background:<|im_end|>\n<|im_start|>user\n{prompt}"
                     "<|im_end|>\n<|im_start|>assistant\n")


def pack(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h/2 * w/2, 4C): 2x2 latent patches as tokens (the _pack_latents of QwenImagePipeline
    and FluxPipeline)."""
    b, c, h, w = x.shape
    return x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, (h // 2) * (w // 2), c * 4)


def unpack(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The inverse of `pack`."""
    b, _, c4 = tokens.shape
    return tokens.view(b, h // 2, w // 2, c4 // 4, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(b, c4 // 4, h, w)


def scaled_decode(vae, latents: torch.Tensor) -> torch.Tensor:
    """AutoencoderKL with the pipeline's scaling and shift factors (SD3, FLUX): (N, 3, H, W) in [-1, 1]."""
    cfg = vae.config
    z = latents.to(vae.dtype) / cfg.scaling_factor + (cfg.shift_factor or 0.0)
    return vae.decode(z).sample


# LoRA targets (model.lora), the attention projections of the joint blocks as Flow-GRPO trains SD3
ATTENTION_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj", "add_v_proj", "to_add_out"]


class SD3Family:
    name, prompt_template = "sd3", None
    lora_targets = ATTENTION_TARGETS

    def velocity(self, transformer, x, t: float, cond: TextCondition, guidance: float) -> torch.Tensor:
        """Guided velocity; `cond` holds the prompts' rows then the empty prompt's."""
        both = torch.cat([x, x]).to(transformer.dtype)
        timestep = torch.full((len(both),), t * 1000.0, device=x.device)
        out = transformer(hidden_states=both, encoder_hidden_states=cond.states.to(both.dtype),
                          pooled_projections=cond.pooled.to(both.dtype), timestep=timestep).sample.float()
        c, u = out.chunk(2)
        return guided_velocity(c, u, guidance)

    def decode(self, vae, latents: torch.Tensor) -> torch.Tensor:
        return scaled_decode(vae, latents)


class QwenImageFamily:
    name, prompt_template = "qwen_image", QWEN_IMAGE_PROMPT
    # with the image and text MLPs, as verl's Flow-GRPO example trains Qwen-Image (examples/flowgrpo_trainer)
    lora_targets = ATTENTION_TARGETS + ["img_mlp.net.0.proj", "img_mlp.net.2", "txt_mlp.net.0.proj", "txt_mlp.net.2"]

    def velocity(self, transformer, x, t: float, cond: TextCondition, guidance: float) -> torch.Tensor:
        b, _, h, w = x.shape
        tokens = pack(torch.cat([x, x])).to(transformer.dtype)
        timestep = torch.full((2 * b,), t, device=x.device, dtype=tokens.dtype)
        out = transformer(hidden_states=tokens, encoder_hidden_states=cond.states.to(tokens.dtype),
                          encoder_hidden_states_mask=cond.mask, timestep=timestep,
                          img_shapes=[[(1, h // 2, w // 2)]] * (2 * b)).sample.float()
        c, u = out.chunk(2)
        guided = guided_velocity(c, u, guidance)
        # rescaled to the conditional prediction's norm per token, as QwenImagePipeline does
        guided = guided * (c.norm(dim=-1, keepdim=True) / guided.norm(dim=-1, keepdim=True).clamp(min=1e-12))
        return unpack(guided, h, w)

    def decode(self, vae, latents: torch.Tensor) -> torch.Tensor:
        cfg = vae.config
        shape = (1, cfg.z_dim, 1, 1, 1)
        mean = torch.tensor(cfg.latents_mean, device=latents.device).view(shape)
        std = torch.tensor(cfg.latents_std, device=latents.device).view(shape)
        z = (latents[:, :, None].float() * std + mean).to(vae.dtype)
        return vae.decode(z).sample[:, :, 0]


class FluxFamily:
    name, prompt_template = "flux", None
    lora_targets = ATTENTION_TARGETS

    def velocity(self, transformer, x, t: float, cond: TextCondition, guidance: float) -> torch.Tensor:
        from diffusers import FluxPipeline
        b, _, h, w = x.shape
        distilled = transformer.config.guidance_embeds
        text = cond.half(0) if distilled else cond
        tokens = pack(x if distilled else torch.cat([x, x])).to(transformer.dtype)
        n = len(tokens)
        extra = {"guidance": torch.full((n,), guidance, device=x.device, dtype=torch.float32)} if distilled else {}
        out = transformer(hidden_states=tokens, encoder_hidden_states=text.states.to(tokens.dtype),
                          pooled_projections=text.pooled.to(tokens.dtype),
                          timestep=torch.full((n,), t, device=x.device, dtype=tokens.dtype),
                          img_ids=FluxPipeline._prepare_latent_image_ids(n, h // 2, w // 2, x.device, tokens.dtype),
                          txt_ids=torch.zeros(text.states.shape[1], 3, device=x.device, dtype=tokens.dtype),
                          **extra).sample.float()
        v = out if distilled else guided_velocity(*out.chunk(2), guidance)
        return unpack(v, h, w)

    def decode(self, vae, latents: torch.Tensor) -> torch.Tensor:
        return scaled_decode(vae, latents)


FAMILIES = {"SD3Transformer2DModel": SD3Family(), "QwenImageTransformer2DModel": QwenImageFamily(),
            "FluxTransformer2DModel": FluxFamily()}
VAES = {"SD3Transformer2DModel": "AutoencoderKL", "QwenImageTransformer2DModel": "AutoencoderKLQwenImage",
        "FluxTransformer2DModel": "AutoencoderKL"}
