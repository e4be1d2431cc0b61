"""SRUM's reward-weighted update (DESIGN.md §2) on the same optimiser, schedule and data split as GRPO: no group
comparison. Two forms, by the policy:
- image tokens (Janus): each token's likelihood weighted by alpha (the global score in [0, 1]) times the dense reward
  map at its cell, plus lambda_c times the plain likelihood of the model's own samples (learners/srum.token_loss);
- a flow model (SRUM Eq. 1-3): the flow-matching loss on the model's own final latents x0, re-noised at a time t
  drawn per minibatch, x_t = (1 - t) x0 + t eps, the squared velocity error weighted by alpha times the map on the
  latent grid, plus lambda_c times the plain loss (learners/srum.flow_loss).
"""

from __future__ import annotations

import torch

from learners.grpo import k3_kl
from learners.grpo_trainer import GRPOTrainer
from learners.srum import LAMBDA_C, flow_loss, global_weight, token_loss
from rewards.srum import to_score
from rollout.batch import Judgement, RolloutBatch

T_RANGE = (0.02, 0.98)  # flow times drawn uniformly, away from the ends where the target is pure noise or image


def renoised(x0: torch.Tensor, t: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t, eps) with x_t = (1 - t) x0 + t eps: rectified flow's forward process (models/flow_sde.py)."""
    eps = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
    return (1 - t) * x0 + t * eps, eps


class SRUMTrainer(GRPOTrainer):
    lambda_c = LAMBDA_C

    def sample_weights(self, batch: RolloutBatch, judged: Judgement) -> tuple[torch.Tensor, dict]:
        if judged.reward_maps is None:
            raise ValueError("trainer.algorithm=srum needs reward maps: set reward.judge=srum")
        # a NaN reward (a broken judge; counted by the health guard) gets no reward-weighted term
        alpha = global_weight(to_score(torch.nan_to_num(judged.rewards, nan=0.0).clamp(0, 1)))
        return alpha, {"reward_map_mean": float(judged.reward_maps.mean()),
                       "reward_map_negative": float((judged.reward_maps < 0).float().mean())}

    def predict(self, batch: RolloutBatch, idx: torch.Tensor):
        if self.a.capabilities.image_tokens:
            return super().predict(batch, idx)
        x0 = batch.tokens[idx][:, -1]  # the trajectory's last state: the sample's clean latents
        t = T_RANGE[0] + (T_RANGE[1] - T_RANGE[0]) * float(torch.rand((), generator=self.gen))
        x_t, eps = renoised(x0, t, self.gen)
        v = self.a.conditional_velocity([batch.prompts[i] for i in idx], x_t, t)
        return v, eps.to(v.device), x0.to(v.device)

    def loss(self, pred, idx, batch: RolloutBatch, judged: Judgement, alpha: torch.Tensor) -> tuple[torch.Tensor, dict]:
        if isinstance(pred, tuple):
            return self.flow_loss(*pred, idx, judged, alpha)
        logp = pred
        on = lambda t: t[idx].to(logp.device)  # batches travel on the host; the policy may be on a GPU
        loss = token_loss(logp, on(alpha), torch.nan_to_num(on(judged.reward_maps), nan=0.0), self.lambda_c)
        with torch.no_grad():  # reported, not trained on: how far the policy drifted from the frozen reference
            kl = float(k3_kl(logp, on(judged.ref_logprobs)).mean())
        return loss, {"loss": float(loss.detach()), "kl": kl, "alpha_mean": float(alpha[idx].mean())}

    def flow_loss(self, v, eps, x0, idx, judged: Judgement, alpha: torch.Tensor) -> tuple[torch.Tensor, dict]:
        maps = torch.nan_to_num(judged.reward_maps[idx], nan=0.0).to(v.device).view(len(idx), *x0.shape[-2:])
        loss = flow_loss(v.float(), eps.float(), x0.float(), alpha[idx].to(v.device), maps, self.lambda_c)
        with torch.no_grad():
            error = float(((v.float() - (eps - x0).float()) ** 2).mean())
        return loss, {"loss": float(loss.detach()), "flow_error": error, "alpha_mean": float(alpha[idx].mean())}
