"""Silent failures made loud: what each judged batch counts (pure; tensors and arrays in, counts out), and the
run's stop rule over a window of steps.

Counted per batch: samples and groups, NaN/inf rewards, groups whose rewards are all equal (no GRPO signal),
images of a single colour (a broken sampler or decoder), and samples scored on the one-question fallback rubric
(the introspector could not write a usable rubric). The driver logs them under `health/` in metrics.jsonl and
stops the run when a fraction over the last `guard.window` steps passes its `guard.max_*` threshold.
"""

from __future__ import annotations

import numpy as np
import torch

# count -> the count it is a fraction of
DENOMINATORS = {"nonfinite_rewards": "samples", "flat_groups": "groups", "degenerate_images": "samples",
                "fallback_rubrics": "samples"}
MEANING = {"nonfinite_rewards": ("rewards were NaN or inf", "the judge is broken"),
           "flat_groups": ("groups had all-equal rewards", "no learning signal"),
           "degenerate_images": ("images were a single colour", "the sampler or decoder is broken"),
           "fallback_rubrics": ("samples were scored on the fallback rubric",
                                "the introspector writes no usable rubric")}


def batch_health(rewards: torch.Tensor, group_size: int, images: np.ndarray, fallback: list[bool]) -> dict[str, int]:
    """Counts of one judged batch: rewards (N,), images (N, H, W, C), fallback (N,) per-sample flags."""
    finite = torch.isfinite(rewards)
    groups = rewards.view(-1, group_size)
    ok = finite.view(-1, group_size).all(dim=1)
    flat = ok & (groups.amax(dim=1) == groups.amin(dim=1))
    pixels = images.reshape(len(images), -1, images.shape[-1])
    single_colour = (pixels == pixels[:, :1]).all(axis=(1, 2))
    return {"samples": int(rewards.numel()), "groups": int(groups.shape[0]),
            "nonfinite_rewards": int((~finite).sum()), "flat_groups": int(flat.sum()),
            "degenerate_images": int(single_colour.sum()), "fallback_rubrics": int(sum(fallback))}


def add(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in a.keys() | b.keys()}


def violations(window: list[dict[str, int]], limits: dict[str, float]) -> list[str]:
    """One message per count whose fraction over `window` (health dicts of the last steps) exceeds its limit."""
    total: dict[str, int] = {}
    for h in window:
        total = add(total, h)
    out = []
    for key, limit in limits.items():
        denominator = total.get(DENOMINATORS[key], 0)
        fraction = total.get(key, 0) / denominator if denominator else 0.0
        if fraction > limit:
            what, why = MEANING[key]
            out.append(f"{fraction:.0%} of {what} over the last {len(window)} steps (guard.max_{key}={limit}): "
                       f"{why}")
    return out


class RunUnhealthy(Exception):
    """The run stopped on purpose: a failure's fraction passed its guard threshold."""


class Guard:
    """Checks each step's health counts against the limits over the last `window` steps (once that many ran)."""

    def __init__(self, limits: dict[str, float], window: int, recent: list[dict] | None = None):
        unknown = set(limits) - DENOMINATORS.keys()
        if unknown:
            raise ValueError(f"unknown health counts {sorted(unknown)}; valid: {sorted(DENOMINATORS)}")
        self.limits, self.window, self.recent = limits, max(window, 1), list(recent or [])[-max(window, 1):]

    def check(self, health: dict[str, int]) -> None:
        self.recent = (self.recent + [health])[-self.window:]
        if len(self.recent) == self.window:
            found = violations(self.recent, self.limits)
            if found:
                raise RunUnhealthy("; ".join(found))
