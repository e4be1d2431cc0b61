"""One GRPO update on a rollout batch (no Ray: the learner actor wraps it)."""

from __future__ import annotations

from dataclasses import asdict

import torch

from learners.grpo import group_advantages, grpo_loss
from learners.state import State, merge
from learners.strategies import build_optim
from rollout.batch import Judgement, RolloutBatch


class GRPOTrainer:
    def __init__(self, adapter, cfg_grpo, guidance: float, temperature: float, seed: int,
                 allreduce=lambda params: None, rank: int = 0, world: int = 1, strategy: str = "torch",
                 zero_stage: int = 2, ds_overrides: dict | None = None):
        self.a, self.cfg, self.guidance, self.temperature = adapter, cfg_grpo, guidance, temperature
        self.named = adapter.trainable_parameters()
        adapter.freeze()
        for _, p in self.named:
            p.requires_grad_(True)
        self.params = [p for _, p in self.named]
        self.optim = build_optim(strategy, self.params, cfg_grpo, allreduce, zero_stage, ds_overrides)
        self.gen = torch.Generator().manual_seed(seed)
        self.rank, self.world = rank, world

    def step(self, batch: RolloutBatch, judged: Judgement) -> dict:
        """`epochs` passes of minibatch updates on this rank's share of the step's samples."""
        if len(batch.prompts) % self.world:  # ranks would run different minibatch counts and hang in all-reduce
            raise ValueError(f"{len(batch.prompts)} samples do not split evenly over {self.world} learner ranks")
        weights, extra = self.sample_weights(batch, judged)
        mine = torch.arange(len(batch.prompts))[self.rank:: self.world]
        self.a.train(True)
        stats = []
        for _ in range(self.cfg.epochs):
            order = mine[torch.randperm(len(mine), generator=self.gen)]
            for start in range(0, len(order), self.cfg.minibatch):
                idx = order[start: start + self.cfg.minibatch]
                loss, s = self.loss(self.predict(batch, idx), idx, batch, judged, weights)
                stats.append({**s, "grad_norm": self.optim.step(loss)})
        self.a.train(False)
        mean = {k: sum(d[k] for d in stats) / len(stats) for k in stats[0]} if stats else {}
        return {**mean, **extra, "updates": len(stats), "lr": self.optim.lr()}

    def predict(self, batch: RolloutBatch, idx: torch.Tensor):
        """What the loss is taken on, with grad: the samples' teacher-forced log-probs under the current policy."""
        return self.a.image_logprobs([batch.prompts[i] for i in idx], batch.tokens[idx], self.guidance,
                                     self.temperature)

    def sample_weights(self, batch: RolloutBatch, judged: Judgement) -> tuple[torch.Tensor, dict]:
        """Eq. 8: group-standardised advantages (and the count of flat groups, which carry no signal)."""
        adv, flat_groups = group_advantages(judged.rewards, batch.group_size)
        return adv, {"zero_variance_groups": flat_groups}

    def loss(self, logp, idx, batch: RolloutBatch, judged: Judgement, adv: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Eq. 7 on one minibatch: clipped ratio to the sampling policy, k3 KL to the frozen reference."""
        on = lambda t: t[idx].to(logp.device)  # batches travel on the host; the policy may be on a GPU
        loss, s = grpo_loss(logp, on(batch.logprobs), on(judged.ref_logprobs), on(adv),
                            clip_low=self.cfg.clip_low, clip_high=self.cfg.clip_high, beta=self.cfg.beta,
                            aggregation=self.cfg.aggregation)
        return loss, asdict(s)

    def state(self) -> State:
        """Policy weights, AdamW moments, scheduler and sampling RNG: what an exact resume needs."""
        return merge(self.optim.weight_state(self.named), self.optim.state(),
                     ({"trainer.gen": self.gen.get_state()}, {}))

    def load_state(self, state: State) -> None:
        tensors, rest = state
        self.optim.load_weight_state(tensors, self.named)
        self.optim.load_state(state)
        self.gen.set_state(tensors["trainer.gen"])
