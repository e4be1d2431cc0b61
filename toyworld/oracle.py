"""Oracle evaluator: pixels -> objects -> GenEval's rules (rewards/geneval.py, shared with the GenEval evaluator).

Detection: each pixel gets a colour by hue (foreground = saturated and bright enough), each colour mask is
opened and reconstructed (drops 1-2 px fringes of blur and VQ artifacts, keeps object outlines). Each such seed
component is then refined at half maximum: its pixels (and those up to 2 px around it, not claimed by another
colour's seeds) whose contrast to the background (the image's median colour) is at least half the component's
peak contrast; this puts edges where they are whatever the blur, brightness or colour cast, and cuts the low
halos that join neighbours. The refined mask is split into 8-connected components; a component's shape is the
template (square, circle, upright triangle, drawn in the component's box; a triangle's apex may also lie 1-2 px
above the box, as a thin apex is the first thing blur or JPEG fades) with the best IoU.
Confidence maps that IoU to [0, 1] so GenEval's thresholds (0.3, 0.9 for counting) keep their meaning:
a clean render scores 1, a shapeless blob scores below 0.3 and is not an object.
The model never sees this code's output during test-time RL; it is the ground truth for evaluation only.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from matplotlib.colors import rgb_to_hsv
from scipy import ndimage

from rewards.geneval import Detection, Verdict, score
from toyworld.scene import PALETTE, SHAPES, Obj

MIN_AREA = 25  # pixels; the smallest rendered object (a 14 px triangle) covers ~98
MIN_SATURATION, MIN_VALUE = 0.35, 0.3
IOU_FLOOR, IOU_FULL = 0.45, 0.75  # confidence = 0 at IOU_FLOOR, 1 at IOU_FULL
HALF_MAX, GROW = 0.5, 2  # refined mask: contrast >= HALF_MAX x the component's peak, within GROW px of its seed
APEX_OUTSETS = (1, 2)  # a triangle template's apex may also lie 1 or 2 px above the component's box
_S3 = np.ones((3, 3), bool)
_HUES = {c: float(rgb_to_hsv(np.array(rgb, dtype=float) / 255.0)[0]) for c, rgb in PALETTE.items()}
_COLOR_NAMES = tuple(PALETTE)


def _hue_labels(image: np.ndarray) -> np.ndarray:
    """Per-pixel colour index into PALETTE, -1 for background."""
    hsv = rgb_to_hsv(image.astype(np.float64) / 255.0)
    hue_table = np.array([_HUES[c] for c in _COLOR_NAMES])
    diff = np.abs(hsv[..., :1] - hue_table)
    diff = np.minimum(diff, 1.0 - diff)  # hue is circular
    labels = diff.argmin(-1)
    foreground = (hsv[..., 1] >= MIN_SATURATION) & (hsv[..., 2] >= MIN_VALUE)
    return np.where(foreground, labels, -1)


def _template(shape: str, h: int, w: int, top: int = 0) -> np.ndarray:
    """`shape` drawn in an h x w crop whose box starts `top` px above the crop's first row."""
    ys, xs = np.mgrid[0:h, 0:w]
    u, v = (xs + 0.5) / w, (ys + top + 0.5) / (h + top)  # pixel centres, shape box = [0, 1]^2
    if shape == "square":
        return np.ones((h, w), bool)
    if shape == "circle":
        return (u - 0.5) ** 2 + (v - 0.5) ** 2 <= 0.25
    return np.abs(u - 0.5) <= v / 2  # upright triangle


@lru_cache(maxsize=4096)
def _templates(h: int, w: int) -> tuple[tuple[str, ...], np.ndarray]:
    """Template variants for an h x w crop: (shape names, stacked boolean masks); only triangles get apex outsets."""
    variants = [(shape, 0) for shape in SHAPES] + [("triangle", e) for e in APEX_OUTSETS]
    return tuple(s for s, _ in variants), np.stack([_template(s, h, w, e) for s, e in variants])


def classify_shape(mask: np.ndarray) -> tuple[str, float]:
    """Best template for a component mask cropped to its box, and its IoU."""
    names, masks = _templates(*mask.shape)
    iou = (masks & mask).sum((1, 2)) / np.maximum((masks | mask).sum((1, 2)), 1)
    k = int(iou.argmax())
    return names[k], float(iou[k])


def detect(image: np.ndarray) -> list[Detection]:
    """Objects in an H x W x 3 uint8 image, most confident first."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 image, got shape {image.shape}")
    labels = _hue_labels(image)
    pixels = image.astype(np.float64)
    contrast = np.linalg.norm(pixels - np.median(pixels.reshape(-1, 3), axis=0), axis=-1)
    seeds = []
    for ci in range(len(_COLOR_NAMES)):
        raw = labels == ci
        # Opening drops thin fringes; reconstruction then restores the full extent of what survived.
        opened = ndimage.binary_opening(raw, structure=_S3)
        seeds.append((opened, ndimage.binary_propagation(opened, mask=raw, structure=_S3)))
    found = []
    for ci, color in enumerate(_COLOR_NAMES):
        others = np.zeros(labels.shape, bool)
        for cj, (opened, _) in enumerate(seeds):
            if cj != ci:
                others |= opened
        comps, n = ndimage.label(seeds[ci][1], structure=_S3)
        refined = np.zeros(labels.shape, bool)
        for k in range(1, n + 1):
            comp = comps == k
            if comp.sum() < MIN_AREA:
                continue
            peak = np.percentile(contrast[comp], 90)
            near = ndimage.binary_dilation(comp, structure=_S3, iterations=GROW)
            region = near & (contrast >= HALF_MAX * peak) & ~others
            refined |= ndimage.binary_propagation(comp & region, mask=region, structure=_S3)
        parts, _ = ndimage.label(refined, structure=_S3)
        for k, sl in enumerate(ndimage.find_objects(parts), start=1):
            crop = parts[sl] == k
            if crop.sum() < MIN_AREA:
                continue
            shape, iou = classify_shape(crop)
            conf = float(np.clip((iou - IOU_FLOOR) / (IOU_FULL - IOU_FLOOR), 0.0, 1.0))
            box = (float(sl[1].start), float(sl[0].start), float(sl[1].stop), float(sl[0].stop))
            found.append(Detection(shape, color, box, conf))
    return sorted(found, key=lambda d: -d.conf)


def scene_detections(objects: list[Obj]) -> list[Detection]:
    """The symbolic ground truth of a scene, as detections (for checking the pixel path against it)."""
    return [Detection(o.shape, o.color, o.box, 1.0) for o in objects]


def evaluate(image: np.ndarray, meta: dict) -> Verdict:
    """Pixels + GenEval metadata -> per-image correctness with per-clause detail."""
    return score(detect(image), meta)
