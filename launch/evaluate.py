"""Evaluate a checkpoint's image generation on a toy-world split with the oracle (GenEval rules).

    python launch/evaluate.py [key=value ...]
Prints a per-tag table, then one JSON object as the last line:
    {"overall": float, "per_tag": {tag: float}, "n_images": int}
`split` is a built-in split (train, test, heldout) or a GenEval-format .jsonl file whose classes and colours
the toy world knows.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from driver.cli import parse_config, run_main
from driver.inputs import load_adapter, load_prompts
from launch.configs.evaluate import EvaluateConfig
from toyworld.evaluation import generation_score


def print_table(result: dict, title: str) -> None:
    print(f"\n{title}")
    print(f"{'tag':<15}{'score':>8}")
    for tag, value in result["per_tag"].items():
        print(f"{tag:<15}{value:>8.3f}")
    print(f"{'overall':<15}{result['overall']:>8.3f}   ({result['n_images']} images)")


def main(argv: list[str]) -> None:
    cfg = parse_config(EvaluateConfig, argv, "launch/evaluate.py", __doc__)
    metas = load_prompts(cfg.split)
    if cfg.max_prompts > 0:
        metas = metas[: cfg.max_prompts]
    torch.set_num_threads(cfg.threads)
    adapter = load_adapter(cfg.checkpoint)
    t0 = time.time()
    result = generation_score(adapter, metas, cfg.samples_per_prompt, cfg.guidance, cfg.temperature, cfg.seed)
    print_table(result, f"{cfg.split}: {len(metas)} prompts x {cfg.samples_per_prompt} samples, "
                        f"CFG {cfg.guidance}, {time.time() - t0:.1f}s")
    print(json.dumps(result))


if __name__ == "__main__":
    run_main(main)
