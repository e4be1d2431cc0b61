"""launch/reward_server.py's config."""

from __future__ import annotations

from dataclasses import dataclass, field

from benchmarks import BENCHMARKS
from launch.configs.checks import above, at_least, one_of
from launch.configs.meta_ttrl import EvalConfig


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 5555
    secret_env: str = "META_TTRL_REWARD_SECRET"  # the shared HMAC secret's environment variable ("" = none)
    max_mb: float = 64.0  # largest request accepted
    max_batch: int = 256  # items per judge call
    batch_window_ms: float = 2.0  # how long the first request of a batch waits for company
    # the `oracle` method: this benchmark's evaluator (eval.* its model directories) on the prompts of every split of
    # it, and of `prompts` (a file in its format)
    benchmark: str = "toyworld"
    prompts: str = ""
    eval: EvalConfig = field(default_factory=EvalConfig)
    model: str = ""  # a Janus-layout model directory: also serve its rubric judge as method `rubric`
    threads: int = 1  # torch CPU threads of the model judge

    def __post_init__(self):
        one_of("benchmark", self.benchmark, BENCHMARKS)
        at_least("", self, port=(0, "0: any free port"), max_batch=1, batch_window_ms=0.0, threads=1)
        above("", self, max_mb=0.0)
