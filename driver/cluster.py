"""The Ray cluster a job runs on: the one it was submitted to, a given address, or a new local one on loopback."""

from __future__ import annotations

import math
import os

import ray


def cpus_needed(cfg, train: bool = True) -> float:
    """CPUs the job's roles ask for (the learners only when it trains)."""
    res = cfg.resources
    return (cfg.rollout.actors * res.rollout.num_cpus + cfg.trainer.introspectors * res.introspector.num_cpus +
            (cfg.trainer.learners * res.learner.num_cpus if train else 0))


def connect(address: str, cpus_needed: float) -> None:
    """Join the cluster a job was submitted to (RAY_ADDRESS; the runtime envs merge), or `address`, or start a
    local one."""
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    env = {"env_vars": {"GLOO_SOCKET_IFNAME": os.environ["GLOO_SOCKET_IFNAME"], "TOKENIZERS_PARALLELISM": "false"}}
    if ray.is_initialized():  # a caller (e.g. the test session) already holds a cluster
        return
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address or None, runtime_env=env, log_to_driver=False)
    else:
        # address="local": a new cluster even if this machine runs another (or a stale pointer to one)
        ray.init(address="local", _node_ip_address="127.0.0.1", runtime_env=env, include_dashboard=False,
                 num_cpus=max(os.cpu_count() or 1, math.ceil(cpus_needed)), log_to_driver=False)
