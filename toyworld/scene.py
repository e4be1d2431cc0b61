"""Scene grammar of the toy world: shapes with colours, counts and positions on a small canvas.

A scene is a list of objects; every object has a shape, a colour, a centre and a size (pixels).
Scenes are sampled to satisfy a GenEval-format metadata record (see `toyworld.prompts`), so a
prompt, its scene and its oracle check all come from one description.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from rewards.geneval import RELATIONS, relations_between  # noqa: F401 (the scene's relations are GenEval's)

SHAPES = ("square", "circle", "triangle")
COLORS = ("red", "yellow", "green", "blue", "purple")
COUNT_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
CANVAS = 64
OBJECT_SIZE = 16  # pixels: 2 x 2 image tokens at 8 px per token
GRID = 8  # object centres lie on the token grid: every object is exactly 2 x 2 image tokens
GAP = 3  # minimum free pixels between two objects' boxes, so they never touch

# Colour palette (RGB on a dark background): hues far apart, so blur and colour shift keep the hue.
PALETTE = {
    "red": (225, 35, 35),
    "yellow": (235, 215, 30),
    "green": (35, 185, 60),
    "blue": (40, 90, 235),
    "purple": (165, 50, 215),
}
BACKGROUND = (18, 18, 22)


@dataclass(frozen=True)
class Obj:
    shape: str
    color: str
    cx: float
    cy: float
    size: float

    @property
    def box(self) -> tuple[float, float, float, float]:
        h = self.size / 2
        return (self.cx - h, self.cy - h, self.cx + h, self.cy + h)


def _boxes_clear(a: Obj, b: Obj) -> bool:
    ax0, ay0, ax1, ay1 = a.box
    bx0, by0, bx1, by1 = b.box
    return ax1 + GAP <= bx0 or bx1 + GAP <= ax0 or ay1 + GAP <= by0 or by1 + GAP <= ay0


def _random_obj(rng: random.Random, shape: str, color: str) -> Obj:
    lo, hi = (OBJECT_SIZE // 2 + GRID - 1) // GRID, (CANVAS - OBJECT_SIZE // 2) // GRID
    return Obj(shape, color, GRID * rng.randint(lo, hi), GRID * rng.randint(lo, hi), OBJECT_SIZE)


def _dominant(rel: str, a: Obj, b: Obj) -> bool:
    """A is clearly `rel` of B: the relation holds and the other axis is small (a prototypical layout)."""
    dx, dy = a.cx - b.cx, a.cy - b.cy
    main, other = (dx, dy) if rel in ("left of", "right of") else (dy, dx)
    return rel in relations_between(a.box, b.box) and abs(other) <= 0.5 * abs(main)


def place(rng: random.Random, specs: list[tuple[str, str]], relation: tuple[int, str, int] | None = None,
          tries: int = 2000) -> list[Obj]:
    """Place objects (shape, colour) without overlap; `relation` = (i, rel, j) makes object i `rel` of j."""
    for _ in range(tries):
        objs: list[Obj] = []
        for shape, color in specs:
            for _ in range(50):
                o = _random_obj(rng, shape, color)
                if all(_boxes_clear(o, p) for p in objs):
                    objs.append(o)
                    break
            else:
                break
        if len(objs) != len(specs):
            continue
        if relation is not None and not _dominant(relation[1], objs[relation[0]], objs[relation[2]]):
            continue
        return objs
    raise RuntimeError(f"could not place {specs} with relation {relation} in {tries} tries")
