"""Probe: which shape the generator draws at an object's first (top-left) token, and whether the other three tokens
of that 2 x 2 object match it. Codes map to patch types by the VQ's usage on random scenes.

    PYTHONPATH=. .venv/bin/python docs/results/toy_umm_probes/shape_control.py [checkpoint]
"""
import collections
import sys

import torch

from codebook import codes_and_types
from models.janus import JanusAdapter
from toyworld.pretrain import code_usage
from toyworld.scene import COLORS, SHAPES

PROMPTS = ["a photo of a triangle", "a photo of a red triangle", "a photo of a blue circle",
           "a photo of a purple triangle"]


def type_name(t: int) -> tuple[str, str, int]:
    """Patch type -> (colour, shape, quadrant); see toyworld.pretrain.patch_types."""
    color, rest = divmod(t - 1, len(SHAPES) * 4)
    shape, quadrant = divmod(rest, 4)
    return COLORS[color], SHAPES[shape], quadrant


def objects_started(grid: torch.Tensor) -> tuple[collections.Counter, int, int]:
    """Shapes at top-left tokens, how many such objects, and how many have the matching other three quadrants."""
    shapes, started, coherent = collections.Counter(), 0, 0
    for y in range(7):
        for x in range(7):
            t = int(grid[y, x])
            if t <= 0 or type_name(t)[2] != 0:
                continue
            color, shape, _ = type_name(t)
            started += 1
            shapes[shape] += 1
            rest = [int(grid[y, x + 1]), int(grid[y + 1, x]), int(grid[y + 1, x + 1])]
            coherent += all(q > 0 and type_name(q) == (color, shape, i + 1) for i, q in enumerate(rest))
    return shapes, started, coherent


def main(checkpoint: str) -> None:
    torch.set_num_threads(2)
    a = JanusAdapter.from_pretrained(checkpoint, device="cpu")
    _, _, codes, types = codes_and_types(a, 400, 5)
    usage = code_usage(codes, types, a.model.model.vqmodel.quantize.num_embeddings)
    owner = usage.argmax(0)
    owner[usage.sum(0) == 0] = -1  # a code never seen on the random scenes
    for prompt in PROMPTS:
        out = a.sample([prompt], 48, 3.0, 1.0, a.generator(0))
        grids = owner[out.tokens].view(48, 8, 8)
        shapes, started, coherent = collections.Counter(), 0, 0
        for grid in grids:
            s, n, c = objects_started(grid)
            shapes.update(s)
            started, coherent = started + n, coherent + c
        print(f"{prompt}: objects started {started}, first-token shape {dict(shapes)}, coherent {coherent}, "
              f"unknown codes {int((grids < 0).sum())}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "models/toy_umm")
