"""launch/evaluate.py's config."""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks import BENCHMARKS
from launch.configs.checks import at_least, one_of
from launch.configs.meta_ttrl import EvalConfig
from models.adapter import DTYPES
from models.toy import EMBEDDED


@dataclass
class EvaluatedModel:
    path: str = str(EMBEDDED)  # the checkpoint evaluated: any model directory the backends load
    dtype: str = "auto"  # auto: bfloat16 on a GPU, float32 on CPU; or float32, bfloat16, float16


@dataclass
class EvaluateConfig:
    benchmark: str = "toyworld"  # benchmarks/registry.py
    split: str = ""  # a split of the benchmark or a file in its format ("": its default split)
    model: EvaluatedModel = field(default_factory=EvaluatedModel)
    eval: EvalConfig = field(default_factory=EvalConfig)  # the evaluator's model directories (eval.detector, ...)
    samples_per_prompt: int = 4
    guidance: float = 3.0
    temperature: float = 1.0
    max_prompts: int = 0  # 0 = every prompt of the split
    seed: int = 0
    threads: int = 2
    out: str = ""  # where the results files go ("": runs/evaluate-<benchmark>-<time>)

    def __post_init__(self):
        one_of("benchmark", self.benchmark, BENCHMARKS)
        one_of("model.dtype", self.model.dtype, ("auto", *DTYPES))
        at_least("", self, samples_per_prompt=1, max_prompts=(0, "0: every prompt"), threads=1)
