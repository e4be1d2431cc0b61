"""SRUM's rewards (DESIGN.md §2): the model's own global and local scores turned into a dense reward map. Pure
functions: tensors in, tensors out (the reward-weighted losses that train on the maps: learners/srum.py).

- `reward_map`: local scores in [-1, 1] of boxes (normalised x0, y0, x1, y1) painted onto an H x W grid (the
  latent or image-token grid): a cell takes the mean score of the boxes that contain its centre, and the global
  score where no box does.
- `to_score` / `region_scores`: a model that answers yes/no (the toy UMM, Janus) scores on [-1, 1] as 2 s - 1, with
  s its normalised answer probability (Eq. 5): the global score from the whole-image rubric reward (Eq. 6), a
  region's local score from the best-matching of the prompt's object questions asked of that region alone.
"""

from __future__ import annotations

import torch


def check_scores(name: str, x: torch.Tensor) -> None:
    if x.numel() and (x.min() < -1 or x.max() > 1):
        raise ValueError(f"{name} must lie in [-1, 1], got [{float(x.min()):.3f}, {float(x.max()):.3f}]")


def reward_map(global_score: float, boxes: torch.Tensor, scores: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(height, width) map; `boxes` (R, 4) normalised (x0, y0, x1, y1), `scores` (R,) in [-1, 1]."""
    check_scores("local scores", scores)
    check_scores("the global score", torch.tensor([float(global_score)]))
    ys = (torch.arange(height, dtype=torch.float64) + 0.5) / height
    xs = (torch.arange(width, dtype=torch.float64) + 0.5) / width
    total = torch.zeros(height, width, dtype=torch.float64)
    count = torch.zeros(height, width, dtype=torch.float64)
    for (x0, y0, x1, y1), s in zip(boxes.double().tolist(), scores.double().tolist()):
        inside = ((ys >= y0) & (ys <= y1))[:, None] & ((xs >= x0) & (xs <= x1))[None, :]
        total += inside * s
        count += inside
    out = torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, float(global_score)))
    return out.float()


def to_score(s: torch.Tensor) -> torch.Tensor:
    """A probability-like judgement in [0, 1] as a SRUM score in [-1, 1]."""
    return 2 * s - 1


def region_scores(question_scores: torch.Tensor) -> torch.Tensor:
    """(R, Q) Eq. 5 scores of Q prompt questions asked of R regions -> (R,) local scores in [-1, 1]: a region
    scores by the question it answers best (it is meant to show one of the prompt's objects, not all of them)."""
    if question_scores.ndim != 2 or question_scores.shape[1] == 0:
        raise ValueError(f"expected (regions, questions >= 1) scores, got {tuple(question_scores.shape)}")
    return to_score(question_scores.amax(dim=1))
