"""Best-of-N, the baseline at equal sample budget: for every prompt, N candidates from the untrained policy,
the judge's favourite kept (no weight update), and the kept image scored by the oracle.

    python launch/best_of_n.py [n=8] [reward.judge=rubric|gvu|oracle] [data.split=test] [key=value ...]

Every key of launch/meta_ttrl.py applies (model, judge, actors, rollout); the last line printed is one JSON
object: {"overall": float, "per_tag": {tag: float}, "n_images": int, "n": N} (one kept image per prompt).
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from launch import meta_ttrl  # first: it makes a local Ray bind loopback, which must precede `import ray`
import ray
import torch

from launch.cli import UserError, parse_config, run_main
from launch.configs.meta_ttrl import MetaTTRLConfig
from launch.evaluate import load_prompts


@dataclass
class BestOfNConfig(MetaTTRLConfig):
    n: int = 8  # candidates per prompt


def pick_best(rewards: torch.Tensor, n: int) -> torch.Tensor:
    """Index (into the flat batch) of the highest-reward candidate of each prompt's group of n (first on ties)."""
    return rewards.view(-1, n).argmax(dim=1) + torch.arange(0, rewards.numel(), n)


def best_of_n(job, metas: list[dict], n: int, prompts_per_call: int = 8) -> dict:
    from toyworld.evaluation import tag_table
    from toyworld.oracle import evaluate

    by_tag = defaultdict(list)
    for start in range(0, len(metas), prompts_per_call):
        chunk = {m["prompt"]: m for m in metas[start: start + prompts_per_call]}
        parts = job.rollout(list(chunk), group_size=n)
        for batch, judged in zip(ray.get(parts), ray.get(job.judge(parts))):
            for i in pick_best(judged.rewards, n).tolist():
                meta = chunk[batch.prompts[i]]
                by_tag[meta["tag"]].append(evaluate(batch.images[i], meta).correct)
    return tag_table(by_tag) | {"n": n}


def without_training(cfg, work) -> dict:
    """Run `work(job, metas)` on a job of rollouts and introspectors only (no weight update, so no learner) over
    the prompts of `cfg.data.split` (the first `data.eval_max_prompts` if set); the actors go away after."""
    from actors.job import MetaTTRLJob

    meta_ttrl.check(cfg)
    metas = load_prompts(cfg.data.split)
    metas = metas[: cfg.data.eval_max_prompts] if cfg.data.eval_max_prompts > 0 else metas
    res = cfg.resources
    meta_ttrl.connect(cfg.run.ray_address, cfg.rollout.actors * res.rollout.num_cpus +
                      cfg.trainer.introspectors * res.introspector.num_cpus)
    job = MetaTTRLJob(cfg, {m["prompt"]: m for m in metas}, train=False)
    try:
        return work(job, metas)
    finally:
        job.shutdown()


def run(argv: list[str]) -> dict:
    cfg = parse_config(BestOfNConfig, argv, "launch/best_of_n.py", __doc__)
    if cfg.n < 1:
        raise UserError(f"n must be >= 1, got {cfg.n}")
    return without_training(cfg, lambda job, metas: best_of_n(job, metas, cfg.n))


def main(argv: list[str]) -> None:
    print(json.dumps(run(argv)))


if __name__ == "__main__":
    run_main(main)
