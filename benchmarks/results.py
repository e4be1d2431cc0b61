"""An evaluation's outputs: the per-category table (summary.json, the report) and the benchmark's own results
file, in the format its official scripts write, beside our per-image jsonl.

- geneval: results.jsonl, one line per image {"filename", "tag", "prompt", "correct", "reason", "metadata"} as
  GenEval's evaluate_images.py writes it (its summary_scores.py reads it).
- t2i_compbench: <category>_vqa_result.json, [{"question_id", "answer"}] per image as T2I-CompBench's scripts
  write their annotation files (the answer is the image's score as a string).
- any benchmark: scores.jsonl {"index", "sample", "prompt", "tag", "score", "details"} and table.json.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from benchmarks.base import Benchmark, Scored, category_table


def table(bench: Benchmark, records: list[dict], scored: list[Scored]) -> dict:
    """Per category and overall as the benchmark aggregates them (the records are per image, prompt-major)."""
    by = defaultdict(list)
    for rec, s in zip(records, scored):
        by[rec["tag"]].append(s.score)
    return category_table(by, bench.categories)


def _rows(records: list[dict], scored: list[Scored], samples: int):
    for i, (rec, s) in enumerate(zip(records, scored)):
        yield i // samples, i % samples, rec, s


def write(bench: Benchmark, out: Path, records: list[dict], scored: list[Scored], samples: int) -> list[Path]:
    """The evaluation's files under `out`; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "scores.jsonl", out / "table.json"]
    with written[0].open("w") as f:
        for prompt_index, sample, rec, s in _rows(records, scored, samples):
            f.write(json.dumps({"index": prompt_index, "sample": sample, "prompt": rec["prompt"], "tag": rec["tag"],
                                "score": s.score, "details": s.details}, default=str) + "\n")
    written[1].write_text(json.dumps(table(bench, records, scored), indent=1))
    if bench.results_format == "geneval":
        written.append(out / "results.jsonl")
        with written[-1].open("w") as f:
            for prompt_index, sample, rec, s in _rows(records, scored, samples):
                f.write(json.dumps({"filename": f"{prompt_index:05d}/samples/{sample:04d}.png", "tag": rec["tag"],
                                    "prompt": rec["prompt"], "correct": bool(s.details.get("correct", s.score > 0)),
                                    "reason": s.details.get("reason", ""), "metadata": json.dumps(rec)}) + "\n")
    if bench.results_format == "t2i_compbench":
        by = defaultdict(list)
        for prompt_index, sample, rec, s in _rows(records, scored, samples):
            by[rec["tag"]].append({"question_id": len(by[rec["tag"]]), "prompt_index": prompt_index,
                                   "answer": f"{s.score:.6f}"})
        for category, rows in by.items():
            written.append(out / f"{category}_vqa_result.json")
            written[-1].write_text(json.dumps(rows, indent=1))
    return written
