"""DeepSpeed ZeRO-1/2/3 as a learner strategy (`trainer.strategy=deepspeed`, extra `meta-ttrl[deepspeed]`).

The learner ranks share one process group with the rollout actors (weights are broadcast over it), so DeepSpeed
must not use the whole world: a small `mpu` object names the learner subgroup as its data-parallel group. The
optimizer is torch's AdamW handed to DeepSpeed (no fused-Adam build on CPU); clipping, warm-up and precision
come from the same grpo settings as the torch strategy.

Stage 3 partitions the parameters: outside a forward each rank holds a flat shard of every parameter (small ones
stay whole below `stage3_param_persistence_threshold`). The weight broadcast and `save` gather them bucket by bucket
(`gathered`, a collective every learner rank enters); a checkpoint holds each rank's shard, so it restores with
the same number of learner ranks. Every stage's checkpoint also holds the fp32 master shard, so a bf16 run resumes
exactly.
"""

from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch

from learners.optim import WholeWeights, adamw_with_warmup
from learners.state import State, load_optimizer_state, merge, optimizer_state

ZERO_STAGES = (1, 2, 3)


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


def confine_world_barriers(deepspeed, learners) -> None:
    """Make DeepSpeed's barriers on the default (world) group wait for the learner ranks only. ZeRO-3's set-up
    calls `barrier()` with no group; the job's world also holds the rollout ranks, which never enter DeepSpeed, so
    those barriers would wait forever. In a learner process DeepSpeed's world is the learner group."""
    comm = deepspeed.comm
    original = getattr(comm.barrier, "__wrapped_world_barrier__", comm.barrier)

    def barrier(group=None, *args, **kwargs):
        return original(learners if group is None else group, *args, **kwargs)

    barrier.__wrapped_world_barrier__ = original
    comm.barrier = barrier


def require_deepspeed():
    try:
        import deepspeed
    except ImportError:
        raise RuntimeError("trainer.strategy=deepspeed needs the deepspeed extra: pip install 'meta-ttrl[deepspeed]'"
                           " (make install has it)") from None
    return deepspeed


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def ds_config(max_grad_norm: float, zero_stage: int, dtype: torch.dtype, overrides: dict | None = None) -> dict:
    if zero_stage not in ZERO_STAGES:
        raise ValueError(f"trainer.zero_stage must be one of {ZERO_STAGES}, got {zero_stage}")
    base = {"train_micro_batch_size_per_gpu": 1, "gradient_accumulation_steps": 1,
            "gradient_clipping": max_grad_norm, "zero_optimization": {"stage": zero_stage},
            "bf16": {"enabled": dtype == torch.bfloat16}, "fp16": {"enabled": dtype == torch.float16},
            "zero_allow_untested_optimizer": True, "steps_per_print": 2**31 - 1}
    overrides = dict(overrides or {})
    fixed = [k for k in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping",
                         "optimizer", "scheduler", "bf16", "fp16") if k in overrides]
    if fixed or "stage" in overrides.get("zero_optimization", {}):
        raise ValueError(f"trainer.deepspeed may not set {fixed or ['zero_optimization.stage']}: they come from "
                         f"grpo.*, model.dtype and trainer.zero_stage")
    return deep_merge(base, overrides)


