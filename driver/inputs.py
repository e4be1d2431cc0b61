"""What a user points the job at, read with one clear line per mistake (UserError): benchmarks and their prompt
files (benchmarks/), model directories, and whether every prompt fits the model's context."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import benchmarks
from driver.cli import UserError
from models import loading
from models.toy import EMBEDDED
from rewards.dialects import dialect, token_budget


def load_benchmark(name: str) -> benchmarks.Benchmark:
    try:
        return benchmarks.get(name)
    except benchmarks.BenchmarkError as e:
        raise UserError(str(e)) from None


def load_prompts(benchmark: str, split: str = "") -> list[dict]:
    """A benchmark's split by name, or a file in its format ("": the benchmark's default split)."""
    bench = load_benchmark(benchmark)
    if not split and not bench.default_split:
        raise UserError(f"data.benchmark={benchmark} needs data.split=<a file in its format>")
    try:
        return bench.load(split or bench.default_split)
    except benchmarks.BenchmarkError as e:
        raise UserError(str(e)) from None


@dataclass
class EvalSet:
    """Prompts measured before and after: `label` in the tables, `benchmark` whose evaluator scores them, `key`
    in summary.json and the run directory (test: the split trained on, heldout, or the transfer spec)."""
    label: str
    benchmark: str
    records: list[dict]
    key: str = ""


@dataclass
class JobPrompts:
    """What the job trains on (`train.records`), and every set it measures before and after."""
    train: EvalSet
    heldout: EvalSet | None = None
    transfer: list[EvalSet] = field(default_factory=list)

    def measured(self) -> list[EvalSet]:
        return [self.train] + ([self.heldout] if self.heldout else []) + self.transfer

    def metadata(self) -> dict[str, dict]:
        """Prompt -> record of the job's own benchmark (what rubrics from metadata and the oracle judge read)."""
        return {m["prompt"]: m for m in self.train.records + (self.heldout.records if self.heldout else [])}


def load_adapter(checkpoint: str, device: str = "auto", understanding: str = "", dtype: str = "auto"):
    """A model directory through the backend registry (models/loading.py); device="meta" reads its structure
    only (a driver's checks: a 7B model is not loaded into the driver)."""
    path = Path(checkpoint)
    if not any((path / f).is_file() for f in loading.MODEL_FILES + ("meta_ttrl_lora.json",)):
        raise UserError(f"checkpoint {checkpoint!r} not found: expected a directory with config.json (or a flow "
                        f"model's model_index.json, a BAGEL directory's llm_config.json, or a LoRA run's "
                        f"meta_ttrl_lora.json) (the embedded model is {EMBEDDED})")
    try:
        return loading.load_adapter(path, device=device, dtype=dtype, understanding=understanding)
    except Exception as e:  # a user's directory: any failure to read it (truncated weights, bad JSON) is theirs
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise UserError(f"checkpoint {checkpoint!r} could not be loaded ({type(e).__name__}: {first})") from None


def check_prompts(adapter, metas: list[dict], where: str, max_new_tokens: int) -> None:
    """Every prompt must fit the model's context in each of its uses (image, rubric, fallback question)."""
    if not adapter.capabilities.understanding:
        return  # an SD3/FLUX pipeline judged by another model: no rubric passes through the policy's context
    instruction = dialect(adapter.rubric_dialect).instruction
    budget = token_budget(adapter.rubric_dialect, max_new_tokens)
    for n, meta in enumerate(metas, start=1):
        needed = adapter.positions_needed(meta["prompt"], instruction, budget)
        if needed > adapter.max_positions:
            raise UserError(f"{where}: prompt {n} ({meta['prompt'][:40]!r}...) needs {needed} sequence positions, "
                            f"the model has {adapter.max_positions}: shorten it (or lower rubric.max_new_tokens)")
