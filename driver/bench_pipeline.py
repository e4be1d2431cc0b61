"""Pipeline benchmarks with simulated stage costs (`make bench`, sections `async`, `scaling`, `overhead`).

Actors that sleep for a stage's cost stand in for the rollout, introspector and learner: on 2 cores real
arithmetic would hide any overlap, sleeping does not. They move real-size payloads (the toy's 64x64 images, image
codes and log-probs) through the object store, and the driver runs the job's own scheduling: driver/pipeline.py's
Pipeline (steps submitted `ahead`) and the job's train-then-sync order (actors/job.py). So a measured step is the
stage costs, as overlapped by the real pipeline, plus the framework's own cost (driver, object store,
serialization, scheduling); with zero-cost stages only the latter is left.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import ray
import torch

from driver.pipeline import Pipeline
from driver.progress import PromptStream
from rollout.batch import Judgement, RolloutBatch

IMAGE, TOKENS = (64, 64, 3), 64  # the toy world's payload per sample


@dataclass(frozen=True)
class StageCosts:
    """Seconds of one whole step's work per stage (split over the actors of a role by their share of prompts)."""
    rollout: float
    judge: float
    train: float
    sync: float

    @property
    def on_policy(self) -> float:
        return self.rollout + self.judge + self.train + self.sync

    def predicted_step(self, n_rollouts: int, n_judges: int) -> float:
        """The overlapped step: no faster than the slowest actor's share, and the learner's update and the
        rollouts' sampling each precede the weight sync."""
        return max(self.rollout / n_rollouts + self.sync, self.judge / n_judges, self.train + self.sync)


@ray.remote(num_cpus=1)
class SimRollout:
    def __init__(self, cost_per_prompt: float):
        self.cost, self.version = cost_per_prompt, 0
        self.images = np.random.default_rng(0).integers(0, 255, (512, *IMAGE), dtype=np.uint8)

    def sample(self, prompts: list[str], group_size: int, *_) -> RolloutBatch:
        time.sleep(self.cost * len(prompts))
        n = len(prompts) * group_size
        return RolloutBatch([p for p in prompts for _ in range(group_size)], torch.zeros(n, TOKENS, dtype=torch.long),
                            torch.zeros(n, TOKENS), self.images[:n].copy(), self.version, group_size)

    def receive_weights(self, seconds: float) -> int:
        time.sleep(seconds)
        self.version += 1
        return self.version


@ray.remote(num_cpus=1)
class SimJudge:
    def __init__(self, cost_per_sample: float):
        self.cost = cost_per_sample

    def judge(self, batch: RolloutBatch, *_) -> Judgement:
        time.sleep(self.cost * len(batch.prompts))
        return Judgement(torch.rand(len(batch.prompts)), torch.zeros_like(batch.logprobs))


@ray.remote(num_cpus=1)
class SimLearner:
    def __init__(self, cost: float):
        self.cost = cost

    def step(self, parts: list, judgements: list) -> dict:
        ray.get(parts), ray.get(judgements)
        time.sleep(self.cost)
        return {"updates": 1}

    def broadcast(self, seconds: float) -> None:
        time.sleep(seconds)


class SimJob:
    """The parts of actors/job.MetaTTRLJob that Pipeline and the loop call, over sleeping actors."""

    def __init__(self, costs: StageCosts, n_rollouts: int, n_judges: int, prompts_per_step: int, group_size: int,
                 strategy: str = "SPREAD"):
        self.costs, self.g = costs, group_size
        opts = {"scheduling_strategy": strategy}
        self.rollouts = [SimRollout.options(**opts).remote(costs.rollout / prompts_per_step)
                         for _ in range(n_rollouts)]
        self.judges = [SimJudge.options(**opts).remote(costs.judge / (prompts_per_step * group_size))
                       for _ in range(n_judges)]
        self.learner = SimLearner.options(**opts).remote(costs.train)

    def rollout(self, prompts: list[str]) -> list:
        n = len(self.rollouts)
        return [a.sample.remote(prompts[i::n], self.g) for i, a in enumerate(self.rollouts) if prompts[i::n]]

    def judge(self, parts: list) -> list:
        return [self.judges[i % len(self.judges)].judge.remote(p) for i, p in enumerate(parts)]

    def evaluate_parts(self, parts: list, step: int) -> list:
        return []

    def train(self, parts: list, judgements: list) -> dict:
        return ray.get(self.learner.step.remote(parts, judgements))

    def sync(self) -> None:
        ray.get([self.learner.broadcast.remote(self.costs.sync)] +
                [a.receive_weights.remote(self.costs.sync) for a in self.rollouts])

    def shutdown(self) -> None:
        for actor in self.rollouts + self.judges + [self.learner]:
            ray.kill(actor)


