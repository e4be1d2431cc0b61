"""What the driver does when an actor dies mid-run (Ray restarts it, up to `trainer.max_actor_restarts`):

- a rollout or introspector actor: the weight holders form a new process group, the restarted actors get the
  current weights (and an introspector its rubric cache from the newest checkpoint), and the step they were
  serving is redone from its prompts; a step the learner already applied is kept and never applied again;
- a learner: its weights and optimizer state are gone, so every actor and the driver go back to the newest
  checkpoint (metrics.jsonl cut back to it) and the run goes on from there.

Restarts are counted per role (`restarts` in metrics.jsonl); after `trainer.max_recoveries` the run stops.
"""

from __future__ import annotations

from collections import Counter

from launch.progress import Progress
from learners import checkpoint


class Recovery:
    def __init__(self, job, run, limit: int, rollback):
        """`rollback(path) -> Progress` restores every actor and the driver from checkpoint `path`."""
        self.job, self.run, self.limit, self.rollback = job, run, limit, rollback
        self.restarts: Counter = Counter()
        self.recoveries = 0
        self.synced: tuple[int, float] | None = None  # the re-sync's (version, seconds) after a redo

    def handle(self, error: Exception) -> Progress | None:
        """Bring the job back after `error`: the progress to continue from after a rollback, None when the
        failed step is simply redone. Errors that no actor restart explains are raised again."""
        restarted = self.job.find_restarted()
        if not restarted:
            raise error
        return self._recover(restarted, str(error).strip().splitlines()[0][:200], error)

    def idle_check(self) -> Progress | None:
        """Actors that died between calls (nothing failed yet): brought up to date the same way; the progress
        to continue from if a learner was among them."""
        restarted = self.job.find_restarted()
        return self._recover(restarted, "found restarted between calls") if restarted else None

    def _recover(self, restarted: list[str], cause: str, error: Exception | None = None) -> Progress | None:
        self.recoveries += 1
        if self.recoveries > self.limit:
            raise RuntimeError(f"giving up after {self.limit} recoveries (trainer.max_recoveries)") from error
        roles = [name.rsplit("-", 1)[0] for name in restarted]
        self.restarts.update(roles)
        print(f"warning: {', '.join(restarted)} restarted ({cause}); recovering", flush=True)
        if "learner" in roles or "rollout" in roles:
            self.job.rejoin()
        latest = checkpoint.latest_valid(self.run.path / "checkpoints")
        if "learner" in roles:
            if latest is None:
                raise RuntimeError("a learner died before the first checkpoint: nothing to roll back to") from error
            return self.rollback(latest)
        if latest is not None:
            self.job.restore_some(latest, [n for n in restarted if n.startswith("introspector")])
        self.synced = self.job.sync()
        return None
