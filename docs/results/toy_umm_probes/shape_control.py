"""Probe: which shape the committed generator draws at an object's first (top-left) token, and whether the other three
tokens of that 2 x 2 object match it. Codes map to patch types by the VQ's usage on random scenes.

    .venv/bin/python docs/results/toy_umm_probes/shape_control.py [checkpoint]
"""
import sys, collections, random, torch
from codebook import codes_and_types
from models.janus import JanusAdapter
from toyworld.pretrain import code_usage
from toyworld.scene import COLORS, SHAPES
torch.set_num_threads(2)
a = JanusAdapter.from_pretrained(sys.argv[1] if len(sys.argv) > 1 else "models/toy_umm", device="cpu")
_, _, codes, types = codes_and_types(a, 400, 5)
use = code_usage(codes, types, a.model.model.vqmodel.quantize.num_embeddings)
owner = use.argmax(0); owner[use.sum(0) == 0] = -1
def name(t):
    c, r = divmod(t - 1, 12); s, q = divmod(r, 4); return COLORS[c], SHAPES[s], q
for p in ["a photo of a triangle", "a photo of a red triangle", "a photo of a blue circle", "a photo of a purple triangle"]:
    out = a.sample([p], 48, 3.0, 1.0, a.generator(0))
    t = owner[out.tokens].view(48, 8, 8)
    first, coherent, n = collections.Counter(), 0, 0
    for img in t:
        for y in range(7):
            for x in range(7):
                v = int(img[y, x])
                if v > 0 and name(v)[2] == 0:
                    n += 1; c, s, _ = name(v); first[s] += 1
                    quad = [int(img[y, x + 1]), int(img[y + 1, x]), int(img[y + 1, x + 1])]
                    coherent += all(q > 0 and name(q)[:2] == (c, s) and name(q)[2] == i + 1 for i, q in enumerate(quad))
    print(p, 'TL tokens', n, 'shape of TL', dict(first), 'coherent', coherent, 'unknown codes', int((t < 0).sum()))
