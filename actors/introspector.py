"""IntrospectorActor: the frozen initial model. Writes and caches rubrics, runs the configured judge on them
(rewards/judges.py: Meta-TTRL's Eq. 5-6 by default) and gives reference log-probs for the KL term."""

from __future__ import annotations

import time

import ray
import torch

import benchmarks
from actors.checkpointed import Checkpointed
from learners.state import State, load_rng_state, merge, rng_state
from models.loading import JUDGE_BACKENDS, load_adapter
from rewards.dialects import dialect
from rewards.introspection import RUBRIC_SOURCES
from rewards.judges import JudgeContext, build_judge, model_writer
from rewards.rubric import RubricItem
from rollout.batch import Judgement, RolloutBatch
from rollout.health import batch_health


def judge_model(reward_cfg, dtype: str, policy):
    """The model that writes and answers rubrics: the policy's own frozen copy (Meta-TTRL), an external one
    (E-TTRL: reward.model_path), or a vLLM engine over one (reward.backend=vllm, GPU only)."""
    if reward_cfg.backend == "transformers" and not reward_cfg.model_path:
        return policy
    return JUDGE_BACKENDS[reward_cfg.backend](reward_cfg.model_path, dtype, reward_cfg.vllm_gpu_memory)


@ray.remote
class IntrospectorActor(Checkpointed):
    def __init__(self, model, threads: int, rubric_cfg, metadata: dict | None, seed: int, reward_cfg,
                 benchmark: str = "toyworld", eval_cfg=None):
        torch.set_num_threads(threads)
        # the frozen policy: the KL term's reference, and (with its understanding) the judge of Meta-TTRL
        self.ref = load_adapter(model.path, dtype=model.dtype, understanding=model.understanding_path)
        self.ref.freeze()
        self.a = judge_model(reward_cfg, model.dtype, self.ref)
        self.gen = self.ref.generator(seed)
        writer = model_writer(self.a, rubric_cfg.max_new_tokens, self.gen)
        bench = benchmarks.get(benchmark)
        parse = dialect(self.a.rubric_dialect).parse
        self.book = RUBRIC_SOURCES[rubric_cfg.source](writer, parse, rubric_cfg.retries, metadata, bench.rubric_style)
        # reward.judge=oracle rewards the benchmark's own evaluator (RL leakage: an upper bound); built on first use
        self.run_judge = build_judge(JudgeContext(reward_cfg, self.book, self.a, self.ref.reward_grid, metadata or {},
                                                  benchmarks.oracle(benchmark, eval_cfg), self.gen))

    def rubrics(self, prompts: list[str]) -> list[list[RubricItem]]:
        return self.book.get(prompts)

    def state(self) -> State:
        """The rubric cache and counts, and the RNG of sampled rubric retries."""
        return merge(rng_state(self.gen), ({}, {"rubric_book": self.book.state()}))

    def load_state(self, state: State) -> None:
        load_rng_state(state, self.gen)
        self.book.load_state(state[1]["rubric_book"])

    @torch.no_grad()
    def judge(self, batch: RolloutBatch, guidance: float, temperature: float) -> Judgement:
        """Rewards of a rollout part by the configured judge, reference log-probs for the KL term, health counts."""
        t0, counts_before = time.perf_counter(), dict(self.book.counts)
        scored = self.run_judge(batch)
        ref = self.ref.image_logprobs(batch.prompts, batch.tokens, guidance, temperature).float().cpu()
        rubric = {k: v - counts_before.get(k, 0) for k, v in self.book.counts.items()}  # this call's share
        health = batch_health(scored.rewards, batch.group_size, batch.images, scored.fallback)
        return Judgement(scored.rewards, ref, time.perf_counter() - t0, rubric, health, scored.reward_maps)

    @torch.no_grad()
    def rewards(self, batch: RolloutBatch) -> torch.Tensor:
        """The configured judge's rewards alone (MILR's search needs no reference log-probs)."""
        return self.run_judge(batch).rewards
