"""The benchmarks a VLM judges: GenEval++ (published: GPT-4.1 on a checklist from the metadata, strict 0/1) and
DPG-Bench (published: mPLUG on dependency-ordered yes/no questions). Here Qwen2.5-VL answers through the existing
adapter (models/qwen_vl.py): "yes" when P(yes) > P(no) for the first answer token."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.base import BenchmarkError, Scored
from models.adapter import resolve_device, resolve_dtype

COUNT_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight"}
DPG_COLUMNS = ("item_id", "proposition_id", "dependency", "category_broad", "question_natural_language")


def _vlm(eval_cfg):
    from models.qwen_vl import QwenVLUnderstanding
    device = resolve_device(eval_cfg.device)
    return QwenVLUnderstanding.from_pretrained(eval_cfg.vlm, device=str(device), dtype=resolve_dtype("auto", device))


def _said_yes(vlm, images, questions, index) -> list[bool]:
    probs = vlm.answer_probs(np.stack(images), questions, index)
    return (probs[:, 0] > probs[:, 1]).tolist()


def checklist(rec: dict) -> list[str]:
    """GenEval++'s requirements of an image, from its metadata (the published script's checklist, in words)."""
    items = []
    for c in rec["include"]:
        n = c.get("count", 1)
        words = [COUNT_WORDS.get(n, str(n)), c.get("size", ""), c.get("color", ""), c["class"] + ("s" if n > 1 else "")]
        item = f"exactly {' '.join(w for w in words if w)}"
        if c.get("region"):
            item += f", placed at the {c['region']} of the image" if c["region"] in ("left", "right") else \
                f", placed in the {'upper' if c['region'] == 'above' else 'lower'} part of the image"
        items.append(item)
    return items


def strict_question(rec: dict) -> str:
    return (f"The image should show: {'; '.join(checklist(rec))}. It must be one realistic photo (no cartoon, no "
            f"collage). Does the image meet every requirement? Answer yes or no.")


class GenEvalPlusPlusEvaluator:
    def __init__(self, eval_cfg):
        self.vlm = _vlm(eval_cfg)

    def score(self, images: list[np.ndarray], records: list[dict]) -> list[Scored]:
        questions = [strict_question(r) for r in records]
        said = _said_yes(self.vlm, images, questions, list(range(len(images))))
        return [Scored(float(y), {"correct": y, "checklist": checklist(r)}) for y, r in zip(said, records)]


def read_dpg_questions(path: str) -> dict[str, list[dict]]:
    """DPG-Bench's question csv (published columns) by item_id; BenchmarkError naming file and row otherwise."""
    file = Path(path)
    if not file.is_file():
        raise BenchmarkError(f"eval.dpg_questions {path!r}: no such file (DPG-Bench's dpg_bench.csv)")
    by_item = defaultdict(list)
    with file.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in DPG_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise BenchmarkError(f"{path}: missing column(s) {', '.join(missing)} (DPG-Bench's dpg_bench.csv)")
        for n, row in enumerate(reader, start=2):
            try:
                deps = [int(d) for d in str(row["dependency"]).replace(" ", "").split(",") if d]
                by_item[row["item_id"]].append({"id": int(row["proposition_id"]), "parents": [d for d in deps if d],
                                                "category": row["category_broad"],
                                                "question": row["question_natural_language"]})
            except ValueError:
                raise BenchmarkError(f"{path}: row {n}: proposition_id and dependency must be integers") from None
    return dict(by_item)


def dependency_scores(answers: dict[int, bool], questions: list[dict]) -> list[float]:
    """1 for a yes, zeroed when any parent question was answered no (DPG-Bench's rule)."""
    return [float(answers[q["id"]] and all(answers.get(p, True) for p in q["parents"])) for q in questions]


class DPGBenchEvaluator:
    def __init__(self, eval_cfg):
        self.vlm, self.questions = _vlm(eval_cfg), read_dpg_questions(eval_cfg.dpg_questions)

    def score(self, images: list[np.ndarray], records: list[dict]) -> list[Scored]:
        out = []
        for i, rec in enumerate(records):
            qs = self.questions.get(rec["id"])
            if not qs:
                raise BenchmarkError(f"eval.dpg_questions has no questions for DPG-Bench prompt {rec['id']!r}")
            said = _said_yes(self.vlm, [images[i]], [q["question"] for q in qs], [0] * len(qs))
            scores = dependency_scores({q["id"]: y for q, y in zip(qs, said)}, qs)
            per_category = defaultdict(list)
            for q, kept in zip(qs, scores):  # DPG-Bench's category scores count a question zeroed by its parent
                per_category[q["category"]].append(kept)
            out.append(Scored(float(np.mean(scores)), {"questions": len(qs), "per_category":
                                                       {k: float(np.mean(v)) for k, v in per_category.items()}}))
        return out
