"""SRUM (DESIGN.md §2): the model's own global and local scores turned into a dense reward map, and the
reward-weighted losses that train on it. Pure functions: tensors in, tensors out.

- `reward_map`: local scores in [-1, 1] of boxes (normalised x0, y0, x1, y1) painted onto an H x W grid (the
  latent or image-token grid): a cell takes the mean score of the boxes that contain its centre, and the global
  score where no box does.
- `global_weight`: alpha = (g + 1) / 2, the global layout score mapped to [0, 1].
- `to_score` / `region_scores`: a model that answers yes/no (the toy UMM, Janus) scores on [-1, 1] as 2 s - 1, with
  s its normalised answer probability (Eq. 5): the global score from the whole-image rubric reward (Eq. 6), a
  region's local score from the best-matching of the prompt's object questions asked of that region alone.
- `flow_loss` (diffusion heads): E[alpha * R (.) (v - (eps - x0))^2] + lambda_c * E[(v - (eps - x0))^2].
- `token_loss` (AR image tokens, the analogue): E[alpha * R_t * (-log p_t)] + lambda_c * E[-log p_t], with R_t
  the map's value at token t's cell. A negative R_t pushes that token's probability down; the lambda_c term keeps
  the model on its own samples.
"""

from __future__ import annotations

import torch

LAMBDA_C = 0.5


def _check_scores(name: str, x: torch.Tensor) -> None:
    if x.numel() and (x.min() < -1 or x.max() > 1):
        raise ValueError(f"{name} must lie in [-1, 1], got [{float(x.min()):.3f}, {float(x.max()):.3f}]")


def reward_map(global_score: float, boxes: torch.Tensor, scores: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(height, width) map; `boxes` (R, 4) normalised (x0, y0, x1, y1), `scores` (R,) in [-1, 1]."""
    _check_scores("local scores", scores)
    _check_scores("the global score", torch.tensor([float(global_score)]))
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


def global_weight(global_score: torch.Tensor) -> torch.Tensor:
    _check_scores("global scores", global_score)
    return (global_score + 1) / 2


def flow_loss(v_pred: torch.Tensor, eps: torch.Tensor, x0: torch.Tensor, alpha: torch.Tensor, rmap: torch.Tensor,
              lambda_c: float = LAMBDA_C) -> torch.Tensor:
    """v_pred, eps, x0: (N, C, H, W); alpha (N,); rmap (N, H, W) on the latent grid."""
    err = (v_pred - (eps - x0)) ** 2
    weighted = alpha[:, None, None, None] * rmap[:, None] * err
    return weighted.mean() + lambda_c * err.mean()


def token_loss(logp: torch.Tensor, alpha: torch.Tensor, token_map: torch.Tensor, lambda_c: float = LAMBDA_C,
               mask: torch.Tensor | None = None) -> torch.Tensor:
    """logp (N, T) log-probs of the image tokens (raster order); token_map (N, T): the reward map flattened on the
    token grid; mask (N, T) of tokens that count."""
    mask = torch.ones_like(logp) if mask is None else mask.to(logp.dtype)
    nll = -logp * mask
    denominator = mask.sum().clamp_min(1)
    return (alpha[:, None] * token_map * nll).sum() / denominator + lambda_c * nll.sum() / denominator
