"""RolloutActor: a policy copy that samples G candidates per prompt with per-token guided log-probs."""

from __future__ import annotations

import time

import ray
import torch

from actors import weight_sync
from actors.checkpointed import Checkpointed
from actors.evaluation_sampling import EvaluationSampling
from learners.state import State, load_rng_state, merge, rng_state
from models import lora
from models.loading import load_adapter
from rollout import milr
from rollout.milr_reasoning import search_reasoned
from rollout.batch import RolloutBatch


@ray.remote
class RolloutActor(Checkpointed, EvaluationSampling):
    def __init__(self, model, threads: int, seed: int):
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.a = lora.with_lora(load_adapter(model.path, dtype=model.dtype), model.lora, model.path)
        self.a.freeze()  # sampling only (MILR's gradients go to its latents, not the weights)
        self.params = [p for _, p in self.a.trainable_parameters()]
        self.gen = self.a.generator(seed)
        self.version, self.groups = 0, None

    def join(self, rank: int, n_learners: int, n_rollouts: int, address: str, port: int, backend: str,
             timeout_s: float = 300) -> None:
        weight_sync.leave()  # a re-formed group (after an actor restart) replaces the old one
        self.groups = weight_sync.join(rank, n_learners, n_rollouts, address, port, backend, timeout_s)

    def receive_weights(self, bucket_bytes: int, check_stride: int = 1) -> tuple[int, int, float]:
        """The learner's newest weights, in place; returns (version now held, checksum of the weights held,
        seconds the transfer took)."""
        t0 = time.perf_counter()
        self.version, checksum = weight_sync.broadcast_weights(self.params, self.version, self.groups, bucket_bytes,
                                                               self.a.device, check_stride=check_stride)
        return self.version, checksum, time.perf_counter() - t0

    def sample(self, prompts: list[str], group_size: int, guidance: float, temperature: float) -> RolloutBatch:
        t0 = time.perf_counter()
        out = self.a.sample(prompts, group_size, guidance, temperature, self.gen)
        # the object store carries host tensors: a GPU tensor in a batch would pin this actor's device memory
        return RolloutBatch([p for p in prompts for _ in range(group_size)], out.tokens.cpu(), out.logprobs.cpu(), out.images,
                            self.version, group_size, time.perf_counter() - t0)

    def grid(self, prompts: list[str], per_prompt: int, guidance: float, temperature: float, seed: int):
        """Images of fixed prompts drawn with fixed noise (the same every call: what changes is the weights);
        returns (images, weight version)."""
        out = self.a.sample(prompts, per_prompt, guidance, temperature, self.a.generator(seed))
        return out.images, self.version

    def milr(self, prompts: list[str], settings, introspector, guidance: float, temperature: float) -> list:
        """MILR's latent search for these prompts (rollout.milr.search), judged by `introspector`; the weights
        are not touched. Returns one rollout.milr.Found per prompt."""
        settings = settings.resolved()

        def judge(row_prompts, out):
            batch = RolloutBatch(row_prompts, out.tokens, out.logprobs, out.images, self.version, settings.samples)
            return ray.get(introspector.rewards.remote(batch))
        run = search_reasoned if settings.variant == "paper" else milr.search
        with torch.enable_grad():
            return run(self.a, prompts, judge, settings, guidance, temperature, self.gen)[0]

    def state(self) -> State:
        """Sampling RNG and version (the weights are the learner's: a resume re-sends them)."""
        return merge(rng_state(self.gen), ({}, {"version": self.version}))

    def load_state(self, state: State) -> None:
        load_rng_state(state, self.gen)

    def weights(self) -> dict[str, torch.Tensor]:
        return self.a.weights()
