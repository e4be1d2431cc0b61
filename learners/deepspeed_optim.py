"""DeepSpeed ZeRO-1/2 as a learner strategy (`trainer.strategy=deepspeed`, extra `meta-ttrl[deepspeed]`).

The learner ranks share one process group with the rollout actors (weights are broadcast over it), so DeepSpeed
must not use the whole world: a small `mpu` object names the learner subgroup as its data-parallel group. The
optimizer is torch's AdamW handed to DeepSpeed (no fused-Adam build on CPU); clipping, warm-up and precision
come from the same grpo settings as the torch strategy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from learners.optim import adamw_with_warmup
from learners.state import State, load_optimizer_state, merge, optimizer_state

ZERO_STAGES = (1, 2)  # stage 3 partitions the parameters themselves: gather-on-broadcast is not built yet


@dataclass
class LearnerGroupMPU:
    """DeepSpeed's model-parallel-unit protocol: data parallelism over the learner subgroup, no model parallelism."""
    data_group: object
    rank: int
    world: int
    single_group: object

    def get_data_parallel_group(self):
        return self.data_group

    def get_data_parallel_world_size(self) -> int:
        return self.world

    def get_data_parallel_rank(self) -> int:
        return self.rank

    def get_model_parallel_group(self):
        return self.single_group

    def get_model_parallel_world_size(self) -> int:
        return 1

    def get_model_parallel_rank(self) -> int:
        return 0


def require_deepspeed():
    try:
        import deepspeed
    except ImportError:
        raise RuntimeError("trainer.strategy=deepspeed needs the deepspeed extra: pip install 'meta-ttrl[deepspeed]'"
                           " (make install has it)") from None
    return deepspeed


def ds_config(cfg, zero_stage: int, dtype: torch.dtype) -> dict:
    if zero_stage not in ZERO_STAGES:
        raise ValueError(f"trainer.zero_stage must be one of {ZERO_STAGES}, got {zero_stage}")
    return {"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 1,
            "gradient_clipping": cfg.max_grad_norm, "zero_optimization": {"stage": zero_stage},
            "bf16": {"enabled": dtype == torch.bfloat16}, "fp16": {"enabled": dtype == torch.float16},
            "zero_allow_untested_optimizer": True, "steps_per_print": 2**31 - 1}


class DeepSpeedOptim:
    def __init__(self, params: list[torch.nn.Parameter], cfg, zero_stage: int = 2):
        self.deepspeed = require_deepspeed()
        self.params, self.cfg, self.stage = params, cfg, zero_stage
        ds_config(cfg, zero_stage, torch.float32)  # a bad stage fails at construction, not at the first step
        self.engine = None

    def attach(self, groups, model) -> None:
        """Build the engine over the learner subgroup (every learner rank calls this at once)."""
        import torch.distributed as dist
        os.environ.setdefault("LOCAL_RANK", "0")  # one rank per actor process; Ray assigns its GPU
        if not torch.cuda.is_available():
            # DeepSpeed's CPU shared-memory all-reduce serves its inference path, not ZeRO (whose collectives go
            # through torch.distributed here); unbuilt, it would cost ~40 s of C++ compile at first use
            self.deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
        rank, world = dist.get_rank(groups.learners), dist.get_world_size(groups.learners)
        opt, sched = adamw_with_warmup(self.params, self.cfg)
        self.engine, self.opt, _, self.sched = self.deepspeed.initialize(
            model=model, model_parameters=self.params, optimizer=opt, lr_scheduler=sched,
            config=ds_config(self.cfg, self.stage, self.params[0].dtype),
            mpu=LearnerGroupMPU(groups.learners, rank, world, groups.own), dist_init_required=False)

    def _engine(self):
        if self.engine is None:
            raise RuntimeError("the DeepSpeed learner has no engine: join the collective (attach) first")
        return self.engine

    def step(self, loss: torch.Tensor) -> float:
        engine = self._engine()
        engine.backward(loss)
        engine.step()  # reduce-scatter of gradients over the learner ranks, clipping, AdamW on this rank's shard
        norm = engine.get_global_grad_norm()
        return float(norm) if norm is not None else float("nan")

    def lr(self) -> float:
        return self.sched.get_last_lr()[0]

    def state(self) -> State:
        """This rank's shard of the AdamW moments (with the same learner count a resume restores it exactly)."""
        self._engine()
        return merge(optimizer_state(self.opt.optimizer), ({}, {"scheduler": self.sched.state_dict()}))

    def load_state(self, state: State) -> None:
        """After the trainer restored the weights: rebuild the fp32 shards from them, then the moments."""
        self._engine()
        self.opt.refresh_fp32_params()
        load_optimizer_state(self.opt.optimizer, state)
        self.sched.load_state_dict(state[1]["scheduler"])
