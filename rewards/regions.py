"""Oracle-free regions for SRUM's local scores (DESIGN.md §2), for models without grounding of their own.

`segment` finds the image's foreground blobs: pixels whose colour differs from the image's median colour (the
background) by at least `min_contrast`, split into 8-connected components of at least `min_area` pixels; it knows
nothing of shapes, colours or the prompt (unlike the toy oracle, which classifies them). `isolate` paints
everything outside a box with the background colour, so the model's own understanding can be asked about one
region at the image's native resolution. Pure numpy/scipy.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

_S8 = np.ones((3, 3), bool)


def background(image: np.ndarray) -> np.ndarray:
    return np.median(image.reshape(-1, image.shape[-1]), axis=0)


def segment(image: np.ndarray, min_contrast: float = 60.0, min_area: int = 25, max_regions: int = 8) -> np.ndarray:
    """(R, 4) boxes (x0, y0, x1, y1), normalised to [0, 1] with x1, y1 exclusive, of the `max_regions` largest
    foreground components of an H x W x 3 uint8 image; (0, 4) when there is none."""
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"expected an H x W x 3 image, got shape {image.shape}")
    h, w = image.shape[:2]
    contrast = np.linalg.norm(image.astype(np.float64) - background(image), axis=-1)
    labels, n = ndimage.label(contrast >= min_contrast, structure=_S8)
    if n == 0:
        return np.zeros((0, 4), np.float32)
    areas = ndimage.sum_labels(np.ones_like(labels), labels, index=np.arange(1, n + 1))
    keep = [k for k in np.argsort(-areas, kind="stable") if areas[k] >= min_area][:max_regions]
    slices = ndimage.find_objects(labels)
    boxes = [(slices[k][1].start / w, slices[k][0].start / h, slices[k][1].stop / w, slices[k][0].stop / h)
             for k in keep]
    return np.array(boxes, np.float32).reshape(-1, 4)


def without(image: np.ndarray, boxes) -> np.ndarray:
    """A copy of `image` with every normalised box painted the background colour (SRUM's background region)."""
    h, w = image.shape[:2]
    out, fill = image.copy(), background(image).round().astype(image.dtype)
    for x0, y0, x1, y1 in boxes:
        out[int(round(y0 * h)): int(round(y1 * h)), int(round(x0 * w)): int(round(x1 * w))] = fill
    return out


def isolate(image: np.ndarray, box) -> np.ndarray:
    """A copy of `image` with every pixel outside the normalised `box` set to the background colour."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    out = np.empty_like(image)
    out[...] = background(image).round().astype(image.dtype)
    ys, xs = slice(int(round(y0 * h)), int(round(y1 * h))), slice(int(round(x0 * w)), int(round(x1 * w)))
    out[ys, xs] = image[ys, xs]
    return out
