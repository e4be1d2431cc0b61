"""Prompt templates for the six GenEval tags, their metadata in GenEval's format, and the splits.

Splits are deterministic (a fixed seed; no run-time randomness):
- `heldout`: every prompt that contains a reserved composition: a reserved colour-shape pair or a reserved
  spatial configuration (both phrasings of it). No reserved composition is ever named in a text->image
  pretraining prompt, nor in a `test` prompt, so a gain on `heldout` is a capability, not a memorised
  instance. Reservation is at the prompt level: a scene drawn for "a photo of a triangle" may show a purple
  triangle, as one for "a photo of a circle and a triangle" may put the circle above the triangle; what is
  never seen is the words of a reserved composition mapped to its picture.
- `test`: where test-time RL runs. Per tag, up to half of the tag's non-reserved prompts (capped); tags whose
  whole space is tiny (single_object: 3 prompts, two_object: 6) keep all their prompts in `test` and in `train`.
- `train`: the non-reserved prompts not in `test` (plus the tiny tags); the only prompts used as text->image
  pretraining targets.
The understanding side (questions, captions, rubrics) is pretrained on scenes of every composition, as a
real UMM's understanding data dwarfs its generation data; that is the gap test-time RL exploits.
"""

from __future__ import annotations

import itertools
import random
from functools import lru_cache

from toyworld.scene import COLORS, COUNT_WORDS, RELATIONS, SHAPES, Obj, place

TAGS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
SPLITS = ("train", "test", "heldout")
RESERVED_PAIRS = frozenset({("purple", "triangle"), ("yellow", "square"), ("green", "circle")})
# Each reserved layout is listed in both phrasings (A rel B == B converse-rel A).
RESERVED_LAYOUTS = frozenset({("circle", "above", "triangle"), ("triangle", "below", "circle"),
                              ("square", "left of", "circle"), ("circle", "right of", "square")})
TEST_CAP, HELDOUT_CAP, TINY_TAG = 60, 60, 10
SPLIT_SEED = 20260311


def plural(shape: str) -> str:
    return shape + "s"


def _phrase(shape: str, color: str | None) -> str:
    return f"{color} {shape}" if color else shape


def _single(shape):
    return {"tag": "single_object", "include": [{"class": shape, "count": 1}], "prompt": f"a photo of a {shape}"}


def _two(a, b):
    return {"tag": "two_object", "include": [{"class": a, "count": 1}, {"class": b, "count": 1}],
            "prompt": f"a photo of a {a} and a {b}"}


def _counting(shape, n, color=None):
    inc = {"class": shape, "count": n, **({"color": color} if color else {})}
    words = f"{color} {plural(shape)}" if color else plural(shape)
    return {"tag": "counting", "include": [inc], "exclude": [{"class": shape, "count": n + 1}],
            "prompt": f"a photo of {COUNT_WORDS[n]} {words}"}


def _colors(shape, color):
    return {"tag": "colors", "include": [{"class": shape, "count": 1, "color": color}],
            "prompt": f"a photo of a {color} {shape}"}


def _position(a, rel, b, color_a=None, color_b=None):
    ref = {"class": b, "count": 1, **({"color": color_b} if color_b else {})}
    obj = {"class": a, "count": 1, **({"color": color_a} if color_a else {}), "position": [rel, 0]}
    return {"tag": "position", "include": [ref, obj],
            "prompt": f"a photo of a {_phrase(a, color_a)} {rel} a {_phrase(b, color_b)}"}


def _color_attr(a, color_a, b, color_b):
    return {"tag": "color_attr",
            "include": [{"class": a, "count": 1, "color": color_a}, {"class": b, "count": 1, "color": color_b}],
            "prompt": f"a photo of a {color_a} {a} and a {color_b} {b}"}


@lru_cache(maxsize=1)
def universe() -> tuple[dict, ...]:
    """Every prompt the grammar can say, with its GenEval-format metadata."""
    out = [_single(s) for s in SHAPES]
    pairs = [(a, b) for a, b in itertools.permutations(SHAPES, 2)]
    out += [_two(a, b) for a, b in pairs]
    out += [_counting(s, n) for s in SHAPES for n in (2, 3, 4)]
    out += [_counting(s, n, c) for s in SHAPES for n in (2, 3, 4) for c in COLORS]
    out += [_colors(s, c) for s in SHAPES for c in COLORS]
    out += [_position(a, r, b) for a, b in pairs for r in RELATIONS]
    out += [_position(a, r, b, ca, cb) for a, b in pairs for r in RELATIONS for ca in COLORS for cb in COLORS]
    out += [_color_attr(a, ca, b, cb) for a, b in pairs for ca in COLORS for cb in COLORS]
    return tuple(out)


def is_reserved(meta: dict) -> bool:
    """True if the prompt names a reserved colour-shape pair or a reserved spatial layout."""
    for clause in meta["include"]:
        if (clause.get("color"), clause["class"]) in RESERVED_PAIRS:
            return True
        if "position" in clause:
            rel, j = clause["position"]
            if (clause["class"], rel, meta["include"][j]["class"]) in RESERVED_LAYOUTS:
                return True
    return False


def names_a_color(meta: dict) -> bool:
    return any("color" in clause for clause in meta["include"])


@lru_cache(maxsize=1)
def _splits() -> dict[str, tuple[dict, ...]]:
    rng = random.Random(SPLIT_SEED)
    split = {s: [] for s in SPLITS}
    for tag in TAGS:
        items = [m for m in universe() if m["tag"] == tag]
        free = [m for m in items if not is_reserved(m)]
        held = [m for m in items if is_reserved(m)]
        rng.shuffle(free)
        rng.shuffle(held)
        split["heldout"] += held[:HELDOUT_CAP]
        if len(free) < TINY_TAG:
            split["test"] += free
            split["train"] += free
        else:
            n_test = min(TEST_CAP, len(free) // 2)
            split["test"] += free[:n_test]
            split["train"] += free[n_test:]
    return {k: tuple(v) for k, v in split.items()}


def load_split(name: str) -> list[dict]:
    if name not in SPLITS:
        raise ValueError(f"unknown split {name!r}; valid splits: {', '.join(SPLITS)}")
    return [dict(m) for m in _splits()[name]]


def scene_for(meta: dict, rng: random.Random) -> list[Obj]:
    """Sample a scene that satisfies the metadata; unspecified colours and positions are random."""
    specs, first_index = [], []
    for clause in meta["include"]:
        first_index.append(len(specs))
        for _ in range(clause["count"]):
            color = clause.get("color")
            if color is None:
                color = rng.choice(COLORS)
            specs.append((clause["class"], color))
    relation = None
    for k, clause in enumerate(meta["include"]):
        if "position" in clause:
            rel, j = clause["position"]
            relation = (first_index[k], rel, first_index[j])
    return place(rng, specs, relation)
