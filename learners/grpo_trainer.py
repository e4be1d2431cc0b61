"""One GRPO update on a rollout batch (no Ray: the learner actor wraps it)."""

from __future__ import annotations

from dataclasses import asdict

import torch

from learners.state import State, load_named_tensors, load_optimizer_state, merge, named_tensors, optimizer_state
from learners.grpo import group_advantages, grpo_loss
from rollout.batch import Judgement, RolloutBatch

# The image-generation path of a Janus model: what test-time RL of the generator trains.
GENERATOR_PREFIXES = ("model.language_model.", "model.generation_", "lm_head.")


def generator_parameters(model) -> list[tuple[str, torch.nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if n.startswith(GENERATOR_PREFIXES)]


def generator_state(model) -> dict[str, torch.Tensor]:
    """A detached copy of the generator's weights (what a sync must make equal across roles)."""
    return {n: p.detach().clone() for n, p in generator_parameters(model)}


class GRPOTrainer:
    def __init__(self, adapter, cfg_grpo, guidance: float, temperature: float, seed: int,
                 allreduce=lambda params: None, rank: int = 0, world: int = 1):
        self.a, self.cfg, self.guidance, self.temperature = adapter, cfg_grpo, guidance, temperature
        self.named = generator_parameters(adapter.model)
        for _, p in adapter.model.named_parameters():
            p.requires_grad_(False)
        for _, p in self.named:
            p.requires_grad_(True)
        self.params = [p for _, p in self.named]
        self.opt = torch.optim.AdamW(self.params, lr=cfg_grpo.lr, weight_decay=cfg_grpo.weight_decay)
        warmup = max(int(cfg_grpo.warmup_steps), 0)  # linear warm-up over optimiser steps, then constant
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambda n: min(1.0, (n + 1) / (warmup + 1)))
        self.gen = torch.Generator().manual_seed(seed)
        self.allreduce, self.rank, self.world = allreduce, rank, world

    def step(self, batch: RolloutBatch, judged: Judgement) -> dict:
        """`epochs` passes of minibatch updates on this rank's share of the step's samples."""
        if len(batch.prompts) % self.world:  # ranks would run different minibatch counts and hang in all-reduce
            raise ValueError(f"{len(batch.prompts)} samples do not split evenly over {self.world} learner ranks")
        weights, extra = self.sample_weights(batch, judged)
        mine = torch.arange(len(batch.prompts))[self.rank:: self.world]
        self.a.model.train()
        stats = []
        for _ in range(self.cfg.epochs):
            order = mine[torch.randperm(len(mine), generator=self.gen)]
            for start in range(0, len(order), self.cfg.minibatch):
                idx = order[start: start + self.cfg.minibatch]
                logp = self.a.image_logprobs([batch.prompts[i] for i in idx], batch.tokens[idx], self.guidance,
                                             self.temperature)
                loss, s = self.loss(logp, idx, batch, judged, weights)
                self.opt.zero_grad()
                loss.backward()
                self.allreduce(self.params)
                grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.max_grad_norm)
                self.opt.step()
                self.sched.step()
                stats.append({**s, "grad_norm": float(grad_norm)})
        self.a.model.eval()
        mean = {k: sum(d[k] for d in stats) / len(stats) for k in stats[0]} if stats else {}
        return {**mean, **extra, "updates": len(stats), "lr": self.sched.get_last_lr()[0]}

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
        return merge((named_tensors("param", self.named), {}), optimizer_state(self.opt),
                     ({"trainer.gen": self.gen.get_state()}, {"scheduler": self.sched.state_dict()}))

    def load_state(self, state: State) -> None:
        tensors, rest = state
        load_named_tensors(tensors, "param", self.named)
        load_optimizer_state(self.opt, state)
        self.sched.load_state_dict(rest["scheduler"])
        self.gen.set_state(tensors["trainer.gen"])
