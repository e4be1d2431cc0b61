"""BAGEL's network, written here from the published BAGEL-7B-MoT layout (ByteDance-Seed/Bagel, read to learn the
layout; no code taken): parameter names equal the checkpoint's `ema.safetensors`, so its state dict loads as is.

- `language_model`: a Qwen2 decoder (q/k/v with bias, RMSNorm q/k norms before RoPE) whose every layer holds two
  experts of the same shape: the understanding expert (Qwen2's names) and the generation expert (the same names with
  `_moe_gen`: q/k/v/o projections, q/k norms, the MLP, both layer norms, and the final `norm_moe_gen`). Text and
  ViT tokens go through the understanding expert, VAE-latent tokens through the generation one (`route`); attention
  is one softmax over the joint sequence (Mixture-of-Transformers).
- generation heads: `vae2llm` / `llm2vae` (a 2 x 2 patch of VAE latents <-> a token), `time_embedder` (sinusoidal
  t -> MLP), `latent_pos_embed` (fixed 2-D sin-cos table, a patch's row x side + column).
- understanding: `vit_model` (SigLIP; transformers' encoder layers, its patch embedding a Linear over 14 x 14 x 3
  patches as BAGEL stores it), `connector` (two Linear with GELU-tanh), `vit_pos_embed` (2-D sin-cos).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN
from transformers.models.qwen2.modeling_qwen2 import Qwen2MLP, Qwen2RMSNorm, Qwen2RotaryEmbedding, \
    apply_rotary_pos_emb

GEN = "_moe_gen"  # the generation expert's suffix in the checkpoint


def route(x: torch.Tensor, gen: torch.Tensor | None, und, gen_fn) -> torch.Tensor:
    """`und(x)` for the understanding tokens and `gen_fn(x)` for the generation ones; `gen` (B, L) marks the latter
    over x's first two dims (None: every token is an understanding token)."""
    if gen is None or not bool(gen.any()):
        return und(x)
    g = gen.reshape(-1)
    flat = x.reshape(g.numel(), *x.shape[2:])
    a, b = und(flat[~g]), gen_fn(flat[g])
    out = a.new_zeros(g.numel(), *a.shape[1:])
    out[~g], out[g] = a, b.to(a.dtype)
    return out.view(*x.shape[:2], *a.shape[1:])


class MoTAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, self.heads, self.kv_heads = c.hidden_size, c.num_attention_heads, c.num_key_value_heads
        self.head_dim = getattr(c, "head_dim", None) or d // self.heads
        for s in ("", GEN):
            setattr(self, "q_proj" + s, nn.Linear(d, self.heads * self.head_dim, bias=True))
            setattr(self, "k_proj" + s, nn.Linear(d, self.kv_heads * self.head_dim, bias=True))
            setattr(self, "v_proj" + s, nn.Linear(d, self.kv_heads * self.head_dim, bias=True))
            setattr(self, "o_proj" + s, nn.Linear(self.heads * self.head_dim, d, bias=False))
            setattr(self, "q_norm" + s, Qwen2RMSNorm(self.head_dim, eps=c.rms_norm_eps))
            setattr(self, "k_norm" + s, Qwen2RMSNorm(self.head_dim, eps=c.rms_norm_eps))

    def _proj(self, x, gen, name: str, heads: int) -> torch.Tensor:
        y = route(x, gen, getattr(self, name + "_proj"), getattr(self, name + "_proj" + GEN))
        y = y.view(*x.shape[:2], heads, self.head_dim)
        if name == "v":
            return y.transpose(1, 2)
        return route(y, gen, getattr(self, name + "_norm"), getattr(self, name + "_norm" + GEN)).transpose(1, 2)

    def forward(self, x, gen, cos, sin, allowed, past=None):
        """x (B, L, D); `allowed` (B, L, past + L) which keys each query sees; `past` the (k, v) of earlier tokens.
        Returns the output and this call's (k, v) joined to `past`."""
        q, k, v = self._proj(x, gen, "q", self.heads), self._proj(x, gen, "k", self.kv_heads), \
            self._proj(x, gen, "v", self.kv_heads)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        if past is not None:
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        rep = self.heads // self.kv_heads
        out = F.scaled_dot_product_attention(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1),
                                             attn_mask=allowed[:, None])
        out = out.transpose(1, 2).reshape(*x.shape[:2], self.heads * self.head_dim)
        return route(out, gen, self.o_proj, getattr(self, "o_proj" + GEN)), (k, v)


class MoTLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = MoTAttention(c)
        self.mlp, self.mlp_moe_gen = Qwen2MLP(c), Qwen2MLP(c)
        for name in ("input_layernorm", "post_attention_layernorm"):
            setattr(self, name, Qwen2RMSNorm(c.hidden_size, eps=c.rms_norm_eps))
            setattr(self, name + GEN, Qwen2RMSNorm(c.hidden_size, eps=c.rms_norm_eps))

    def forward(self, x, gen, cos, sin, allowed, past=None):
        h, kv = self.self_attn(route(x, gen, self.input_layernorm, self.input_layernorm_moe_gen), gen, cos, sin,
                               allowed, past)
        x = x + h
        x = x + route(x, gen, lambda y: self.mlp(self.post_attention_layernorm(y)),
                      lambda y: self.mlp_moe_gen(self.post_attention_layernorm_moe_gen(y)))
        return x, kv


class MoTDecoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList(MoTLayer(c) for _ in range(c.num_hidden_layers))
        self.norm, self.norm_moe_gen = Qwen2RMSNorm(c.hidden_size, c.rms_norm_eps), \
            Qwen2RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.rotary_emb = Qwen2RotaryEmbedding(config=c)

    def forward(self, x, gen, positions, allowed, past=None):
        """Final states (normed by each token's expert) and the per-layer (k, v) including `past`."""
        cos, sin = self.rotary_emb(x, positions)
        present = []
        for i, layer in enumerate(self.layers):
            x, kv = layer(x, gen, cos, sin, allowed, None if past is None else past[i])
            present.append(kv)
        return route(x, gen, self.norm, self.norm_moe_gen), present


class MoTLanguageModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.model = MoTDecoder(c)
        self.lm_head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)


def sincos_2d(dim: int, side: int) -> torch.Tensor:
    """(side^2, dim) fixed table, row-major over (row, column): the first half of `dim` encodes the column, the
    second the row, each as [sin, cos] at frequencies 1 / 10000^(k / (dim / 4))."""
    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4))
    rows, cols = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    half = [np.outer(g.reshape(-1), omega) for g in (cols, rows)]
    return torch.from_numpy(np.concatenate([f(h) for h in half for f in (np.sin, np.cos)], 1)).float()


class PositionEmbedding(nn.Module):
    def __init__(self, side: int, dim: int):
        super().__init__()
        self.pos_embed = nn.Parameter(sincos_2d(dim, side), requires_grad=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.pos_embed[ids]


class TimestepEmbedder(nn.Module):
    def __init__(self, dim: int, frequencies: int = 256):
        super().__init__()
        self.frequencies = frequencies
        self.mlp = nn.Sequential(nn.Linear(frequencies, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        half = self.frequencies // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t.float()[:, None] * freqs[None]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], -1).to(self.mlp[0].weight.dtype))


class Connector(nn.Module):
    def __init__(self, vit_dim: int, dim: int, act: str):
        super().__init__()
        self.fc1, self.fc2, self.act = nn.Linear(vit_dim, dim), nn.Linear(dim, dim), ACT2FN[act]

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, H/p x W/p, p x p x C): BAGEL's patch layout (row, column, then p, q, channel)."""
    n, c, h, w = x.shape
    return x.reshape(n, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1).reshape(n, (h // p) * (w // p), p * p * c)


def unpatchify(tokens: torch.Tensor, p: int, rows: int, cols: int) -> torch.Tensor:
    n, _, d = tokens.shape
    c = d // (p * p)
    return tokens.reshape(n, rows, cols, p, p, c).permute(0, 5, 1, 3, 2, 4).reshape(n, c, rows * p, cols * p)


def grid_ids(rows: int, cols: int, side: int, device=None) -> torch.Tensor:
    """Flattened position ids of a rows x cols patch grid in a side x side table (BAGEL's 'extrapolate' ids)."""
    r, c = torch.arange(rows, device=device), torch.arange(cols, device=device)
    return (r[:, None] * side + c).flatten()


class BagelNet(nn.Module):
    def __init__(self, llm_config, vit_config, shape):
        """`shape`: BagelShape (latent patch size, latent channels, table sides, connector activation)."""
        from transformers import SiglipVisionModel
        super().__init__()
        d, self.shape = llm_config.hidden_size, shape
        self.language_model = MoTLanguageModel(llm_config)
        patch_dim = shape.latent_patch_size ** 2 * shape.latent_channels
        self.time_embedder = TimestepEmbedder(d)
        self.vae2llm, self.llm2vae = nn.Linear(patch_dim, d), nn.Linear(d, patch_dim)
        self.latent_pos_embed = PositionEmbedding(shape.max_latent_size, d)
        vit_config.vision_use_head = False
        self.vit_model = nn.Module()  # BAGEL's names: vit_model.vision_model.<SigLIP's own names>
        self.vit_model.vision_model = SiglipVisionModel(vit_config)
        p, vd = vit_config.patch_size, vit_config.hidden_size
        # BAGEL stores the patch embedding as a Linear over (p, q, channel)-flattened patches
        self.vit_model.vision_model.embeddings.patch_embedding = nn.Linear(vit_config.num_channels * p * p, vd)
        self.connector = Connector(vd, d, shape.connector_act)
        self.vit_pos_embed = PositionEmbedding(shape.vit_max_patches, d)

    def latent_tokens(self, patches: torch.Tensor, t: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """(B, n, patch_dim) noisy latent patches at times t (B,) -> (B, n, D) token inputs."""
        return self.vae2llm(patches) + self.time_embedder(t)[:, None] + self.latent_pos_embed(ids)[None]

    def vit_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [-1, 1] -> (N, H/p x W/p, D) understanding tokens (ViT, connector, position table)."""
        vm = self.vit_model.vision_model
        p = vm.config.patch_size
        ids = grid_ids(pixels.shape[-2] // p, pixels.shape[-1] // p, self.shape.vit_max_patches, pixels.device)
        x = vm.embeddings.patch_embedding(patchify(pixels, p)) + vm.embeddings.position_embedding(ids)[None]
        x = vm.post_layernorm(vm.encoder(inputs_embeds=x).last_hidden_state)
        return self.connector(x) + self.vit_pos_embed(ids)[None]
