"""What every generator adapter shares (models/janus.py, models/diffusion.py): device and dtype resolution, and
the parts of the training protocol that follow from `trainable_parameters()` and `device`."""

from __future__ import annotations

import torch


def resolve_device(device: str) -> torch.device:
    """auto: the GPU Ray gave this actor (CUDA_VISIBLE_DEVICES), else the CPU."""
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """auto: bfloat16 on GPU (Janus-Pro's and Qwen-Image's training precision), float32 on CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"unknown model dtype {dtype!r}; valid: auto, float32, bfloat16, float16")
    return getattr(torch, dtype)


def first_difference(a: list[int], b: list[int]) -> int:
    """Index of the first token where two tokenisations differ: the length of a template's fixed prefix, found by
    filling it with two different words (a BPE merges a prompt's first word with the space before it, so the
    prefix cannot be tokenised alone)."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


class GeneratorAdapter:
    """Subclasses define `trainable_parameters()` and `device`."""

    def weights(self) -> dict[str, torch.Tensor]:
        """A detached copy of the trainable weights (what a sync must make equal across roles)."""
        return {n: p.detach().clone() for n, p in self.trainable_parameters()}

    def generator(self, seed: int) -> torch.Generator:
        """A seeded generator on the model's device (sampling on a GPU needs a GPU generator)."""
        return torch.Generator(device=self.device).manual_seed(seed)
