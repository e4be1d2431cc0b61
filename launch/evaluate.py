"""Evaluate a checkpoint's image generation on a benchmark with the benchmark's own evaluator, in this process.

    python launch/evaluate.py [key=value ...]                          # the toy world's test split, its oracle
    python launch/evaluate.py benchmark=geneval model.path=<dir> eval.detector=<dir> eval.clip=<dir>
    python launch/evaluate.py benchmark=t2i_compbench split=color_val model.path=<dir> eval.vqa=<dir>
Writes the benchmark's own results file (GenEval: results.jsonl; T2I-CompBench: <category>_vqa_result.json),
scores.jsonl and table.json into `out`; prints a per-category table, then one JSON object as the last line:
    {"overall": float, "per_tag": {category: float}, "n_images": int}
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from tqdm import tqdm

from benchmarks import results
from driver.cli import parse_config, run_main
from driver.inputs import EvalSet, load_adapter, load_benchmark, load_prompts
from driver.preflight import check_evaluation, check_prompts
from launch.configs.evaluate import EvaluateConfig



def print_table(result: dict, title: str) -> None:
    print(f"\n{title}")
    print(f"{'tag':<22}{'score':>8}")
    for tag, value in result["per_tag"].items():
        print(f"{tag:<22}{value:>8.3f}")
    print(f"{'overall':<22}{result['overall']:>8.3f}   ({result['n_images']} images)")


@torch.no_grad()
def generate_and_score(adapter, evaluator, metas: list[dict], cfg) -> tuple[list[dict], list]:
    """`samples_per_prompt` images per prompt, one RNG for the whole set; scored a batch at a time."""
    gen, n = adapter.generator(cfg.seed), cfg.samples_per_prompt
    records, scored = [], []
    step = cfg.eval.batch_prompts  # prompts sampled (and scored) at once
    for start in tqdm(range(0, len(metas), step), desc="evaluate", unit="batch"):
        chunk = metas[start: start + step]
        images = adapter.sample([m["prompt"] for m in chunk], n, cfg.guidance, cfg.temperature, gen).images
        expanded = [m for m in chunk for _ in range(n)]
        records += expanded
        scored += evaluator.score(list(images), expanded)
    return records, scored


def main(argv: list[str]) -> None:
    cfg = parse_config(EvaluateConfig, argv, "launch/evaluate.py", __doc__)
    bench = load_benchmark(cfg.benchmark)
    metas = load_prompts(cfg.benchmark, cfg.split)
    if cfg.max_prompts > 0:
        metas = metas[: cfg.max_prompts]
    label = cfg.split or bench.default_split
    check_evaluation(cfg.eval, EvalSet(label, cfg.benchmark, metas))
    check_prompts(load_adapter(cfg.model.path, device="meta"), metas, label, 96)
    torch.set_num_threads(cfg.threads)
    adapter = load_adapter(cfg.model.path, dtype=cfg.model.dtype)
    evaluator = bench.evaluator(cfg.eval)
    t0 = time.time()
    records, scored = generate_and_score(adapter, evaluator, metas, cfg)
    table = results.table(bench, records, scored)
    out = Path(cfg.out or f"runs/evaluate-{cfg.benchmark}-{time.strftime('%Y%m%d-%H%M%S')}")
    results.write(bench, out, records, scored, cfg.samples_per_prompt)
    print_table(table, f"{cfg.benchmark} {label}: {len(metas)} prompts x {cfg.samples_per_prompt} samples, "
                       f"CFG {cfg.guidance}, {time.time() - t0:.1f}s; results in {out}")
    print(json.dumps(table))


if __name__ == "__main__":
    run_main(main)
