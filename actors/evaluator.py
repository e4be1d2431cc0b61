"""Benchmark evaluation on the cluster: `evaluator-<benchmark>-<i>` actors hold a benchmark's evaluator
(GPU bundles when resources.evaluator asks for them). A benchmark whose evaluator loads no model (the toy world's
pixel oracle) gets one actor that reserves no CPU: it was a plain Ray task per call, and each call could land on a
fresh worker that imported torch and the project again (measured on the default job: ~55% of a core, which the
actors of a 2-core host then lacked; scoring itself is ~0.13 s a step). Scoring is pure, so a call interrupted by an
actor's death is simply retried. Metrics only: nothing here reaches a reward.
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
    """The job's evaluator actors by benchmark name."""

    def __init__(self, cfg, names: list[str], metadata: dict[str, dict]):
        self.cfg, self.metadata, self.actors, self.groups, self.calls = cfg, metadata, {}, [], 0
        try:  # a benchmark whose evaluators cannot be placed frees those placed before it
            for name in names:
                args = (name, cfg.eval, cfg.model.threads, metadata)
                if benchmarks.get(name).loads_models:
                    actors, group = place_role(EvaluatorActor, f"evaluator-{name}", cfg.eval.actors,
                                               cfg.resources.evaluator, cfg.resources.strategy, lambda i: args)
                    self.groups.append(group)
                else:  # a light actor beside the others (no bundle): pure CPU work of a few ms an image
                    actors = [EvaluatorActor.options(name=f"evaluator-{name}-0", num_cpus=0, max_restarts=3,
                                                     max_task_retries=3).remote(*args)]
                self.actors[name] = actors
        except BaseException:
            self.shutdown()
            raise

    def shutdown(self) -> None:
        for actor in self.all_actors():
            ray.kill(actor)
        for group in self.groups:
            remove_placement_group(group)
        self.actors, self.groups = {}, []

    def score(self, name: str, images, records: list[dict]):
        """A ref to the per-image Scored list of `images` (a ref or a list) for `records`."""
        self.calls += 1
        return self.actors[name][self.calls % len(self.actors[name])].score.remote(images, records)

    def score_batch(self, name: str, part):
        """A ref to the per-image scores of a rollout part (a ref to a RolloutBatch)."""
        self.calls += 1
        return self.actors[name][self.calls % len(self.actors[name])].score_batch.remote(part)

    def all_actors(self) -> list:
        return [a for actors in self.actors.values() for a in actors]
