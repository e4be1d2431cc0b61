"""Probe: does the generator compose a reserved colour-shape pair after 300 generation-only steps from the committed
toy UMM, with a fresh image-code head, under three arms (the LM keeps its pretrained weights)?

    base      plain head (re-initialised)
    factored  head rows of object codes = colour factor + (shape, quadrant) factor (torch parametrize), baked in after
    merged    codebook consolidated first (codebook.py: code id == patch type), fresh head and code embeddings

    .venv/bin/python docs/results/toy_umm_probes/generation.py {base|factored|merged} [steps]
"""
import collections
import sys
import time

import torch
import torch.nn as nn
import torch.nn.utils.parametrize as parametrize

from codebook import codes_and_types, consolidate
from toyworld.pretrain_stages import deterministic
from models.janus import JanusAdapter
from toyworld.evaluation import generation_score
from toyworld.oracle import detect
from toyworld.pretrain import JointData, generation_loss
from toyworld.prompts import load_split
from toyworld.scene import COLORS, SHAPES

PROMPTS = ["a photo of a purple triangle", "a photo of a green circle", "a photo of a yellow square",  # reserved
           "a photo of a red triangle"]


class Factored(nn.Module):
    """W = W * free + assign @ factors: rows of codes with factors are sums of shared factors only."""

    def __init__(self, assign, dim):
        super().__init__()
        self.register_buffer("assign", assign)
        self.register_buffer("free", (assign.sum(1) == 0).float()[:, None])
        self.factors = nn.Parameter(torch.randn(assign.shape[1], dim) * 0.02)

    def forward(self, w):
        return w * self.free + self.assign @ self.factors


def factor_assignment(codes, types, n_codes):
    """(codes, colours + shapes x quadrants) 0/1: each object code's colour and (shape, quadrant)."""
    assign = torch.zeros(n_codes, len(COLORS) + len(SHAPES) * 4)
    for c, t in zip(codes.flatten().tolist(), types.flatten().tolist()):
        if t:
            color, rest = divmod(t - 1, len(SHAPES) * 4)
            assign[c, color] = assign[c, len(COLORS) + rest] = 1
    return assign


def main(arm, steps):
    with deterministic(2):
        a = JanusAdapter.from_pretrained("models/toy_umm", device="cpu")
        _, _, codes, types = codes_and_types(a, 400, 5)
        head = a.model.model.generation_head.vision_head
        torch.manual_seed(0)
        nn.init.normal_(head.weight, std=0.02)
        nn.init.zeros_(head.bias)
        if arm == "factored":
            parametrize.register_parametrization(head, "weight", Factored(
                factor_assignment(codes, types, head.weight.shape[0]), head.weight.shape[1]))
        if arm == "merged":
            consolidate(a, codes, types)
            nn.init.normal_(a.model.model.generation_embeddings.weight)  # code ids changed meaning
        params = [p for n, p in a.model.named_parameters() if not n.startswith("model.vqmodel")]
        opt = torch.optim.AdamW(params, lr=1.5e-3, betas=(0.9, 0.98), weight_decay=0.01)
        data, t0 = JointData(a, 1), time.time()
        a.model.train()
        a.model.model.vqmodel.eval()
        for step in range(steps):
            loss = generation_loss(a, *data.generation(24))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            if step % 50 == 49:
                print(step + 1, round(loss.item(), 3), round(time.time() - t0), flush=True)
        a.model.eval()
        if arm == "factored":
            parametrize.remove_parametrizations(head, "weight", leave_parametrized=True)
        for split in ("test", "heldout"):
            metas = load_split(split)
            print(split, generation_score(a, metas[:: max(1, len(metas) // 40)], seed=0))
        for p in PROMPTS:
            out = a.sample([p], 16, 3.0, 1.0, a.generator(0))
            seen = collections.Counter(" + ".join(sorted(f"{d.color} {d.label}" for d in detect(im))) or "nothing"
                                       for im in out.images)
            print(p, seen.most_common(4))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 300)
