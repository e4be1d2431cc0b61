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
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import driver  # noqa: F401  (first: a local Ray cluster binds loopback, which must precede `import ray`)
from driver import baselines
from driver.cli import parse_config, run_main
from launch.configs.meta_ttrl import MILRConfig


def run(argv: list[str]) -> dict:
    cfg = parse_config(MILRConfig, argv, "launch/milr.py", __doc__)
    return baselines.without_training(cfg, lambda job, metas: baselines.milr(job, metas, cfg),
                                      policy_needs=("latent_search",), method="MILR")


def main(argv: list[str]) -> None:
    print(json.dumps(run(argv)))


if __name__ == "__main__":
    run_main(main)
