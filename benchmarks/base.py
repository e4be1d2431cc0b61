"""The benchmark interface: a prompt loader (records with optional metadata) and an optional evaluator (images +
records -> per-image scores, a per-category table, the overall as the benchmark defines it).

A record is a dict with at least "prompt" and "tag" (its category: a GenEval tag, a T2I-CompBench category, ...)
plus whatever metadata the benchmark's format carries. The job, launch/evaluate.py, Best-of-N, MILR and the
reward server's oracle method reach every benchmark through `benchmarks.get(name)` (benchmarks/registry.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

DATA = Path(__file__).resolve().parent / "data"  # the vendored prompt sets (benchmarks/data/README.md)


class BenchmarkError(ValueError):
    """A benchmark, split, prompt file or evaluator setting the user named is unusable: one line saying why."""


@dataclass
class Scored:
    """One image's score in [0, 1] by its benchmark's evaluator, and what the benchmark's results file records
    about it (GenEval: the failed clause; T2I-CompBench: per-phrase answers; ...)."""
    score: float
    details: dict = field(default_factory=dict)


class Evaluator(Protocol):
    """Scores images of a benchmark's records. Built once per evaluator actor (its models load then)."""

    def score(self, images: list[np.ndarray], records: list[dict]) -> list[Scored]:
        """`images[i]` is an image (H, W, 3 uint8) generated for `records[i]`."""
        ...


def category_table(scores_by_category: dict[str, list[float]], order: tuple[str, ...] = ()) -> dict:
    """Per-category mean image score; overall = the unweighted mean over the categories present (GenEval,
    GenEval++, T2I-CompBench's average), in `order` first, then any others alphabetically."""
    names = [c for c in order if scores_by_category.get(c)]
    names += sorted(c for c in scores_by_category if c not in names and scores_by_category[c])
    per = {c: float(np.mean(scores_by_category[c])) for c in names}
    overall = float(np.mean(list(per.values()))) if per else 0.0
    return {"overall": overall, "per_tag": per, "n_images": sum(len(v) for v in scores_by_category.values())}


@dataclass(frozen=True)
class Benchmark:
    """A registered benchmark. `splits`: name -> its prompt file (or a function giving its records, for splits
    built in code, as the toy world's); `read(path)` -> records (BenchmarkError naming
    file and line on a malformed one); `evaluator(eval_cfg)` builds its Evaluator (None: prompts only);
    `evaluator_needs(records)`: the eval.* keys its evaluator needs set to score these records; `rubric_style`: how metadata rubrics read
    ("toy": the toy model's tokenised words; "english": natural English for a real VLM)."""
    name: str
    splits: dict[str, Path | Callable[[], list[dict]]]
    default_split: str
    read: Callable[[Path], list[dict]]
    categories: tuple[str, ...] = ()
    evaluator: Callable[[object], Evaluator] | None = None
    evaluator_needs: Callable[[list[dict]], tuple[str, ...]] = lambda records: ()
    rubric_style: str = "english"
    heldout_split: str = ""  # measured before and after by default (data.heldout=auto), never trained on
    loads_models: bool = True  # False: the evaluator is cheap to build (plain Ray tasks, no evaluator actors)
    results_format: str = "jsonl"  # benchmarks/results.py: how its own results file is written
    why_no_evaluator: str = "it has no evaluator"

    def load(self, split: str) -> list[dict]:
        """A split by name (e.g. GenEval's tag, a T2I-CompBench category file) or a file in this benchmark's
        format. BenchmarkError for an unknown name, a missing file, a malformed line or an empty set."""
        if split in self.splits and callable(self.splits[split]):
            return self.splits[split]()
        if split in self.splits:
            path = self.splits[split]
        else:
            path = Path(split)
            if not path.is_file():
                names = ", ".join(self.splits) or "(none: give a file)"
                raise BenchmarkError(f"{self.name}: split {split!r} is neither one of its splits ({names}) nor a file")
        records = self.read(path)
        if not records:
            raise BenchmarkError(f"{path}: no prompts")
        return records

    def check_evaluator(self, eval_cfg, records: list[dict]) -> None:
        """BenchmarkError when evaluation is asked of a benchmark that cannot evaluate, or without the eval.*
        settings its evaluator needs for these records (the directories themselves: models/evaluators.py)."""
        if self.evaluator is None:
            raise BenchmarkError(f"benchmark {self.name} cannot evaluate images ({self.why_no_evaluator})")
        missing = [k for k in self.evaluator_needs(records) if not getattr(eval_cfg, k)]
        if missing:
            keys = " ".join(f"eval.{k}=<{'csv' if k == 'dpg_questions' else 'dir'}>" for k in missing)
            raise BenchmarkError(f"the {self.name} evaluator needs {keys}")
