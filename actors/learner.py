"""LearnerActor: GRPO on the policy; rank 0 broadcasts the new weights to the rollout actors."""

from __future__ import annotations

import ray
import torch

from actors import weight_sync
from learners.grpo_trainer import GRPOTrainer, generator_state
from models.janus import JanusAdapter
from rollout.batch import Judgement, RolloutBatch


@ray.remote
class LearnerActor:
    def __init__(self, model_path: str, threads: int, grpo_cfg, guidance: float, temperature: float, seed: int,
                 rank: int, world: int, bucket_bytes: int):
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.a = JanusAdapter.from_pretrained(model_path)
        self.rank, self.world, self.bucket_bytes = rank, world, bucket_bytes
        self.groups, self.version = None, 0
        self.trainer = GRPOTrainer(self.a, grpo_cfg, guidance, temperature, seed, self._allreduce, rank, world)

    def address(self) -> tuple[str, int]:
        return ray.util.get_node_ip_address(), weight_sync.free_port()

    def join(self, rank: int, n_learners: int, n_rollouts: int, address: str, port: int, backend: str) -> None:
        self.groups = weight_sync.join(rank, n_learners, n_rollouts, address, port, backend)

    def _allreduce(self, params):
        weight_sync.allreduce_gradients(params, self.groups, self.world, self.bucket_bytes)

    def step(self, parts: list, judgements: list) -> dict:
        """One GRPO update on a step's rollout parts and their judgements (lists of object refs)."""
        batch = RolloutBatch.concat(ray.get(parts))
        stats = self.trainer.step(batch, Judgement.concat(ray.get(judgements)))
        self.version += 1
        return stats

    def broadcast(self) -> int:
        return weight_sync.broadcast_weights(self.trainer.params, self.version, self.groups, self.bucket_bytes,
                                             self.a.device)

    def weights(self) -> dict[str, torch.Tensor]:
        return generator_state(self.a.model)

    def save(self, path: str) -> None:
        self.a.save_pretrained(path)