def seconds_per_step(job: SimJob, ahead: int, steps: int, warmup: int = 2, prompts_per_step: int = 8) -> float:
    """The driver's loop (launch/meta_ttrl.py's verbs, without run files): pipeline -> train -> sync, and the
    judgements fetched for the step's metrics line. Mean seconds per step after `warmup` steps."""
    pipeline = Pipeline(job, PromptStream([f"prompt {i}" for i in range(64)], 0), prompts_per_step, ahead)
    for step in range(steps):
        if step == warmup:
            t0 = time.perf_counter()
        flight = pipeline.current(step, steps)
        job.train(flight.parts, flight.judgements)
        pipeline.done()
        job.sync()
        ray.get(flight.judgements)
    return (time.perf_counter() - t0) / (steps - warmup)


def measure(costs: StageCosts, n_rollouts: int, n_judges: int, ahead: int, steps: int,
            prompts_per_step: int = 8, group_size: int = 8) -> float:
    job = SimJob(costs, n_rollouts, n_judges, prompts_per_step, group_size)
    try:
        return seconds_per_step(job, ahead, steps, prompts_per_step=prompts_per_step)
    finally:
        job.shutdown()


def async_rows(costs: StageCosts, steps: int) -> list[dict]:
    """On-policy (ahead 0) vs async (ahead 1) on one actor per role: steps/s, and the async ratio against the
    overlap bound (sum of stage times over the largest) and against the pipeline's own prediction."""
    on, asy = measure(costs, 1, 1, 0, steps), measure(costs, 1, 1, 1, steps)
    bound = costs.on_policy / max(costs.rollout, costs.judge, costs.train, costs.sync)
    predicted = costs.on_policy / costs.predicted_step(1, 1)
    return [{"mode": "on-policy", "step_s": on, "steps_per_s": 1 / on, "speedup": 1.0},
            {"mode": "async (max_staleness 1)", "step_s": asy, "steps_per_s": 1 / asy, "speedup": on / asy,
             "overlap_bound": bound, "of_bound": (on / asy) / bound, "predicted": predicted,
             "of_predicted": (on / asy) / predicted}]


def scaling_rows(costs: StageCosts, actors: list[int], steps: int) -> list[dict]:
    """Async steps/s with 1..N rollout actors (as many introspectors) against the prediction from stage costs; the
    learner bound is where the learner's update plus the sync is the slowest stage."""
    rows, base = [], None
    for n in actors:
        step = measure(costs, n, n, 1, steps, prompts_per_step=max(8, n))
        base = base or step
        predicted = costs.predicted_step(n, n)
        rows.append({"rollout_actors": n, "step_s": step, "steps_per_s": 1 / step, "predicted_step_s": predicted,
                     "efficiency": predicted / step, "speedup": base / step,
                     "learner_bound": costs.train + costs.sync >= costs.rollout / n + costs.sync})
    return rows


def overhead_rows(layouts: dict[str, int], steps: int, real_step_s: dict[str, float],
                  added_s: dict[str, float]) -> list[dict]:
    """Zero-cost stages: what is left per step is the framework (driver, object store, serialization,
    scheduling) with nothing to overlap it, an upper bound; its share of each layout's real or simulated step;
    and, where known, what the framework added to that overlapped step beyond the prediction from stage costs."""
    zero = StageCosts(0.0, 0.0, 0.0, 0.0)
    rows = []
    for name, n in layouts.items():
        ms = 1000 * measure(zero, n, n, 1, steps, prompts_per_step=max(8, n))
        step, added = real_step_s[name], added_s.get(name, float("nan"))
        rows.append({"layout": name, "unoverlapped_ms": ms, "step_s": step, "share": ms / 1000 / step,
                     "added_to_step_ms": 1000 * added, "added_share": added / step})
    return rows
