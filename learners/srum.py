"""SRUM (DESIGN.md §2): the model's own global and local scores turned into a dense reward map, and the
reward-weighted losses that train on it. Pure functions: tensors in, tensors out.

- `reward_map`: local scores in [-1, 1] of boxes (normalised x0, y0, x1, y1) painted onto an H x W grid (the
  latent or image-token grid): a cell takes the mean score of the boxes that contain its centre, and the global
  score where no box does.
- `global_weight`: alpha = (g + 1) / 2, the global layout score mapped to [0, 1].
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
