"""MILR: test-time latent search, no weight update (rollout/milr.py). Each prompt's latents (the first
lambda_t of its text tokens and lambda_v of its image tokens) move by REINFORCE under the judge's reward until
one image scores above the threshold or K steps pass; the best image found is scored by the oracle.
Prompts are dealt to the rollout actors (embarrassingly parallel), each judged by an introspector.

    python launch/milr.py [milr.steps=20] [milr.samples=2] [milr.strategy=joint|alternating|text_then_image]
                          [reward.judge=rubric|gvu|oracle] [data.split=test] [key=value ...]

Every key of launch/meta_ttrl.py applies; the last line printed is one JSON object: {"overall", "per_tag",
"n_images", "samples" (images drawn in all), "mean_steps", "stopped_early" (fraction of prompts)}.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from launch import best_of_n, meta_ttrl  # first: a local Ray binds loopback, which must precede `import ray`
import ray

from launch.cli import UserError, parse_config, run_main
from launch.configs.meta_ttrl import MetaTTRLConfig
from rollout.milr import STRATEGIES, MILRSettings


@dataclass
class MILRConfig(MetaTTRLConfig):
    milr: MILRSettings = field(default_factory=MILRSettings)
    prompts_per_call: int = 8  # prompts one actor searches at once (a batch of their samples)


def check(cfg) -> None:
    s = cfg.milr
    if s.strategy not in STRATEGIES:
        raise UserError(f"milr.strategy {s.strategy!r} is not one of: {', '.join(STRATEGIES)}")
    if s.steps < 1 or s.samples < 1 or cfg.prompts_per_call < 1:
        raise UserError("milr.steps, milr.samples and prompts_per_call must be >= 1")
    if not (0 < s.lambda_t <= 1 and 0 < s.lambda_v <= 1) or s.lr <= 0:
        raise UserError("milr.lambda_t and milr.lambda_v are fractions in (0, 1]; milr.lr must be > 0")
    from models.diffusion import is_flow_dir
    if is_flow_dir(cfg.model.path):
        raise UserError("MILR optimises a token model's latents (the Janus adapter); "
                        f"{cfg.model.path} is a flow model")


def search_all(job, metas: list[dict], cfg) -> dict:
    """Chunks of prompts dealt round-robin to the rollout actors (each paired with an introspector)."""
    from toyworld.evaluation import tag_table
    from toyworld.oracle import evaluate

    r, n = cfg.rollout, cfg.prompts_per_call
    chunks = [metas[i: i + n] for i in range(0, len(metas), n)]
    refs = [job.rollouts[k % len(job.rollouts)].milr.remote(
        [m["prompt"] for m in chunk], cfg.milr, job.introspectors[k % len(job.introspectors)], r.guidance,
        r.temperature) for k, chunk in enumerate(chunks)]
    by_tag, steps, early = defaultdict(list), [], []
    for chunk, found in zip(chunks, ray.get(refs)):
        for meta, f in zip(chunk, found):
            by_tag[meta["tag"]].append(evaluate(f.image, meta).correct)
            steps.append(f.steps)
            early.append(f.stopped_early)
    return tag_table(by_tag) | {"samples": sum(steps) * cfg.milr.samples, "mean_steps": sum(steps) / len(steps),
                                "stopped_early": sum(early) / len(early)}


def run(argv: list[str]) -> dict:
    cfg = parse_config(MILRConfig, argv, "launch/milr.py", __doc__)
    check(cfg)
    return best_of_n.without_training(cfg, lambda job, metas: search_all(job, metas, cfg))


def main(argv: list[str]) -> None:
    print(json.dumps(run(argv)))


if __name__ == "__main__":
    run_main(main)
