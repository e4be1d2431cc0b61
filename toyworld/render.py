"""Renderer: a scene -> an RGB uint8 image (anti-aliased by drawing at 4x and downsampling)."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from toyworld.scene import BACKGROUND, CANVAS, PALETTE, Obj

SUPERSAMPLE = 4


def shape_polygon(shape: str, cx: float, cy: float, size: float) -> list[tuple[float, float]] | None:
    """Vertices of a polygonal shape inscribed in its size x size box (None for a circle)."""
    h = size / 2
    if shape == "square":
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "triangle":  # upright isosceles triangle filling its box
        return [(cx, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "circle":
        return None
    raise ValueError(f"unknown shape {shape!r}")


def render(objects: list[Obj], size: int = CANVAS) -> np.ndarray:
    """Render objects (coordinates on the CANVAS grid) into a size x size x 3 uint8 image."""
    s = SUPERSAMPLE * size / CANVAS
    img = Image.new("RGB", (SUPERSAMPLE * size,) * 2, BACKGROUND)
    draw = ImageDraw.Draw(img)
    for o in objects:
        fill = PALETTE[o.color]
        poly = shape_polygon(o.shape, o.cx * s, o.cy * s, o.size * s)
        if poly is None:
            h = o.size * s / 2
            draw.ellipse([o.cx * s - h, o.cy * s - h, o.cx * s + h, o.cy * s + h], fill=fill)
        else:
            draw.polygon(poly, fill=fill)
    return np.asarray(img.resize((size, size), Image.Resampling.BOX), dtype=np.uint8)
