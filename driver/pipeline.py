"""The first half of Algorithm 1's step as work in flight on the cluster: prompts -> sample G candidates each ->
the introspector's rubric (written once per prompt, cached) and scores (Eq. 5-6), and the benchmark evaluator's
scores for the metrics, all as object refs. In async mode the next `max_staleness` steps are submitted ahead, so their
rollouts overlap the current update.
"""

from __future__ import annotations

from dataclasses import dataclass

from driver.progress import PromptStream


@dataclass
class InFlight:
    """A submitted step: its rollout parts, judgements and evaluator scores (object refs; none on steps
    `eval.every` skips), and the prompt
    stream's state before its prompts were drawn (to redraw them when the step must be redone)."""
    drawn_from: dict
    parts: list
    judgements: list
    evaluated: list


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
            # rubric (written once per prompt, cached) -> Eq. 5-6 rewards; the evaluator is for metrics only
            evaluated = self.job.evaluate_parts(parts, step + len(self.queue))
            self.queue.append(InFlight(drawn_from, parts, self.job.judge(parts), evaluated))
        return self.queue[0]

    def done(self) -> None:
        self.queue.pop(0)

    def resume_state(self) -> dict:
        """The stream state a checkpoint stores: steps in flight are not in it, a resume redraws their prompts."""
        return self.queue[0].drawn_from if self.queue else self.stream.state()

    def drop(self, rewind: bool) -> None:
        """Drop the steps in flight; with `rewind`, their prompts are drawn again (the step is redone). Nothing is
        cancelled: every call in flight is an actor call, and a cancelled actor call still waiting for its arguments
        never reaches its actor, which then waits 30 s for the missing call (Ray's
        actor_scheduling_queue_max_reorder_wait_seconds) and fails every call queued behind it (measured: the driver's
        next call to a live introspector after a rollout died took 31.5 s). The dropped calls run (or fail with their
        dead argument) and their results are ignored."""
        if rewind and self.queue:
            self.stream.load_state(self.queue[0].drawn_from)
        self.queue = []
