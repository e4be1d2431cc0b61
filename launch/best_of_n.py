"""Best-of-N, the baseline at equal sample budget: for every prompt, N candidates from the untrained policy,
the judge's favourite kept (no weight update), and the kept image scored by the oracle.

    python launch/best_of_n.py [n=8] [reward.judge=rubric|gvu|oracle] [data.split=test] [key=value ...]

Every key of launch/meta_ttrl.py applies (model, judge, actors, rollout); the last line printed is one JSON
object: {"overall": float, "per_tag": {tag: float}, "n_images": int, "n": N} (one kept image per prompt).
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
from launch.configs.meta_ttrl import BestOfNConfig


def run(argv: list[str]) -> dict:
    cfg = parse_config(BestOfNConfig, argv, "launch/best_of_n.py", __doc__)
    return baselines.without_training(cfg, lambda job, metas: baselines.best_of_n(job, metas, cfg.n))


def main(argv: list[str]) -> None:
    print(json.dumps(run(argv)))


if __name__ == "__main__":
    run_main(main)
