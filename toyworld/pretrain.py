"""Pretraining of the toy UMM: data streams and losses (pure functions; the stages: toyworld/pretrain_stages.py).

Stage 1, VQ: the library's VQ forward has no straight-through path, so we train encoder -> cosine-nearest code
(straight-through) -> decoder ourselves, with commitment/codebook losses and dead-code resets, then store the
normalised codebook so `vqmodel.encode` / `decode_image_tokens` reproduce training exactly.
Stage 2, understanding on symbolic scenes: the LM learns yes/no questions and captions with each object token
holding the word embeddings of its colour and shape, while an alignment loss teaches the vision encoder to produce
exactly those features from pixels. (Measured: from pixels directly, question-image matching sat at the answer
prior for 400-1300 steps in every variant tried; docs/results/toy_umm.md.)
Stage 3, joint: text -> image tokens (train-split prompts only, unconditional dropout for CFG) at a smaller
share of the batch than understanding (now on the model's own vision features) and rubric writing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from models.janus import JanusAdapter, to_pixels
from rewards.rubric import rubric_from_metadata, rubric_text
from toyworld.prompts import load_split, names_a_color, plural, scene_for, universe
from toyworld.questions import KINDS, ask
from toyworld.render import render
from toyworld.scene import BACKGROUND, CANVAS, COLORS, GRID, SHAPES
from toyworld.vocabulary import RUBRIC_INSTRUCTION

IGNORE = -100


@dataclass
class SegmentBatch:
    ids: torch.Tensor  # (B, L)
    labels: torch.Tensor  # (B, L), IGNORE where unsupervised
    positions: torch.Tensor  # (B, L)
    attend: torch.Tensor  # (B, 1, L, L) bool, True where a query may attend a key


def random_scenes(rng: random.Random, n: int, pool: list[dict]):
    metas = [rng.choice(pool) for _ in range(n)]
    objs = [scene_for(m, rng) for m in metas]
    return metas, objs, np.stack([render(o) for o in objs])


# ---- stage 1: VQ ------------------------------------------------------------------------------------
def encode_latents(vq, pixels: torch.Tensor) -> torch.Tensor:
    """Unit-norm encoder latents (B, D, h, w): codes are compared by cosine."""
    return F.normalize(vq.quant_conv(vq.encoder(pixels)), dim=1)


PROTOTYPE_SCALE = 16.0  # cosine-softmax temperature: saturates once a latent is ~0.3 closer to its own type
N_PATCH_TYPES = 1 + len(COLORS) * len(SHAPES) * 4  # background, or (colour, shape, quadrant of the object)


def patch_types(objs_per_image: list[list], grid: int = CANVAS // GRID) -> torch.Tensor:
    """(B, grid*grid) class of each image token: 0 for background, else colour x shape x quadrant. Objects are
    exactly 2 x 2 tokens on the token grid (toyworld.scene), so this is the whole vocabulary of token contents."""
    out = torch.zeros(len(objs_per_image), grid, grid, dtype=torch.long)
    for i, objs in enumerate(objs_per_image):
        for o in objs:
            x0, y0 = int(o.cx) // GRID - 1, int(o.cy) // GRID - 1
            base = 1 + (COLORS.index(o.color) * len(SHAPES) + SHAPES.index(o.shape)) * 4
            for q, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
                out[i, y0 + dy, x0 + dx] = base + q
    return out.flatten(1)


def vq_loss(vq, pixels: torch.Tensor, quantize: bool = True, beta: float = 0.25, types: torch.Tensor | None = None,
            prototypes: torch.Tensor | None = None):
    """Reconstruction (foreground-weighted) + codebook + commitment losses; returns (loss, code ids).
    With quantize=False it is a plain autoencoder (the warm-up that gives k-means meaningful latents).
    With `types` and `prototypes` (N_PATCH_TYPES x D), a cosine classifier of each latent's patch type is trained
    alongside: it keeps latents of different token contents apart *in cosine*, the metric codes are chosen by, so
    no code is shared by e.g. a circle's and a square's corner. Measured: without it, 54 of 434 used codes were
    shared and the oracle passed 70-81% of round trips; with it, 100% after 600-700 steps."""
    z = encode_latents(vq, pixels)
    aux = 0.0
    if types is not None and prototypes is not None:
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        logits = PROTOTYPE_SCALE * flat @ F.normalize(prototypes, dim=1).T
        aux = F.cross_entropy(logits, types.reshape(-1))
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
    return rec + extra + aux, idx


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


def code_usage(codes: torch.Tensor, types: torch.Tensor, n_codes: int) -> torch.Tensor:
    """(N_PATCH_TYPES, n_codes) how often each patch type was encoded as each code."""
    counts = torch.zeros(N_PATCH_TYPES, n_codes)
    return counts.index_put_((types.flatten(), codes.flatten()), torch.ones(types.numel()), accumulate=True)


@torch.no_grad()
def consolidate_codebook(codebook: torch.Tensor, usage: torch.Tensor) -> torch.Tensor:
    """A codebook in which code t holds patch type t's most-used entry and every other code a copy of its own
    type's (unused codes: background's), so the encoder's nearest code for a patch is its type and any code still
    decodes to its content. Why: VQ training spreads one token content over synonymous codes that decode alike
    (measured on the committed model: 295 codes for background, 1-7 per object type), so the generator had to
    guess which synonym the encoder's context picked; its loss sat near 1.4 nats a token where the layout's
    entropy is ~0.15 (estimated). Raises if a type was never seen (it would have no code)."""
    if len(codebook) < N_PATCH_TYPES:
        raise ValueError(f"a codebook of {len(codebook)} codes has fewer codes than the {N_PATCH_TYPES} patch types")
    missing = (usage.sum(1) == 0).nonzero().flatten().tolist()
    if missing:
        raise ValueError(f"patch types {missing} never occurred in the usage sample; use more scenes")
    owner, canonical = usage.argmax(0), usage.argmax(1)
    out = codebook[canonical[owner]].clone()
    out[: len(canonical)] = codebook[canonical]
    return out


@torch.no_grad()
def retarget_codes(codebook: torch.Tensor, gen_embeddings: torch.Tensor, head_weight: torch.Tensor,
                   head_bias: torch.Tensor, usage: torch.Tensor, unused_logit: float = -30.0) -> None:
    """After training, make code t mean patch type t (`consolidate_codebook`) and keep what the generator learned:
    code t's input embedding and head row become those of type t's most-used code; the other codes (copies that
    the encoder never picks) get a logit bias of `unused_logit`. In place. Why: with synonymous codes the encoder
    picks a background synonym from the pixels *around* an object, so in teacher-forced training the tokens before
    an object already announced it and the generator learned to read that leak instead of the prompt (measured
    on the 2026-11-26 model: at an object's first token it put 0.88 of the mass on the right shape teacher-forced
    on train prompts, while sampling "a photo of a blue circle" started a circle 12 times in 88)."""
    n = N_PATCH_TYPES
    canonical, owner = usage.argmax(1), usage.argmax(0)
    source = canonical[owner].clone()
    source[:n] = canonical
    codebook.copy_(consolidate_codebook(codebook, usage))
    for table in (gen_embeddings, head_weight, head_bias):
        table.copy_(table[source].clone())
    head_bias[n:] = unused_logit


def type_factor_assignment(n_codes: int) -> torch.Tensor:
    """(n_codes, colours + shapes x quadrants) 0/1: object code t < N_PATCH_TYPES (code == patch type) is its
    colour plus its (shape, quadrant); background and unused codes have no factors."""
    per_color = len(SHAPES) * 4
    assign = torch.zeros(n_codes, len(COLORS) + per_color)
    for t in range(1, N_PATCH_TYPES):
        color, rest = divmod(t - 1, per_color)
        assign[t, color] = assign[t, len(COLORS) + rest] = 1.0
    return assign


class TypeFactored(torch.nn.Module):
    """A `torch.nn.utils.parametrize` parametrization of a per-code table (head rows, input embeddings, biases):
    object rows are a colour factor plus a (shape, quadrant) factor, other rows stay free. Factors start from the
    table's own two-way means, so registering it changes the table little. Why: a free row per (colour, shape)
    lets the generator tie colour words to shapes; measured after `retarget_codes`, 300 generation steps, the
    factored generator completed 44 of 48 started objects coherently against ~half before."""

    def __init__(self, table: torch.Tensor):
        super().__init__()
        assign = type_factor_assignment(table.shape[0])
        self.register_buffer("assign", assign)
        self.register_buffer("free", (assign.sum(1) == 0).to(table.dtype).view(-1, *[1] * (table.dim() - 1)))
        objects = table[1:N_PATCH_TYPES].detach().reshape(len(COLORS), len(SHAPES) * 4, *table.shape[1:])
        grand = objects.mean((0, 1))
        self.factors = torch.nn.Parameter(torch.cat([objects.mean(1), objects.mean(0) - grand]).clone())

    def forward(self, table: torch.Tensor) -> torch.Tensor:
        factored = torch.tensordot(self.assign, self.factors, dims=1)
        return table * self.free + factored


# ---- stage 2: joint ---------------------------------------------------------------------------------
class JointData:
    """Deterministic streams of training examples for the joint stage."""

    def __init__(self, adapter: JanusAdapter, seed: int, questions_per_image: int = 8, uncond_p: float = 0.1,
                 codes_are_types: bool = False, tag_balanced: bool = False):
        self.a, self.rng, self.codes_are_types = adapter, random.Random(seed), codes_are_types
        self.all_pool, self.tag_balanced = list(universe()), tag_balanced
        self.use_generation_prompts(load_split("train"))
        self.k, self.uncond_p, self.hard_p = questions_per_image, uncond_p, 1.0
        self.kinds = KINDS  # question kinds drawn uniformly from this tuple (repeat a kind to weight it)
        self.color_only_p = 0.0  # share of colour-naming generation rows whose shape words are hidden (`generation`)
        shape_words = " ".join(w for s in SHAPES for w in (s, plural(s)))
        self.shape_ids = torch.tensor(adapter.tok(shape_words, add_special_tokens=False).input_ids)

    def generation(self, n: int):
        """(prompt ids, mask, target codes) of train prompts (uniform over prompts, or `tag_balanced`); with a
        consolidated codebook (`codes_are_types`) the codes are the scenes' patch types, which is what the encoder
        gives (checked after the VQ stage) without running it."""
        metas = self.generation_metas(n)
        objs = [scene_for(m, self.rng) for m in metas]
        prompts = [m["prompt"] for m in metas]
        ids, uncond, mask = self.a.generation_prompts(prompts)
        drop = torch.tensor([self.rng.random() < self.uncond_p for _ in prompts])
        ids = torch.where(drop[:, None], uncond, ids)
        if self.color_only_p:  # "a photo of a red <pad>" -> a red triangle: each colour word learned on its own
            hide = torch.tensor([names_a_color(m) and self.rng.random() < self.color_only_p for m in metas])
            ids = torch.where(hide[:, None] & torch.isin(ids, self.shape_ids), self.a.pad_id, ids)
        if self.codes_are_types:
            return ids, mask, patch_types(objs)
        with torch.no_grad():
            pixels = to_pixels(np.stack([render(o) for o in objs]))
            codes = self.a.model.model.vqmodel.encode(pixels).image_tokens.view(n, -1)
        return ids, mask, codes

    def use_generation_prompts(self, metas: list[dict]) -> None:
        """Generation prompts from now on, uniform or tag by tag; train prompts only (the splits' promise: no test or
        heldout prompt is ever a pretraining target)."""
        if not metas:
            raise ValueError("no generation prompts to draw from")
        train = {m["prompt"] for m in load_split("train")}
        outside = [m["prompt"] for m in metas if m["prompt"] not in train]
        if outside:
            raise ValueError(f"{len(outside)} generation prompts are not train prompts, e.g. {outside[0]!r}: only "
                             f"the train split may be a pretraining target")
        self.train_pool = list(metas)
        tags = dict.fromkeys(m["tag"] for m in self.train_pool) if self.tag_balanced else {}
        self.train_by_tag = [[m for m in self.train_pool if m["tag"] == t] for t in tags]  # empty: uniform

    def generation_metas(self, n: int) -> list[dict]:
        if self.train_by_tag:  # each GenEval tag equally likely, then a prompt of that tag
            return [self.rng.choice(self.rng.choice(self.train_by_tag)) for _ in range(n)]
        return [self.rng.choice(self.train_pool) for _ in range(n)]

    def understanding(self, n: int):
        """Per image: a caption (half the rows) and yes/no questions, each an isolated segment after the image
        (see `segment_batch`), so no question can read another's answer or the caption. Loss on answers and
        captions only. (Asking each question also of an image with the opposite answer, VQA v2's balanced pairs,
        stalled at exactly ln 2 for 500 steps; our reading: with no answer prior to learn first, nothing routes
        the question to the answer position.)"""
        metas, objs, images = random_scenes(self.rng, n, self.all_pool)
        rows = [[[("<cap>", False), (m["prompt"] + " <eos>", True)]] if self.rng.random() < 0.5 else [] for m in metas]
        for i, o in enumerate(objs):
            for _ in range(self.k):
                q = ask(o, self.rng, hard_p=self.hard_p, kinds=self.kinds)
                if q:
                    rows[i].append([(f"<q> {q.text} <a>", False), (q.answer, True)])
        return self.segment_batch(self.a._fill("image"), rows), images, objs

    def segment_batch(self, prefix: str, rows: list[list[list[tuple[str, bool]]]]) -> "SegmentBatch":
        """Rows of [prefix, segment 1, segment 2, ...] where every segment attends to the prefix and to itself
        only, and restarts its positions after the prefix: k independent examples share one prefix encoding."""
        head = self.a.tok(prefix, add_special_tokens=False).input_ids
        encoded = []
        for segments in rows:
            ids, labels, seg = list(head), [IGNORE] * len(head), [0] * len(head)
            pos = list(range(len(head)))
            for k, parts in enumerate(segments, start=1):
                n0 = len(ids)
                for text, sup in parts:
                    t = self.a.tok(text, add_special_tokens=False).input_ids
                    ids += t
                    labels += t if sup else [IGNORE] * len(t)
                seg += [k] * (len(ids) - n0)
                pos += range(len(head), len(head) + len(ids) - n0)
            encoded.append((ids, labels, seg, pos))
        width = max(len(e[0]) for e in encoded)
        out = SegmentBatch(torch.full((len(rows), width), self.a.pad_id, dtype=torch.long),
                           torch.full((len(rows), width), IGNORE, dtype=torch.long),
                           torch.zeros((len(rows), width), dtype=torch.long),
                           torch.zeros((len(rows), 1, width, width), dtype=torch.bool))
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        for i, (ids, labels, seg, pos) in enumerate(encoded):
            m = len(ids)
            out.ids[i, :m], out.labels[i, :m], out.positions[i, :m] = map(torch.tensor, (ids, labels, pos))
            s = torch.tensor(seg)
            allowed = (s[None, :] == 0) | (s[None, :] == s[:, None])
            out.attend[i, 0, :m, :m] = allowed & causal[:m, :m]
            out.attend[i, 0, m:, 0] = True  # padding queries look at BOS only (an all-masked row is NaN)
        return out

    def rubric(self, n: int):
        """(ids, labels) of rubric-writing rows: one segment each, loss on the rubric text."""
        metas = [self.rng.choice(self.all_pool) for _ in range(n)]
        rows = [[[(self.a._fill("write", instruction=RUBRIC_INSTRUCTION, prompt=m["prompt"]), False),
                  (rubric_text(rubric_from_metadata(m)) + " <eos>", True)]] for m in metas]
        batch = self.segment_batch("", rows)
        return batch.ids, batch.labels


def generation_loss(a: JanusAdapter, ids, mask, codes) -> torch.Tensor:
    logits = a.image_logits(ids, mask, codes)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), codes.reshape(-1))


POSITION_WORDS = ("right", "below")  # x and y axes of the symbolic scene: the words spatial questions use


def object_centres(objs_per_image: list[list], grid: int = CANVAS // GRID) -> torch.Tensor:
    """(B, grid*grid, 2) centre (x, y) in [-1, 1] of the object each image token belongs to; zeros on background."""
    out = torch.zeros(len(objs_per_image), grid, grid, 2)
    for i, objs in enumerate(objs_per_image):
        for o in objs:
            x0, y0 = int(o.cx) // GRID - 1, int(o.cy) // GRID - 1
            out[i, y0: y0 + 2, x0: x0 + 2] = torch.tensor([2 * o.cx / CANVAS - 1, 2 * o.cy / CANVAS - 1])
    return out.flatten(1, 2)


def symbolic_features(a: JanusAdapter, objs_per_image: list[list]) -> torch.Tensor:
    """(B, n_image_tokens, hidden) "images" written in words: each object token holds the word embeddings of its
    colour and shape plus its object's centre along the embeddings of "right" (x) and "below" (y); background
    tokens hold zeros. The centre makes where-questions a comparison of two objects' features (measured without
    it: spatial 0.62, count 0.59 while object/attribute reached 1.00). Gradients reach the colour and shape
    embeddings, not the axes: measured, with gradients on the axes the matching circuit did not form (und loss
    0.41 after the symbolic phase, rubric loss stuck at 0.15) and with them detached it did (0.19, 0.03)."""
    types = patch_types(objs_per_image)
    table = a.model.get_input_embeddings()
    color_ids = torch.tensor(a.tok.convert_tokens_to_ids(list(COLORS)))
    shape_ids = torch.tensor(a.tok.convert_tokens_to_ids(list(SHAPES)))
    words = table(color_ids)[:, None] + table(shape_ids)[None, :]  # (colours, shapes, hidden)
    per_type = torch.cat([torch.zeros_like(words[:1, 0]), words.reshape(-1, words.shape[-1]).repeat_interleave(4, 0)])
    axes = table(torch.tensor(a.tok.convert_tokens_to_ids(list(POSITION_WORDS)))).detach()  # (2, hidden)
    return per_type[types] + object_centres(objs_per_image) @ axes


def alignment_loss(features: torch.Tensor, symbolic: torch.Tensor) -> torch.Tensor:
    """Squared distance (per token, summed over channels) from the vision features to the symbolic ones, which
    are targets only (detached): it puts image patches where the question words already live."""
    return F.mse_loss(features, symbolic.detach()) * features.shape[-1]


def text_loss(a: JanusAdapter, ids, labels, features: torch.Tensor | None = None, positions=None,
              attend=None) -> torch.Tensor:
    """Next-token loss on labelled tokens; `features` (B, n_image_tokens, hidden) fill the <image> slots.
    `positions` / `attend` (a 4D boolean mask) come from `JointData.segment_batch`; by default positions and a
    causal mask follow padding."""
    embeds = a.model.get_input_embeddings()(ids)
    mask = (ids != a.pad_id).long()
    if features is not None:
        slots = ids == a.model.config.image_token_id
        embeds = embeds.masked_scatter(slots.unsqueeze(-1), features.to(embeds.dtype))
    hidden = a._lm(embeds, mask, attend=attend, positions=positions).last_hidden_state
    logits = a.model.lm_head(hidden[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=IGNORE)


def segment_loss(a: JanusAdapter, batch: SegmentBatch, features: torch.Tensor,
                 attend: torch.Tensor | None = None) -> torch.Tensor:
    attend = batch.attend if attend is None else attend
    return text_loss(a, batch.ids, batch.labels, features, batch.positions, attend)


def without_background(a: JanusAdapter, batch: SegmentBatch, objs_per_image: list[list]) -> torch.Tensor:
    """`batch.attend` with background image tokens hidden as keys: the few object tokens are then all there is
    to match a question against (the symbolic phase's easier start)."""
    visible = torch.ones_like(batch.ids, dtype=torch.bool)
    visible[batch.ids == a.model.config.image_token_id] = (patch_types(objs_per_image) > 0).flatten()
    return batch.attend & visible[:, None, None, :]
