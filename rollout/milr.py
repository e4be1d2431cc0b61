"""MILR (DESIGN.md §1): test-time search in latent space, no weight update. Pure pieces: which token positions
are optimised, the REINFORCE surrogate whose gradient moves the latents, and the search loop's stopping rule.

The latents are the last-layer hidden states of the first `lambda_t` (0.2) of the text tokens and the first
`lambda_v` (0.02) of the image tokens; Adam (lr 0.03) maximises E[r] by REINFORCE, up to K = 20 steps, stopping as
soon as the reward passes the threshold. Strategies: joint (both sets each step), alternating (text on even
steps, image on odd) and text-then-image (text for the first half of the steps, image after).
"""

from __future__ import annotations

import math

import torch

STRATEGIES = ("joint", "alternating", "text_then_image")


def optimised_positions(n_text: int, n_image: int, lambda_t: float = 0.2, lambda_v: float = 0.02) -> tuple[int, int]:
    """How many leading text and image tokens carry optimised latents (at least one of each when present)."""
    return (max(1, math.ceil(lambda_t * n_text)) if n_text else 0,
            max(1, math.ceil(lambda_v * n_image)) if n_image else 0)


def active(strategy: str, step: int, steps: int) -> tuple[bool, bool]:
    """(text latents move, image latents move) at `step` of `steps`."""
    if strategy == "joint":
        return True, True
    if strategy == "alternating":
        return step % 2 == 0, step % 2 == 1
    if strategy == "text_then_image":
        return step < steps // 2, step >= steps // 2
    raise ValueError(f"unknown MILR strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")


def reinforce_surrogate(logp: torch.Tensor, rewards: torch.Tensor, baseline: torch.Tensor | None = None) -> torch.Tensor:
    """A loss whose gradient is -E[(r - b) * grad log p(y | z)]: minimising it ascends the expected reward.
    logp (S,) summed log-probs of S sampled outputs given the latents; rewards (S,); baseline defaults to the
    mean reward (variance reduction; with one sample it is 0)."""
    if baseline is None:
        baseline = rewards.mean() if rewards.numel() > 1 else torch.zeros(())
    return -((rewards - baseline).detach() * logp).mean()


def should_stop(best_reward: float, threshold: float, step: int, max_steps: int) -> bool:
    return best_reward > threshold or step >= max_steps
