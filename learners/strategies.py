"""The update-strategy registry (`trainer.strategy`): name -> the optimiser wrapper a learner rank builds
(learners/optim.py's interface), and the learning algorithms (`trainer.algorithm`) that use them."""

from __future__ import annotations

from learners.optim import TorchOptim


def _deepspeed(params, cfg, allreduce, zero_stage: int, ds_overrides: dict | None):
    from learners.deepspeed_optim import DeepSpeedOptim  # the optional extra, imported only when chosen
    return DeepSpeedOptim(params, cfg, zero_stage, ds_overrides)


STRATEGIES = {
    "torch": lambda params, cfg, allreduce, zero_stage, ds_overrides: TorchOptim(params, cfg, allreduce),
    "deepspeed": _deepspeed,
}


def build_optim(strategy: str, params, cfg, allreduce, zero_stage: int = 2, ds_overrides: dict | None = None):
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown trainer.strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    return STRATEGIES[strategy](params, cfg, allreduce, zero_stage, ds_overrides)
