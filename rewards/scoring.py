"""Rubric scoring (Meta-TTRL Eq. 5-6; DESIGN.md §2): pure functions, tensors in and tensors out.

Eq. 5: s = p(target | q, y) / (p(yes | q, y) + p(no | q, y)), from the next-token distribution after the question.
Eq. 6: r(x, y) = exp(mean over all the rubric's questions of log s): a geometric mean, so one clearly failed
question pulls the reward down however many others pass. s is clamped to >= `eps` so log s stays finite.
"""

from __future__ import annotations

import torch

EPS = 1e-6


def question_scores(yes_no: torch.Tensor, target_yes: torch.Tensor) -> torch.Tensor:
    """Eq. 5 for Q questions: `yes_no` (Q, 2) probabilities of [yes, no]; `target_yes` (Q,) bool."""
    if yes_no.ndim != 2 or yes_no.shape[1] != 2 or yes_no.shape[0] != target_yes.shape[0]:
        raise ValueError(f"expected yes/no probabilities (Q, 2) and Q targets, got {tuple(yes_no.shape)} "
                         f"and {tuple(target_yes.shape)}")
    normalised = yes_no / yes_no.sum(-1, keepdim=True).clamp_min(torch.finfo(yes_no.dtype).tiny)
    return torch.where(target_yes.to(torch.bool), normalised[:, 0], normalised[:, 1])


def rubric_rewards(scores: torch.Tensor, image_index: torch.Tensor, n_images: int, eps: float = EPS) -> torch.Tensor:
    """Eq. 6 for many images at once: `scores` (Q,) from `question_scores`, `image_index` (Q,) the image each
    question was asked of. Returns (n_images,) rewards; an image with no question is an error, not a 1 or a 0."""
    counts = torch.bincount(image_index, minlength=n_images)
    if counts.numel() != n_images or (counts == 0).any():
        raise ValueError(f"every one of the {n_images} images needs at least one rubric question; "
                         f"counts per image: {counts.tolist()}")
    logs = torch.zeros(n_images, dtype=scores.dtype).index_add_(0, image_index, scores.clamp_min(eps).log())
    return torch.exp(logs / counts.to(scores.dtype))


def gvu_rewards(token_logprobs: list[torch.Tensor]) -> torch.Tensor:
    """GvU (DESIGN.md §2): r = exp((1/L) sum_j log p(x_j | image, instruction, x_<j)) over each prompt's L
    tokens: the geometric mean of the prompt's token probabilities given the image. One (L_i,) tensor per image;
    an empty prompt is an error, not a reward of 1."""
    if any(lp.numel() == 0 for lp in token_logprobs):
        raise ValueError("GvU needs at least one prompt token per image")
    return torch.stack([lp.float().mean().exp() for lp in token_logprobs])


def groups_swapped(rewards: torch.Tensor, group_size: int, generator: torch.Generator) -> torch.Tensor:
    """The `shuffled` control: every group's rewards handed to another group (a random cyclic derangement of the
    batch's groups), in a random order inside the group. The batch's reward multiset and each group's spread (so
    GRPO's advantage sizes) are the real judge's; only the link from an image to its score is cut. A batch of one
    group has no other group: its rewards are permuted inside it."""
    n_groups = rewards.numel() // group_size
    if n_groups * group_size != rewards.numel():
        raise ValueError(f"{rewards.numel()} rewards are not whole groups of {group_size}")
    device = generator.device
    order = torch.randperm(n_groups, generator=generator, device=device).cpu()
    source = torch.empty_like(order)
    source[order] = order.roll(-1)  # group order[k] gets the rewards of group order[k + 1]
    inner = torch.stack([torch.randperm(group_size, generator=generator, device=device).cpu()
                         for _ in range(n_groups)])
    index = (source[:, None] * group_size + inner).flatten()
    return rewards.flatten()[index]
