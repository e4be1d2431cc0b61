"""launch/evaluate.py's config."""

from __future__ import annotations

from dataclasses import dataclass

from launch.configs.checks import at_least
from models.toy import EMBEDDED


@dataclass
class EvaluateConfig:
    checkpoint: str = str(EMBEDDED)
    split: str = "test"
    samples_per_prompt: int = 4
    guidance: float = 3.0
    temperature: float = 1.0
    max_prompts: int = 0  # 0 = every prompt of the split
    seed: int = 0
    threads: int = 2

    def __post_init__(self):
        at_least("", self, samples_per_prompt=1, max_prompts=(0, "0: every prompt"), threads=1)
