"""A mixin for the job's actors: each writes and reads its own checkpoint files (weights never pass through the
driver), through `state()` / `load_state()` of the actor, and tells its process id (a new one after a restart)."""

from __future__ import annotations

import os
from pathlib import Path

from learners import checkpoint


class Checkpointed:
    def save_state(self, tmp_dir: str, name: str) -> dict[str, str]:
        """Write this actor's state into a checkpoint's temp directory; returns {file: sha256}."""
        return checkpoint.write_state(Path(tmp_dir), name, self.state())

    def restore(self, checkpoint_dir: str, name: str):
        """Load this actor's state from a verified checkpoint directory."""
        return self.load_state(checkpoint.read_state(Path(checkpoint_dir), name))

    def pid(self) -> int:
        return os.getpid()

    def node(self) -> dict:
        """Where Ray placed this actor (placement.json in the run directory)."""
        import ray
        return {"node_id": ray.get_runtime_context().get_node_id(), "ip": ray.util.get_node_ip_address(),
                "pid": os.getpid()}
