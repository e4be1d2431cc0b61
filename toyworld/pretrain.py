"""Pretraining of the toy UMM: data streams and losses (pure functions; the loop lives in launch/pretrain_toy.py).

Stage 1, VQ: the library's VQ forward has no straight-through path, so we train encoder -> cosine-nearest code
(straight-through) -> decoder ourselves, with commitment/codebook losses and dead-code resets, then store the
normalised codebook so `vqmodel.encode` / `decode_image_tokens` reproduce training exactly.
Stage 2, joint: text -> image tokens (train-split prompts only, unconditional dropout for CFG) at a smaller
share of the batch than understanding (multi-turn yes/no questions, captions) and rubric writing.
"""

from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn.functional as F

from models.janus import JanusAdapter, to_pixels
from models.toy import RUBRIC_INSTRUCTION
from rewards.rubric import rubric_from_metadata, rubric_text
from toyworld.prompts import load_split, scene_for, universe
from toyworld.questions import ask
from toyworld.render import render
from toyworld.scene import BACKGROUND

IGNORE = -100


def random_scenes(rng: random.Random, n: int, pool: list[dict], avoid_reserved: bool = False):
    metas = [rng.choice(pool) for _ in range(n)]
    objs = [scene_for(m, rng, avoid_reserved) for m in metas]
    return metas, objs, np.stack([render(o) for o in objs])


# ---- stage 1: VQ ------------------------------------------------------------------------------------
def encode_latents(vq, pixels: torch.Tensor) -> torch.Tensor:
    """Unit-norm encoder latents (B, D, h, w): codes are compared by cosine."""
    return F.normalize(vq.quant_conv(vq.encoder(pixels)), dim=1)


def vq_loss(vq, pixels: torch.Tensor, quantize: bool = True, beta: float = 0.25):
    """Reconstruction (foreground-weighted) + codebook + commitment losses; returns (loss, code ids).
    With quantize=False it is a plain autoencoder (the warm-up that gives k-means meaningful latents)."""
    z = encode_latents(vq, pixels)
    idx, latent, extra = None, z, 0.0
    if quantize:
        codebook = F.normalize(vq.quantize.embedding.weight, dim=1)
        idx = (z.permute(0, 2, 3, 1).reshape(-1, z.shape[1]) @ codebook.T).argmax(1)
        zq = codebook[idx].view(z.shape[0], z.shape[2], z.shape[3], -1).permute(0, 3, 1, 2)
        latent = z + (zq - z).detach()  # straight-through
        extra = F.mse_loss(zq, z.detach()) + beta * F.mse_loss(z, zq.detach())
    recon = vq.decoder(vq.post_quant_conv(latent))
    weight = 1 + 9 * _foreground(pixels)
    rec = (weight * (recon - pixels) ** 2).mean() + (weight * (recon - pixels).abs()).mean()
    return rec + extra, idx


@torch.no_grad()
def kmeans_init(vq, pixels: torch.Tensor, generator: torch.Generator, iters: int = 15) -> None:
    """Spherical k-means of the warmed-up encoder's latents seeds the codebook."""
    z = encode_latents(vq, pixels).permute(0, 2, 3, 1).reshape(-1, vq.quantize.embedding_dim)
    k = vq.quantize.num_embeddings
    centers = z[torch.randperm(len(z), generator=generator)[:k]].clone()
    for _ in range(iters):
        assign = (z @ centers.T).argmax(1)
        sums = torch.zeros_like(centers).index_add_(0, assign, z)
        counts = torch.bincount(assign, minlength=k)
        empty = counts == 0
        centers = torch.where(empty[:, None], z[torch.randint(0, len(z), (k,), generator=generator)], sums)
        centers = F.normalize(centers, dim=1)
    vq.quantize.embedding.weight.copy_(centers)


def _foreground(pixels: torch.Tensor) -> torch.Tensor:
    bg = torch.tensor(BACKGROUND, dtype=pixels.dtype).view(1, 3, 1, 1) / 127.5 - 1
    return ((pixels - bg).abs().amax(1, keepdim=True) > 0.1).float()


@torch.no_grad()
def reset_dead_codes(vq, usage: torch.Tensor, pixels: torch.Tensor, generator: torch.Generator) -> int:
    """Re-seed never-used codes with encoder latents of the batch's object tokens (background tokens are
    plentiful and already well served, so seeding from them would waste the codes)."""
    dead = (usage == 0).nonzero().squeeze(1)
    if len(dead) == 0:
        return 0
    z = encode_latents(vq, pixels)
    fg = F.adaptive_max_pool2d(_foreground(pixels), z.shape[-2:]).flatten()
    z = z.permute(0, 2, 3, 1).reshape(-1, vq.quantize.embedding_dim)
    pool = z[fg > 0] if (fg > 0).any() else z
    pick = torch.randint(0, pool.shape[0], (len(dead),), generator=generator)
    vq.quantize.embedding.weight[dead] = pool[pick] + 0.01 * torch.randn(len(dead), z.shape[1], generator=generator)
    return len(dead)


