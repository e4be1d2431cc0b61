"""Best-of-N (DESIGN.md §1, the baseline at equal sample budget): of each prompt's N candidates, the one the judge
scores highest. Pure: tensors in, tensors out."""

from __future__ import annotations

import torch


def pick_best(rewards: torch.Tensor, n: int) -> torch.Tensor:
    """Index (into the flat batch) of the highest-reward candidate of each prompt's group of n (first on ties)."""
    return rewards.view(-1, n).argmax(dim=1) + torch.arange(0, rewards.numel(), n)
