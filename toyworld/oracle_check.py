"""Checks of the pixel oracle against the symbolic ground truth: matched and near-miss prompt pairs,
optionally through image corruptions (blur, colour shift, noise, JPEG). Pure functions, no I/O."""

from __future__ import annotations

import io
import random
from functools import lru_cache

import numpy as np
from PIL import Image
from scipy import ndimage

from toyworld.oracle import detect, scene_detections, score
from toyworld.prompts import TAGS, scene_for, universe
from toyworld.render import render


def word_distance(a: str, b: str) -> int:
    """Levenshtein distance between two strings counted in words (substitution, insertion, deletion)."""
    wa, wb = a.split(), b.split()
    prev = list(range(len(wb) + 1))
    for i, x in enumerate(wa, start=1):
        cur = [i]
        for j, y in enumerate(wb, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


@lru_cache(maxsize=None)
def _ranked(prompt: str, tag: str) -> tuple[tuple[int, dict], ...]:
    """Same-tag universe prompts other than `prompt`, sorted by word distance to it (stable order)."""
    others = [m for m in universe() if m["tag"] == tag and m["prompt"] != prompt]
    return tuple(sorted(((word_distance(prompt, m["prompt"]), m) for m in others), key=lambda t: t[0]))


def near_miss(meta: dict, objects, rng: random.Random) -> dict | None:
    """A same-tag prompt the scene does NOT satisfy (symbolically), with the fewest words changed from
    meta["prompt"]; ties are broken with rng. None if every same-tag prompt is satisfied by the scene."""
    dets = scene_detections(objects)
    ranked = _ranked(meta["prompt"], meta["tag"])
    i = 0
    while i < len(ranked):
        d = ranked[i][0]
        level = []
        while i < len(ranked) and ranked[i][0] == d:
            level.append(ranked[i][1])
            i += 1
        wrong = [m for m in level if not score(dets, m).correct]
        if wrong:
            return rng.choice(wrong)
    return None


def agreement(n_per_tag: int, seed: int, corrupt=None) -> dict:
    """Oracle agreement with the symbolic truth on rendered scenes: how often it passes the matching prompt
    (match_pass) and fails the near-miss prompt (mismatch_fail), per tag and overall (means over pairs)."""
    rng = random.Random(seed)
    per_tag, all_match, all_miss = {}, [], []
    for tag in TAGS:
        pool = [m for m in universe() if m["tag"] == tag]
        match, miss = [], []
        for _ in range(n_per_tag):
            meta = rng.choice(pool)
            objects = scene_for(meta, rng)
            image = render(objects)
            if corrupt is not None:
                image = corrupt(image, rng)
            dets = detect(image)  # one detection pass, scored against both prompts (== evaluate(image, m))
            match.append(score(dets, meta).correct)
            other = near_miss(meta, objects, rng)
            if other is not None:
                miss.append(not score(dets, other).correct)
        per_tag[tag] = {"match_pass": float(np.mean(match)), "mismatch_fail": float(np.mean(miss)) if miss else 1.0,
                        "n": n_per_tag}
        all_match += match
        all_miss += miss
    return {"per_tag": per_tag, "match_pass": float(np.mean(all_match)),
            "mismatch_fail": float(np.mean(all_miss)) if all_miss else 1.0}


# --- corruptions: (uint8 H x W x 3 image, random.Random) -> uint8 image ---

def _np_rng(rng: random.Random) -> np.random.Generator:
    return np.random.default_rng(rng.randrange(2**32))


def blur(image: np.ndarray, rng: random.Random) -> np.ndarray:
    """Gaussian blur, sigma 0.8-1.0 px, per channel."""
    sigma = rng.uniform(0.8, 1.0)
    out = ndimage.gaussian_filter(image.astype(np.float64), sigma=(sigma, sigma, 0))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def color_shift(image: np.ndarray, rng: random.Random) -> np.ndarray:
    """Brightness scale 0.85-1.1, then a per-channel shift of up to +-25 levels, clipped."""
    scale = rng.uniform(0.85, 1.1)
    shift = np.array([rng.uniform(-25, 25) for _ in range(3)])
    out = image.astype(np.float64) * scale + shift
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def noise(image: np.ndarray, rng: random.Random, std: float = 8.0) -> np.ndarray:
    """Additive Gaussian noise, std 8 levels, clipped."""
    out = image.astype(np.float64) + _np_rng(rng).normal(0.0, std, image.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, rng: random.Random, quality: int = 50) -> np.ndarray:
    """JPEG round trip at quality ~50 (PIL)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("RGB"), dtype=np.uint8)


def all_corruptions(image: np.ndarray, rng: random.Random) -> np.ndarray:
    """Blur, colour shift, noise and JPEG, composed in that order."""
    return jpeg(noise(color_shift(blur(image, rng), rng), rng), rng)