@torch.no_grad()
def finalize_codebook(vq) -> None:
    vq.quantize.embedding.weight.copy_(F.normalize(vq.quantize.embedding.weight, dim=1))


# ---- stage 2: joint ---------------------------------------------------------------------------------
class JointData:
    """Deterministic streams of training examples for the joint stage."""

    def __init__(self, adapter: JanusAdapter, seed: int, questions_per_image: int = 8, uncond_p: float = 0.1):
        self.a, self.rng = adapter, random.Random(seed)
        self.train_pool, self.all_pool = load_split("train"), list(universe())
        self.k, self.uncond_p = questions_per_image, uncond_p

    def generation(self, n: int):
        metas, _, images = random_scenes(self.rng, n, self.train_pool, avoid_reserved=True)
        prompts = [m["prompt"] for m in metas]
        ids, uncond, mask = self.a.generation_prompts(prompts)
        drop = torch.tensor([self.rng.random() < self.uncond_p for _ in prompts])
        ids = torch.where(drop[:, None], uncond, ids)
        with torch.no_grad():
            codes = self.a.model.model.vqmodel.encode(to_pixels(images)).image_tokens.view(n, -1)
        return ids, mask, codes

    def understanding(self, n: int):
        """Multi-turn yes/no (and, for half the rows, a caption first): loss on answers and captions only."""
        metas, objs, images = random_scenes(self.rng, n, self.all_pool)
        texts = []
        for meta, o in zip(metas, objs):
            parts = [(self.a._fill("image"), False)]  # (text, supervised?)
            if self.rng.random() < 0.5:
                parts += [("<cap>", False), (meta["prompt"], True)]
            for _ in range(self.k):
                q = ask(o, self.rng)
                if q:
                    parts += [(f"<q> {q.text} <a>", False), (q.answer, True)]
            parts.append(("<eos>", False))
            texts.append(parts)
        return self._encode(texts), images, objs

    def rubric(self, n: int):
        metas = [self.rng.choice(self.all_pool) for _ in range(n)]
        texts = [[(self.a._fill("write", instruction=RUBRIC_INSTRUCTION, prompt=m["prompt"]), False),
                  (rubric_text(rubric_from_metadata(m)) + " <eos>", True)] for m in metas]
        return self._encode(texts)

    def _encode(self, rows):
        ids_rows, lab_rows = [], []
        for parts in rows:
            ids, labels = [], []
            for text, sup in parts:
                t = self.a.tok(text, add_special_tokens=False).input_ids
                ids += t
                labels += t if sup else [IGNORE] * len(t)
            ids_rows.append(ids)
            lab_rows.append(labels)
        width = max(map(len, ids_rows))
        ids = torch.full((len(rows), width), self.a.pad_id, dtype=torch.long)
        labels = torch.full_like(ids, IGNORE)
        for i, (r, l) in enumerate(zip(ids_rows, lab_rows)):
            ids[i, : len(r)], labels[i, : len(l)] = torch.tensor(r), torch.tensor(l)
        return ids, labels


def generation_loss(a: JanusAdapter, ids, mask, codes) -> torch.Tensor:
    logits = a.image_logits(ids, mask, codes)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), codes.reshape(-1))


def background_tokens(images: np.ndarray, grid: int = 8) -> torch.Tensor:
    """(B, grid*grid) True where an image token's patch holds no object pixel."""
    fg = F.adaptive_max_pool2d(_foreground(to_pixels(images)), grid)
    return fg.flatten(1) == 0


def text_loss(a: JanusAdapter, ids, labels, images: np.ndarray | None = None, show_background: float = 1.0,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Next-token loss on labelled tokens. `show_background` < 1 hides that share of background image tokens
    from attention without shifting positions: a curriculum against the dilution of attention by 60 identical
    background tokens. Measured: it did not make yes/no matching learn (docs/results/toy_umm.md)."""
    embeds = a.model.get_input_embeddings()(ids)
    mask = (ids != a.pad_id).long()
    attend = mask
    if images is not None:
        slots = ids == a.model.config.image_token_id
        embeds = embeds.masked_scatter(slots.unsqueeze(-1), a.image_features(images).to(embeds.dtype))
        if show_background < 1.0:
            bg = background_tokens(images, int(slots[0].sum().item() ** 0.5))
            hide = bg & (torch.rand(bg.shape, generator=generator) >= show_background)
            attend = mask.clone()
            attend[slots] = (~hide).long().flatten()
    hidden = a._lm(embeds, mask, attend=attend).last_hidden_state
    logits = a.model.lm_head(hidden[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=IGNORE)
