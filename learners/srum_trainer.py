"""SRUM's reward-weighted update (DESIGN.md §2) on the same optimiser, schedule and data split as GRPO: no group
comparison, each image token's likelihood weighted by alpha (the global score in [0, 1]) times the dense reward
map at its cell, plus lambda_c times the plain likelihood of the model's own samples (learners/srum.token_loss)."""

from __future__ import annotations

import torch

from learners.grpo import k3_kl
from learners.grpo_trainer import GRPOTrainer
from learners.srum import LAMBDA_C, global_weight, token_loss
from rewards.srum import to_score
from rollout.batch import Judgement, RolloutBatch


class SRUMTrainer(GRPOTrainer):
    lambda_c = LAMBDA_C

    def sample_weights(self, batch: RolloutBatch, judged: Judgement) -> tuple[torch.Tensor, dict]:
        if judged.reward_maps is None:
            raise ValueError("trainer.algorithm=srum needs reward maps: set reward.judge=srum")
        # a NaN reward (a broken judge; counted by the health guard) gets no reward-weighted term
        alpha = global_weight(to_score(torch.nan_to_num(judged.rewards, nan=0.0).clamp(0, 1)))
        return alpha, {"reward_map_mean": float(judged.reward_maps.mean()),
                       "reward_map_negative": float((judged.reward_maps < 0).float().mean())}

    def loss(self, logp, idx, batch: RolloutBatch, judged: Judgement, alpha: torch.Tensor) -> tuple[torch.Tensor, dict]:
        on = lambda t: t[idx].to(logp.device)  # batches travel on the host; the policy may be on a GPU
        loss = token_loss(logp, on(alpha), torch.nan_to_num(on(judged.reward_maps), nan=0.0), self.lambda_c)
        with torch.no_grad():  # reported, not trained on: how far the policy drifted from the frozen reference
            kl = float(k3_kl(logp, on(judged.ref_logprobs)).mean())
        return loss, {"loss": float(loss), "kl": kl, "alpha_mean": float(alpha[idx].mean())}
