"""The driver's side of a resumable run: the prompt stream, the loop's progress (with each step's metrics line
and the convergence test), and finding what to resume.

A checkpoint holds, besides each actor's state, the driver's: steps done, the prompt stream (RNG, epoch order,
position), the per-step mean rewards (convergence test), rubric event counts, the before-training evaluation,
the grids drawn so far and the wall time spent. `run.resume=auto` continues from the newest checkpoint that
verifies; metrics.jsonl is cut back to the steps that checkpoint holds, so every step appears exactly once.
"""

from __future__ import annotations

import json
import random
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from driver.cli import UserError
from learners import checkpoint
from learners.state import State
from rollout.health import add as add_health


class PromptStream:
    """Prompts in a seeded order, reshuffled every epoch; `state()` is what a checkpoint stores."""

    def __init__(self, prompts: list[str], seed: int):
        self.prompts, self.rng, self.order, self.position = prompts, random.Random(seed), [], 0

    def next(self, n: int) -> list[str]:
        out = []
        while len(out) < n:
            if not self.order:
                self.order = self.rng.sample(self.prompts, len(self.prompts))
            out.append(self.order.pop())
            self.position += 1
        return out

    def state(self) -> dict:
        version, internal, gauss = self.rng.getstate()
        return {"rng": [version, list(internal), gauss], "order": list(self.order), "position": self.position}

    def load_state(self, state: dict) -> None:
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
        self.order, self.position = list(state["order"]), state["position"]


@dataclass
class Progress:
    """The driver's loop state between steps."""
    step: int = 0  # steps done (the next step's index)
    rewards_seen: list[float] = field(default_factory=list)  # mean reward per step done
    rubric: Counter = field(default_factory=lambda: Counter({"written": 0, "retried": 0, "repaired": 0,
                                                             "fallback": 0}))
    before: dict | None = None  # the before-training evaluation, per split
    grids: list[tuple[str, str]] = field(default_factory=list)  # (label, file) drawn so far
    converged: bool = False
    wall_s: float = 0.0  # spent in earlier sessions of this run
    health: list[dict] = field(default_factory=list)  # the guard's window of per-step health counts

    def state(self, stream_state: dict, wall_s: float) -> State:
        rest = {"step": self.step, "rewards_seen": self.rewards_seen, "rubric": dict(self.rubric),
                "before": self.before, "grids": self.grids, "converged": self.converged,
                "wall_s": self.wall_s + wall_s, "stream": stream_state, "health": self.health}
        return {}, rest

    @classmethod
    def from_state(cls, state: State, stream: PromptStream) -> "Progress":
        rest = state[1]
        stream.load_state(rest["stream"])
        return cls(rest["step"], list(rest["rewards_seen"]), Counter(rest["rubric"]), rest["before"],
                   [tuple(g) for g in rest["grids"]], rest["converged"], rest["wall_s"], list(rest.get("health", [])))


def checkpoint_to_resume(run_cfg, run_path: Path) -> Path | None:
    """The checkpoint `run.resume` names: "" none, "auto" the newest valid one under the run (None: start
    fresh), or a checkpoint directory (it must verify)."""
    if not run_cfg.resume:
        if (run_path / "metrics.jsonl").is_file() and (run_path / "metrics.jsonl").stat().st_size:
            raise UserError(f"run.dir {run_path} already holds a run (metrics.jsonl); pass run.resume=auto to "
                            "continue it, or choose another run.dir")
        return None
    if run_cfg.resume == "auto":
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            found = checkpoint.latest_valid(run_path / "checkpoints")
        for w in caught:
            print(f"warning: {w.message}", flush=True)
        return found
    path = Path(run_cfg.resume)
    try:
        checkpoint.verify(path)
    except checkpoint.CheckpointError as e:
        raise UserError(f"run.resume={run_cfg.resume}: {e}") from None
    return path


def check_holders(path: Path, holders: list[str]) -> None:
    """The checkpoint must hold exactly this job's actors (same role counts) and the driver."""
    files = json.loads((path / "manifest.json").read_text())["files"]  # verified already: no second hashing pass
    saved = sorted({name.rsplit(".", 1)[0] for name in files} - {"driver"})
    if saved != sorted(holders):
        raise UserError(f"checkpoint {path} holds actors {saved}, this job has {sorted(holders)}: resume with the "
                        "same rollout.actors, trainer.learners and trainer.introspectors")


def step_record(step: int, judged: list, evaluated: list, stats: dict, rubric: Counter) -> dict:
    """One metrics.jsonl line; `evaluated`: the evaluator's per-image scores (no `eval` key when [], a step
    eval.every skips); `rubric` accumulates the rubric book's events over the run."""
    rewards = np.concatenate([j.rewards.numpy() for j in judged])
    health: dict[str, int] = {}
    for j in judged:
        rubric.update(j.rubric)
        health = add_health(health, j.health)
    finite = rewards[np.isfinite(rewards)]  # NaN/inf are counted in health, not averaged in
    mean, std = (float(finite.mean()), float(finite.std())) if finite.size else (float("nan"), float("nan"))
    measured = {"eval": float(np.mean(np.concatenate(evaluated)))} if evaluated else {}
    return {"step": step, "reward_mean": mean, "reward_std": std, **measured, **stats, "rubric": dict(rubric),
            "health": health}


def converged(history: list[float], window: int, tol: float) -> bool:
    """The mean reward of the last `window` steps rose by less than `tol` over the window before it."""
    if window <= 0 or len(history) < 2 * window:
        return False
    return np.mean(history[-window:]) - np.mean(history[-2 * window: -window]) < tol
