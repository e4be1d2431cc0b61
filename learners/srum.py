"""SRUM's reward-weighted losses (DESIGN.md §2) on the dense reward maps of rewards/srum.py. Pure functions:
tensors in, tensors out.

- `global_weight`: alpha = (g + 1) / 2, the global layout score mapped to [0, 1].
- `flow_loss` (diffusion heads): E[alpha * R (.) (v - (eps - x0))^2] + lambda_c * E[(v - (eps - x0))^2].
- `token_loss` (AR image tokens, the analogue): E[alpha * R_t * (-log p_t)] + lambda_c * E[-log p_t], with R_t
  the map's value at token t's cell. A negative R_t pushes that token's probability down; the lambda_c term keeps
  the model on its own samples.
"""

from __future__ import annotations

import torch

from rewards.srum import check_scores

LAMBDA_C = 0.5


def global_weight(global_score: torch.Tensor) -> torch.Tensor:
    check_scores("global scores", global_score)
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
