"""Probe: how many VQ codes each patch type of the committed toy UMM uses, and whether consolidating them (code id
== patch type, every synonym a copy of its type's most-used entry) keeps round trips exact. Run from the repo root:

    .venv/bin/python docs/results/toy_umm_probes/codebook.py
"""
import random

import torch

from toyworld.pretrain_stages import deterministic
from models.janus import JanusAdapter, to_pixels, to_uint8
from toyworld.oracle import evaluate
from toyworld.pretrain import code_usage, consolidate_codebook, patch_types, random_scenes
from toyworld.prompts import universe


def codes_and_types(adapter, n, seed):
    metas, objs, images = random_scenes(random.Random(seed), n, list(universe()))
    with torch.no_grad():
        codes = adapter.model.model.vqmodel.encode(to_pixels(images)).image_tokens.view(n, -1)
    return metas, images, codes, patch_types(objs)


@torch.no_grad()
def consolidate(adapter, codes, types) -> list[int]:
    """`toyworld.pretrain.consolidate_codebook` on the model in place; returns the codes each type used before."""
    quantizer = adapter.model.model.vqmodel.quantize
    usage = code_usage(codes, types, quantizer.num_embeddings)
    quantizer.embedding.weight.copy_(consolidate_codebook(quantizer.embedding.weight, usage))
    return (usage > 0).sum(1).tolist()


def main():
    with deterministic(2):
        adapter = JanusAdapter.from_pretrained("models/toy_umm", device="cpu")
        _, _, codes, types = codes_and_types(adapter, 400, 5)
        print("codes per patch type (0 = background):", consolidate(adapter, codes, types))
        metas, images, codes, types = codes_and_types(adapter, 300, 9)
        print("after consolidation, code == patch type on", (codes == types).float().mean().item(), "of tokens")
        recon = adapter.reconstruct(images)
        print("oracle on round trips", sum(evaluate(i, m).correct for i, m in zip(recon, metas)) / len(metas))
        decoded = to_uint8(adapter.model.decode_image_tokens(types))
        print("oracle on decoded patch types", sum(evaluate(i, m).correct for i, m in zip(decoded, metas)) / len(metas))


if __name__ == "__main__":
    main()
