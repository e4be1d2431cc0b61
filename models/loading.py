"""One entry point for every model directory: a diffusers flow pipeline (model_index.json) gets the diffusion
adapter, anything else the Janus adapter (which says clearly when a directory is not a Janus model)."""

from __future__ import annotations

from pathlib import Path

import torch


def load_adapter(path: str | Path, device: str = "auto", dtype: str | torch.dtype = "auto",
                 understanding: str | Path | None = None):
    """`understanding`: the Qwen2.5-VL of a flow pipeline that has none (SD3, FLUX); unused by other models."""
    from models.diffusion import DiffusionAdapter, is_flow_dir
    from models.janus import JanusAdapter
    if is_flow_dir(Path(path)):
        return DiffusionAdapter.from_pretrained(path, device=device, dtype=dtype, understanding=understanding or None)
    return JanusAdapter.from_pretrained(path, device=device, dtype=dtype)
