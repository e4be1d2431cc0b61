"""IntrospectorActor: the frozen initial model. Writes and caches rubrics, scores images on them (Eq. 5-6)
and gives reference log-probs for the KL term."""

from __future__ import annotations

import time

import ray
import torch

from learners.state import State, load_rng_state, merge, rng_state
from actors.checkpointed import Checkpointed
from models.janus import JanusAdapter
from rewards.introspection import RubricBook, fallback_rubric
from rewards.rubric import SCHEMA_INSTRUCTION, RubricItem
from rewards.scoring import gvu_rewards, question_scores, rubric_rewards
from rollout.batch import Judgement, RolloutBatch
from rollout.health import batch_health


@ray.remote
class IntrospectorActor(Checkpointed):
    def __init__(self, model_path: str, threads: int, rubric_cfg, metadata: dict | None, seed: int,
                 judge: str = "rubric"):
        torch.set_num_threads(threads)
        self.a = JanusAdapter.from_pretrained(model_path)
        self.a.model.requires_grad_(False)
        self.cfg, self.gen = rubric_cfg, torch.Generator().manual_seed(seed)
        self.book = RubricBook(self._write if rubric_cfg.source == "introspector" else None, rubric_cfg.retries,
                               metadata if rubric_cfg.source == "metadata" else None)
        self.metadata, self.judge_kind = metadata or {}, judge
        self.judges = {"rubric": self._rubric_rewards, "gvu": self._gvu_rewards, "oracle": self._oracle_rewards}

    def _write(self, prompts: list[str], attempt: int) -> list[str]:
        return self.a.write(prompts, SCHEMA_INSTRUCTION, self.cfg.max_new_tokens,
                            temperature=0.0 if attempt == 0 else 1.0, generator=self.gen)

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
        rewards, fallback = self.judges[self.judge_kind](batch)
        ref = self.a.image_logprobs(batch.prompts, batch.tokens, guidance, temperature)
        rubric = {k: v - counts_before.get(k, 0) for k, v in self.book.counts.items()}  # this call's share
        health = batch_health(rewards, batch.group_size, batch.images, fallback)
        return Judgement(rewards, ref, time.perf_counter() - t0, rubric, health)

    def _rubric_rewards(self, batch: RolloutBatch, chunk: int = 256) -> tuple[torch.Tensor, list[bool]]:
        """Meta-TTRL: the prompt's rubric (written once, cached), each question scored (Eq. 5), geometric mean
        (Eq. 6); also which samples were scored on the fallback rubric."""
        rubrics = self.book.get(batch.prompts)
        questions, index, target = [], [], []
        for i, items in enumerate(rubrics):
            for item in items:
                questions.append(item.question)
                index.append(i)
                target.append(item.target == "yes")
        features = self.a.image_features(batch.images)  # each image encoded once
        probs = torch.cat([self.a.answer_probs(batch.images, questions[s: s + chunk], index[s: s + chunk], features)
                           for s in range(0, len(questions), chunk)])
        rewards = rubric_rewards(question_scores(probs, torch.tensor(target)), torch.tensor(index), len(batch.prompts))
        return rewards, [items == fallback_rubric(p) for items, p in zip(rubrics, batch.prompts)]

    def _gvu_rewards(self, batch: RolloutBatch, chunk: int = 64) -> tuple[torch.Tensor, list[bool]]:
        """GvU: how likely the frozen model finds the prompt as a caption of the image (geometric mean)."""
        logprobs = []
        for s in range(0, len(batch.prompts), chunk):
            logprobs += self.a.prompt_logprobs(batch.images[s: s + chunk], batch.prompts[s: s + chunk])
        return gvu_rewards(logprobs), [False] * len(batch.prompts)

    def _oracle_rewards(self, batch: RolloutBatch) -> tuple[torch.Tensor, list[bool]]:
        """RL leakage (upper bound, not test-time legal): the benchmark's own evaluator as the reward."""
        from toyworld.oracle import evaluate
        missing = [p for p in batch.prompts if p not in self.metadata]
        if missing:
            raise KeyError(f"reward.judge=oracle needs GenEval metadata for prompt {missing[0]!r}")
        verdicts = [evaluate(img, self.metadata[p]).correct for img, p in zip(batch.images, batch.prompts)]
        return torch.tensor(verdicts, dtype=torch.float32), [False] * len(batch.prompts)
