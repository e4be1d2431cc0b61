"""MILR: test-time latent search, no weight update (rollout/milr.py). Each prompt's latents (the first
lambda_t of its text tokens and lambda_v of its image tokens) move by REINFORCE under the judge's reward until
one image scores above the threshold or K steps pass; the image kept is scored by the oracle.
`milr.variant=paper` is MILR as published (the model's reasoning text, last-layer latents, the l2 term, one sample
per step, the final image; a model with a reasoning template such as Janus-Pro); `ours` (the default, the one the
toy model can run) moves the prompt's input embeddings, 2 samples a step, keeps the best image.
Prompts are dealt to the rollout actors (embarrassingly parallel), each judged by an introspector.

    python launch/milr.py [milr.variant=ours|paper] [milr.steps=20] [milr.samples=<variant's>] [milr.l2=<variant's>]
                          [milr.strategy=joint|alternating|text_then_image|text_only|image_only]
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
    needs = ("latent_search", "reasoning") if cfg.milr.variant == "paper" else ("latent_search",)
    return baselines.without_training(cfg, lambda job, metas: baselines.milr(job, metas, cfg), policy_needs=needs,
                                      method="MILR")


def main(argv: list[str]) -> None:
    print(json.dumps(run(argv)))


if __name__ == "__main__":
    run_main(main)
