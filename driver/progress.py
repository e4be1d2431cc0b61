"""The driver's side of a resumable run: the prompt stream, the loop's progress, and finding what to resume.

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

from launch.cli import UserError
from learners import checkpoint
from learners.state import State


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


@dataclass
class InFlight:
    """A submitted step: its rollout parts, judgements and oracle verdicts (object refs), and the prompt
    stream's state before its prompts were drawn (to redraw them when the step must be redone)."""
    drawn_from: dict
    parts: list
    judgements: list
    oracle: list


class Pipeline:
    """Steps submitted ahead of the learner: none beyond the current one on-policy, `ahead` in async mode."""

    def __init__(self, job, stream: PromptStream, prompts_per_step: int, ahead: int):
        self.job, self.stream, self.n, self.ahead = job, stream, prompts_per_step, ahead
        self.queue: list[InFlight] = []

    def current(self, step: int, steps: int) -> InFlight:
        """The step to train on now, after topping up the steps in flight (never past `steps`)."""
        while len(self.queue) <= self.ahead and step + len(self.queue) < steps:
            drawn_from = self.stream.state()
            parts = self.job.rollout(self.stream.next(self.n))  # sample G candidates per prompt
            # rubric (written once per prompt, cached) -> Eq. 5-6 rewards; the oracle is for metrics only
            self.queue.append(InFlight(drawn_from, parts, self.job.judge(parts), self.job.oracle(parts)))
        return self.queue[0]

    def done(self) -> None:
        self.queue.pop(0)

    def resume_state(self) -> dict:
        """The stream state a checkpoint stores: steps in flight are not in it, a resume redraws their prompts."""
        return self.queue[0].drawn_from if self.queue else self.stream.state()

    def drop(self, rewind: bool) -> None:
        """Drop the steps in flight; with `rewind`, their prompts are drawn again (the step is redone). Only the
        oracle's tasks are cancelled: a cancelled actor task still waiting for its arguments never reaches its actor,
        which then waits 30 s for the missing call (Ray's actor_scheduling_queue_max_reorder_wait_seconds) and fails
        every call queued behind it. Measured: the driver's next call to a live introspector after a rollout died
        took 31.5 s (ActorUnavailableError); without cancelling, 0.7 s. The dropped rollout and judge calls run (or
        fail with their dead argument) and their results are ignored."""
        if rewind and self.queue:
            self.stream.load_state(self.queue[0].drawn_from)
        self.job.cancel([ref for f in self.queue for ref in f.oracle])
        self.queue = []
