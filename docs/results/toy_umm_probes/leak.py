"""Probe: does the generator read an object from the tokens *before* it (teacher forcing)? For ground-truth scenes
of each tag's prompts, the probability mass the model puts, at each object's first (top-left) token and at its
third (bottom-left), on codes of the object's patch types with the right shape / the right colour / any object, under
the conditional logits and under CFG 3. With the prompt alone the first token cannot know where an object starts
(mass ~0.05 here) nor, for "a photo of a triangle", its colour (1 in 5).

    PYTHONPATH=. .venv/bin/python docs/results/toy_umm_probes/leak.py [checkpoint] [split ...]
"""
import collections
import random
import sys

import numpy as np
import torch

from codebook import codes_and_types
from models.janus import JanusAdapter, to_pixels
from toyworld.pretrain import code_usage, patch_types
from toyworld.prompts import load_split, scene_for
from toyworld.render import render
from toyworld.scene import COLORS, GRID, SHAPES


def code_parts(adapter):
    """Per code: colour, shape and quadrant of the patch type the VQ uses it for (-1: background or unseen)."""
    _, _, codes, types = codes_and_types(adapter, 400, 5)
    usage = code_usage(codes, types, adapter.model.model.vqmodel.quantize.num_embeddings)
    owner = usage.argmax(0)
    owner[usage.sum(0) == 0] = 0
    t = (owner - 1).clamp(min=0)
    parts = torch.stack([t // 12, (t % 12) // 4, t % 4])
    return torch.where(owner > 0, parts, torch.full_like(parts, -1))


def masses(adapter, metas, objs, parts):
    color, shape, quadrant = parts
    with torch.no_grad():
        tokens = adapter.model.model.vqmodel.encode(to_pixels(np.stack([render(o) for o in objs])))
        tokens = tokens.image_tokens.view(len(objs), -1)
        ids, uncond, mask = adapter.generation_prompts([m["prompt"] for m in metas])
        cond, free = adapter.image_logits(ids, mask, tokens).float(), adapter.image_logits(uncond, mask, tokens).float()
    out = collections.defaultdict(list)
    for name, logits in (("cond", cond), ("cfg3", free + 3 * (cond - free))):
        p = logits.softmax(-1)
        for i, scene in enumerate(objs):
            for o in scene:
                x0, y0 = int(o.cx) // GRID - 1, int(o.cy) // GRID - 1
                for q, (dy, dx) in ((0, (0, 0)), (2, (1, 0))):
                    here, at_q = p[i, (y0 + dy) * 8 + x0 + dx], quadrant == q
                    out[(name, q, "shape")].append(here[at_q & (shape == SHAPES.index(o.shape))].sum().item())
                    out[(name, q, "colour")].append(here[at_q & (color == COLORS.index(o.color))].sum().item())
                    out[(name, q, "object")].append(here[at_q].sum().item())
    return out


def main(checkpoint="models/toy_umm", *splits):
    torch.set_num_threads(2)
    adapter = JanusAdapter.from_pretrained(checkpoint, device="cpu")
    parts, rng = code_parts(adapter), random.Random(3)
    for split in splits or ("train", "heldout"):
        by_tag = collections.defaultdict(list)
        for m in load_split(split):
            by_tag[m["tag"]].append(m)
        for tag, pool in by_tag.items():
            metas = [rng.choice(pool) for _ in range(48)]
            stats = masses(adapter, metas, [scene_for(m, rng) for m in metas], parts)
            print(split, tag, " ".join(f"{n}/q{q}/{k}={np.mean(v):.2f}" for (n, q, k), v in sorted(stats.items())))


if __name__ == "__main__":
    main(*sys.argv[1:])
