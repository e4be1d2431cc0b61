"""What the driver does when an actor dies mid-run (Ray restarts it, up to `trainer.max_actor_restarts`):

- a rollout or introspector actor: the weight holders form a new process group, the restarted actors get the
  current weights (and an introspector its rubric cache from the newest checkpoint), and the step they were
  serving is redone from its prompts (`RedoStep`); a step the learner already applied is kept and never applied
  again;
- a learner: its weights and optimizer state are gone, so every actor and the driver go back to the newest
  checkpoint (metrics.jsonl cut back to it) and the run goes on from there (`RolledBack`, carrying the restored
  progress).

Restarts are counted per role (`restarts` in metrics.jsonl); after `trainer.max_recoveries` the run stops.
"""

from __future__ import annotations

from collections import Counter

import ray

from driver.progress import Progress
from learners import checkpoint


class ActorLost(Exception):
    """An actor died during a call; the job was brought back, and the loop must act on how."""


class RedoStep(ActorLost):
    """The survivors are up to date; the step the learner did not apply is redone (its prompts drawn again)."""


class RolledBack(ActorLost):
    """A learner died: every actor and the driver are back at a checkpoint; the run goes on from `progress`."""

    def __init__(self, progress: Progress):
        super().__init__(f"rolled back to step {progress.step}")
        self.progress = progress


class Recovery:
    def __init__(self, job, run, limit: int, rollback):
        """`rollback(path) -> Progress` restores every actor and the driver from checkpoint `path`."""
        self.job, self.run, self.limit, self.rollback = job, run, limit, rollback
        self.restarts: Counter = Counter()
        self.recoveries = 0
        self.synced: tuple[int, float] | None = None  # the re-sync's (version, seconds) after a redo

    def handle(self, error: Exception) -> None:
        """Bring the job back after `error`: returns once the survivors are up to date (the caller redoes or goes
        on), raises RolledBack after a learner's death. Errors that no actor restart explains are raised again."""
        restarted = self.job.find_restarted()
        if not restarted:
            raise error
        self._recover(restarted, str(error).strip().splitlines()[0][:200], error)

    def idle_check(self) -> None:
        """Actors that died between calls (nothing failed yet): brought up to date the same way; RolledBack if a
        learner was among them."""
        restarted = self.job.find_restarted()
        if restarted:
            self._recover(restarted, "found restarted between calls")

    def retry(self, action, tries: int = 3) -> None:
        """Run `action` (a call on the actors); an actor that dies during it is brought back and the action
        redone (RolledBack instead if a learner died)."""
        for _ in range(tries):
            try:
                return action()
            except ray.exceptions.RayError as e:
                self.handle(e)
        raise RuntimeError(f"giving up after {tries} tries: actors keep dying during {action}")

    def _recover(self, restarted: list[str], cause: str, error: Exception | None = None) -> None:
        self.recoveries += 1
        if self.recoveries > self.limit:
            raise RuntimeError(f"giving up after {self.limit} recoveries (trainer.max_recoveries)") from error
        roles = [name.rsplit("-", 1)[0] for name in restarted]
        self.restarts.update(roles)
        print(f"warning: {', '.join(restarted)} restarted ({cause}); recovering", flush=True)
        if "learner" in roles or "rollout" in roles:
            self.job.rejoin()
        self.run.write_json("placement.json", self.job.placement())  # a restarted actor may be on another node
        latest = checkpoint.latest_valid(self.run.path / "checkpoints")
        if "learner" in roles:
            if latest is None:
                raise RuntimeError("a learner died before the first checkpoint: nothing to roll back to") from error
            raise RolledBack(self.rollback(latest))
        if latest is not None:
            self.job.restore_some(latest, [n for n in restarted if n.startswith("introspector")])
        self.synced = self.job.sync()
