"""LearnerActor: GRPO (or SRUM's reward-weighted update) on the policy; rank 0 broadcasts the new weights to
the rollout actors."""

from __future__ import annotations

import time

import ray
import torch

from actors import weight_sync
from actors.checkpointed import Checkpointed
from actors.evaluation_sampling import EvaluationSampling
from learners.state import State, load_rng_state, merge, rng_state
from learners.trainers import TRAINERS
from models import lora
from models.loading import load_adapter
from rollout.batch import Judgement, RolloutBatch, split_stale


@ray.remote
class LearnerActor(Checkpointed, EvaluationSampling):
    def __init__(self, model, threads: int, grpo_cfg, guidance: float, temperature: float, seed: int,
                 rank: int, world: int, bucket_bytes: int, max_staleness: int = 0, algorithm: str = "grpo",
                 strategy: str = "torch", zero_stage: int = 2, ds_overrides: dict | None = None):
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.a = lora.with_lora(load_adapter(model.path, dtype=model.dtype), model.lora, model.path)
        self.rank, self.world, self.bucket_bytes = rank, world, bucket_bytes
        self.groups, self.version, self.max_staleness, self.stale_dropped = None, 0, max_staleness, 0
        self.trainer = TRAINERS[algorithm](self.a, grpo_cfg, guidance, temperature, seed, self._allreduce, rank, world,
                                           strategy, zero_stage, ds_overrides)

    def address(self) -> tuple[str, int]:
        return ray.util.get_node_ip_address(), weight_sync.free_port()

    def join(self, rank: int, n_learners: int, n_rollouts: int, address: str, port: int, backend: str,
             timeout_s: float = 300) -> None:
        weight_sync.leave()  # a re-formed group (after an actor restart) replaces the old one
        self.groups = weight_sync.join(rank, n_learners, n_rollouts, address, port, backend, timeout_s)
        self.trainer.optim.attach(self.groups, self.a.module)

    def _allreduce(self, params):
        weight_sync.allreduce_gradients(params, self.groups, self.world, self.bucket_bytes)

    def step(self, parts: list, judgements: list) -> dict:
        """One GRPO update on a step's rollout parts and their judgements (lists of object refs). Parts more
        than `max_staleness` versions behind this learner are dropped and counted, never trained on."""
        t0 = time.perf_counter()
        parts, judged = ray.get(parts), ray.get(judgements)
        t1 = time.perf_counter()  # before: waiting for rollouts and scoring; after: training
        staleness = [self.version - p.version for p in parts]
        fresh, stale = split_stale([p.version for p in parts], self.version, self.max_staleness)
        self.stale_dropped += sum(len(parts[i].prompts) for i in stale)
        timing = {"rollout_s": max(p.sample_s for p in parts), "judge_s": max(j.judge_s for j in judged)}
        info = {"staleness_max": max(staleness), "stale_dropped": self.stale_dropped, "wait_s": t1 - t0, **timing}
        if not fresh:  # nothing to learn from: the weights (and their version) stay as they are
            return {**info, "updates": 0, "train_s": 0.0}
        stats = self.trainer.step(RolloutBatch.concat([parts[i] for i in fresh]),
                                  Judgement.concat([judged[i] for i in fresh]))
        self.version += 1
        return {**stats, **info, "train_s": time.perf_counter() - t1}

    def broadcast(self, check_stride: int = 1) -> tuple[int, int] | None:
        """Rank 0 sends the weights and returns (version, checksum) for the receivers to be checked against; the
        other learner ranks (called at the same time) take part in gathering partitioned weights (ZeRO-3)."""
        params, gather = self.trainer.params, self.trainer.optim.gathered
        if self.rank != 0:
            return weight_sync.follow_broadcast(params, self.bucket_bytes, gather)
        return weight_sync.broadcast_weights(params, self.version, self.groups, self.bucket_bytes, self.a.device,
                                             gather, check_stride)

    def weights(self) -> dict[str, torch.Tensor]:
        """A whole copy of the trainable weights (every learner rank must be asked at once under ZeRO-3)."""
        with self.trainer.optim.gathered(self.trainer.params):
            return self.a.weights()

    def state(self) -> State:
        """This rank's part of a checkpoint: policy, optimizer, scheduler, RNG states, version, counters."""
        counters = {"version": self.version, "stale_dropped": self.stale_dropped}
        return merge(self.trainer.state(), rng_state(), ({}, counters))

    def load_state(self, state: State) -> int:
        """Restore a checkpoint taken by `state`; returns the weight version it holds (the next sync sends it)."""
        self.trainer.load_state(state)
        load_rng_state(state)
        self.version, self.stale_dropped = state[1]["version"], state[1]["stale_dropped"]
        return self.version

    def save(self, path: str) -> None:
        """Rank 0 writes the policy in its model's own layout; every learner rank is called (ZeRO-3 gathers)."""
        with self.trainer.optim.gathered(list(self.a.module.parameters())):
            if self.rank == 0:
                self.a.save_pretrained(path)
