"""How a learner rank turns a loss into a weight update (`trainer.strategy`, registry: learners/strategies.py),
behind one small interface:
`attach(groups)` once the collective exists, `step(loss) -> grad norm`, `lr()`, `state()` / `load_state()`, and
for the weights: `gathered(params)` (a context in which they are whole on this rank), `weight_state(named)` /
`load_weight_state()` (what a checkpoint holds of them on this rank).

- torch: AdamW with linear warm-up; gradients averaged over the learner ranks by a bucketed all-reduce
  (data parallelism over the job's own process group, DDP's algorithm without its wrapper). Weights whole.
- deepspeed (learners/deepspeed_optim.py): ZeRO stage 1, 2 or 3 over the learner ranks' subgroup; under stage 3
  each rank holds a shard of every parameter, gathered bucket by bucket when the weights are sent or saved.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from learners.state import State, load_named_tensors, load_optimizer_state, merge, named_tensors, optimizer_state


def adamw_with_warmup(params, cfg) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW and its schedule: linear warm-up over `cfg.warmup_steps` optimiser steps, then constant."""
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(cfg.adam_beta1, cfg.adam_beta2), weight_decay=cfg.weight_decay,
                            eps=cfg.adam_eps)
    warmup = max(int(cfg.warmup_steps), 0)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda n: min(1.0, (n + 1) / (warmup + 1)))


class WholeWeights:
    """Strategies whose every rank holds every parameter whole."""

    def gathered(self, params):
        return nullcontext()

    def weight_state(self, named) -> State:
        return named_tensors("param", named), {}

    def load_weight_state(self, tensors: dict, named) -> None:
        load_named_tensors(tensors, "param", named)


class TorchOptim(WholeWeights):
    def __init__(self, params: list[torch.nn.Parameter], cfg, allreduce=lambda params: None):
        self.params, self.cfg, self.allreduce = params, cfg, allreduce
        self.opt, self.sched = adamw_with_warmup(params, cfg)

    def attach(self, groups, model) -> None:
        pass  # gradients go through `allreduce`, which holds the groups itself

    def step(self, loss: torch.Tensor) -> float:
        self.opt.zero_grad()
        loss.backward()
        self.allreduce(self.params)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, self.cfg.max_grad_norm)
        self.opt.step()
        self.sched.step()
        return float(grad_norm)

    def lr(self) -> float:
        return self.sched.get_last_lr()[0]

    def state(self) -> State:
        return merge(optimizer_state(self.opt), ({}, {"scheduler": self.sched.state_dict()}))

    def load_state(self, state: State) -> None:
        load_optimizer_state(self.opt, state)
        self.sched.load_state_dict(state[1]["scheduler"])