class DeepSpeedOptim(WholeWeights):
    def __init__(self, params: list[torch.nn.Parameter], cfg, zero_stage: int = 2, overrides: dict | None = None):
        self.deepspeed = require_deepspeed()
        self.params, self.cfg, self.stage, self.overrides = params, cfg, zero_stage, overrides
        ds_config(cfg.max_grad_norm, zero_stage, torch.float32, overrides)  # bad settings fail here, not at step 1
        self.engine = None

    def attach(self, groups, model) -> None:
        """Build the engine over the learner subgroup (every learner rank calls this at once)."""
        import torch.distributed as dist
        os.environ.setdefault("LOCAL_RANK", "0")  # one rank per actor process; Ray assigns its GPU
        if not torch.cuda.is_available():
            # DeepSpeed's CPU shared-memory all-reduce serves its inference path, not ZeRO (whose collectives go
            # through torch.distributed here); unbuilt, it would cost ~40 s of C++ compile at first use
            self.deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
        confine_world_barriers(self.deepspeed, groups.learners)
        rank, world = dist.get_rank(groups.learners), dist.get_world_size(groups.learners)
        opt, sched = adamw_with_warmup(self.params, self.cfg)
        self.engine, self.opt, _, self.sched = self.deepspeed.initialize(
            model=model, model_parameters=self.params, optimizer=opt, lr_scheduler=sched,
            config=ds_config(self.cfg.max_grad_norm, self.stage, self.params[0].dtype, self.overrides),
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

    # ---- weights: whole under stages 1-2, a shard per rank under stage 3 -----------------------------
    def gathered(self, params):
        """Stage 3: `params` whole on every learner rank inside the context (read-only: changes are dropped)."""
        if self.stage < 3 or self.engine is None:
            return nullcontext()
        return self.deepspeed.zero.GatheredParameters(list(params), modifier_rank=None)

    def weight_state(self, named) -> State:
        if self.stage < 3:
            return super().weight_state(named)
        return {f"param_shard.{n}": p.ds_tensor.detach() for n, p in named}, {}

    def load_weight_state(self, tensors: dict, named) -> None:
        if self.stage < 3:
            return super().load_weight_state(tensors, named)
        self.opt.checkpoint_event_prologue()  # every parameter partitioned, the persistent (small) ones too
        with torch.no_grad():
            for n, p in named:
                saved = tensors.get(f"param_shard.{n}")
                if saved is None or saved.shape != p.ds_tensor.shape:
                    raise ValueError(f"checkpoint has no ZeRO-3 shard of {n!r} of this rank's size "
                                     f"{tuple(p.ds_tensor.shape)}: a ZeRO-3 checkpoint restores only with the "
                                     f"same trainer.learners and trainer.zero_stage it was written with")
                p.ds_tensor.copy_(saved)
        self.opt.checkpoint_event_epilogue()  # persistent parameters whole again (a collective of the learners)

    # ---- optimizer: this rank's AdamW moments and fp32 master shard -----------------------------------
    def _masters(self) -> list[torch.Tensor]:
        opt = self.opt
        return list(opt.fp32_partitioned_groups_flat if self.stage == 3 else opt.single_partition_of_fp32_groups)

    @contextmanager
    def _base_optimizer(self):
        """The torch AdamW under ZeRO, its param groups filled: stage 3 empties them between steps (they hold the
        fp32 shards only while it steps), and a state dict of empty groups cannot be written or loaded."""
        if self.stage == 3:
            self.opt._set_fp32_optimizer_param_groups()
        try:
            yield self.opt.optimizer
        finally:
            if self.stage == 3:
                self.opt._clear_fp32_optimizer_param_groups()

    def state(self) -> State:
        """With the same learner count a resume restores it exactly (bf16 weights too: the fp32 masters)."""
        self._engine()
        masters = {f"master.{i}": t.detach() for i, t in enumerate(self._masters())}
        with self._base_optimizer() as opt:
            moments = optimizer_state(opt)
        return merge(moments, (masters, {"scheduler": self.sched.state_dict()}))

    def load_state(self, state: State) -> None:
        """After the weights: the fp32 master shards (rebuilt from the weights in checkpoints without them), then
        the moments."""
        self._engine()
        tensors = state[0]
        masters = self._masters()
        saved = [tensors.get(f"master.{i}") for i in range(len(masters))]
        if any(t is not None and t.shape != m.shape for t, m in zip(saved, masters)):
            raise ValueError("the checkpoint's fp32 master shards do not fit this rank: a DeepSpeed checkpoint "
                             "restores only with the trainer.learners and trainer.zero_stage it was written with")
        if all(t is not None for t in saved):
            with torch.no_grad():
                for t, m in zip(saved, masters):
                    m.copy_(t)
        else:
            self.opt.refresh_fp32_params()
        with self._base_optimizer() as opt:
            load_optimizer_state(opt, state)
        self.sched.load_state_dict(state[1]["scheduler"])
