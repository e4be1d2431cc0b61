"""Evaluate a checkpoint's image generation on a toy-world split with the oracle (GenEval rules).

    python launch/evaluate.py [key=value ...]
Prints a per-tag table, then one JSON object as the last line:
    {"overall": float, "per_tag": {tag: float}, "n_images": int}
`split` is a built-in split (train, test, heldout) or a GenEval-format .jsonl file whose classes and colours
the toy world knows.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from launch.cli import UserError, parse_config, run_main
from models import loading
from toyworld.evaluation import generation_score
from toyworld.prompts import SPLITS, TAGS, load_split
from toyworld.scene import COLORS, SHAPES

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINT = str(ROOT / "models" / "toy_umm")


@dataclass
class EvaluateConfig:
    checkpoint: str = DEFAULT_CHECKPOINT
    split: str = "test"
    samples_per_prompt: int = 4
    guidance: float = 3.0
    temperature: float = 1.0
    max_prompts: int = 0  # 0 = every prompt of the split
    seed: int = 0
    threads: int = 2


def _check_record(rec, where: str) -> dict:
    if not isinstance(rec, dict) or not {"tag", "include", "prompt"} <= rec.keys():
        raise UserError(f"{where}: expected a GenEval record with tag, include and prompt")
    if rec["tag"] not in TAGS:
        raise UserError(f"{where}: unknown tag {rec['tag']!r}; valid: {', '.join(TAGS)}")
    for clause in rec["include"] + rec.get("exclude", []):
        if clause.get("class") not in SHAPES or clause.get("color", COLORS[0]) not in COLORS:
            raise UserError(f"{where}: clause {clause} names a class or colour outside the toy world "
                            f"(classes: {', '.join(SHAPES)}; colours: {', '.join(COLORS)})")
    return rec


def load_prompts(split: str) -> list[dict]:
    """A built-in split by name, or a GenEval-format .jsonl file; every user error is one clear line."""
    if split in SPLITS:
        metas = load_split(split)
    else:
        path = Path(split)
        if not path.is_file():
            raise UserError(f"split {split!r} is neither a built-in split ({', '.join(SPLITS)}) nor a file")
        metas = []
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}: line {n} is not valid JSON ({e.msg})") from None
            metas.append(_check_record(rec, f"{path}: line {n}"))
    if not metas:
        raise UserError(f"split {split!r} has no prompts")
    return metas


def load_adapter(checkpoint: str, device: str = "auto", understanding: str = ""):
    path = Path(checkpoint)
    if not any((path / f).is_file() for f in ("config.json", "model_index.json")):
        raise UserError(f"checkpoint {checkpoint!r} not found: expected a directory with config.json (or a flow "
                        f"model's model_index.json) "
                        f"(the embedded model is {DEFAULT_CHECKPOINT})")
    try:
        return loading.load_adapter(path, device=device, understanding=understanding)
    except Exception as e:  # a user's directory: any failure to read it (truncated weights, bad JSON) is theirs
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise UserError(f"checkpoint {checkpoint!r} could not be loaded ({type(e).__name__}: {first})") from None


def print_table(result: dict, title: str) -> None:
    print(f"\n{title}")
    print(f"{'tag':<15}{'score':>8}")
    for tag, value in result["per_tag"].items():
        print(f"{tag:<15}{value:>8.3f}")
    print(f"{'overall':<15}{result['overall']:>8.3f}   ({result['n_images']} images)")


def main(argv: list[str]) -> None:
    cfg = parse_config(EvaluateConfig, argv, "launch/evaluate.py", __doc__)
    if cfg.samples_per_prompt < 1:
        raise UserError(f"samples_per_prompt must be >= 1, got {cfg.samples_per_prompt}")
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
