"""The toy world as a benchmark: its built-in splits (toyworld/prompts.py), GenEval-format files whose classes
and colours it knows, and its pixel oracle as the evaluator (GenEval's rules on hue-and-template detections)."""

from __future__ import annotations

import numpy as np

from benchmarks.base import Scored
from benchmarks.formats import read_geneval
from toyworld.oracle import evaluate
from toyworld.prompts import TAGS
from toyworld.scene import COLORS, SHAPES


def vocabulary(clause: dict) -> str:
    if clause["class"] not in SHAPES or clause.get("color", COLORS[0]) not in COLORS:
        return (f"clause {clause} names a class or colour outside the toy world (classes: {', '.join(SHAPES)}; "
                f"colours: {', '.join(COLORS)})")
    return ""


def read(path) -> list[dict]:
    return read_geneval(path, TAGS, vocabulary)


class ToyOracle:
    """The pixel oracle (toyworld/oracle.py): 1 when every clause holds, else 0; the first failed clause's reason."""

    def score(self, images: list[np.ndarray], records: list[dict]) -> list[Scored]:
        out = []
        for image, rec in zip(images, records):
            verdict = evaluate(image, rec)
            failed = [c["reason"] for c in verdict.clauses if not c["passed"]]
            out.append(Scored(float(verdict.correct), {"correct": verdict.correct, "reason": "; ".join(failed)}))
        return out
