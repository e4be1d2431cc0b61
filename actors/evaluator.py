"""Benchmark evaluation on the cluster: `evaluator-<benchmark>-<i>` actors hold a benchmark's evaluator models
(GPU bundles when resources.evaluator asks for them); a benchmark whose evaluator loads no model (the toy
world's pixel oracle) runs as plain Ray tasks instead, which the pipeline may cancel (an actor call must not be:
actors/../driver/pipeline.py's drop). Metrics only: nothing here reaches a reward.
"""

from __future__ import annotations

import ray
import torch
from ray.util.placement_group import remove_placement_group

import benchmarks
from actors.placement import place_role
from rollout.batch import RolloutBatch


def _scores(evaluator, images, records) -> list:
    return evaluator.score(list(images), records)


@ray.remote(num_cpus=0)
def score_task(name: str, eval_cfg, images, records: list[dict]) -> list:
    return _scores(benchmarks.get(name).evaluator(eval_cfg), images, records)


@ray.remote(num_cpus=0)
def score_batch_task(name: str, eval_cfg, batch: RolloutBatch, metadata: dict[str, dict]) -> list[float]:
    scored = _scores(benchmarks.get(name).evaluator(eval_cfg), batch.images, [metadata[p] for p in batch.prompts])
    return [s.score for s in scored]


@ray.remote
class EvaluatorActor:
    def __init__(self, name: str, eval_cfg, threads: int, metadata: dict[str, dict]):
        torch.set_num_threads(threads)
        self.evaluator, self.metadata = benchmarks.get(name).evaluator(eval_cfg), metadata

    def score(self, images, records: list[dict]) -> list:
        return _scores(self.evaluator, images, records)

    def score_batch(self, batch: RolloutBatch) -> list[float]:
        """A rollout part's images, for the per-step `eval` metric."""
        return [s.score for s in _scores(self.evaluator, batch.images, [self.metadata[p] for p in batch.prompts])]


class Evaluators:
    """The job's evaluators by benchmark name: actors for model-based ones, tasks for model-free ones."""

    def __init__(self, cfg, names: list[str], metadata: dict[str, dict]):
        self.cfg, self.metadata, self.actors, self.groups, self.calls = cfg, metadata, {}, [], 0
        try:  # a benchmark whose evaluators cannot be placed frees those placed before it
            for name in names:
                if benchmarks.get(name).loads_models:
                    actors, group = place_role(EvaluatorActor, f"evaluator-{name}", cfg.eval.actors,
                                               cfg.resources.evaluator, cfg.resources.strategy,
                                               lambda i: (name, cfg.eval, cfg.model.threads, metadata))
                    self.actors[name] = actors
                    self.groups.append(group)
        except BaseException:
            self.shutdown()
            raise

    def shutdown(self) -> None:
        for actor in self.all_actors():
            ray.kill(actor)
        for group in self.groups:
            remove_placement_group(group)
        self.actors, self.groups = {}, []

    def cancellable(self, name: str) -> bool:
        return name not in self.actors

    def score(self, name: str, images, records: list[dict]):
        """A ref to the per-image Scored list of `images` (a ref or a list) for `records`."""
        if name not in self.actors:
            return score_task.remote(name, self.cfg.eval, images, records)
        self.calls += 1
        return self.actors[name][self.calls % len(self.actors[name])].score.remote(images, records)

    def score_batch(self, name: str, part):
        """A ref to the per-image scores of a rollout part (a ref to a RolloutBatch)."""
        if name not in self.actors:
            return score_batch_task.remote(name, self.cfg.eval, part, self.metadata)
        self.calls += 1
        return self.actors[name][self.calls % len(self.actors[name])].score_batch.remote(part)

    def all_actors(self) -> list:
        return [a for actors in self.actors.values() for a in actors]
