"""One placement group per role; actors named `<role>-<i>` so the Ray dashboard reads like the design diagram."""

from __future__ import annotations

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy


# resources.strategy: how Ray places a role's bundles (each role gets its own placement group)
STRATEGIES = {"PACK": "as few nodes as possible", "SPREAD": "as many nodes as possible",
              "STRICT_PACK": "one node, or not placed", "STRICT_SPREAD": "one node per bundle, or not placed"}


NODE_TOKEN = 0.001  # of a role's node_resource per actor: a label on the nodes, not a count


def bundles(n: int, num_cpus: float, num_gpus: float, node_resource: str = "") -> list[dict]:
    if n < 1:
        raise ValueError(f"a role needs at least one actor, got {n}")
    bundle = {"CPU": num_cpus, **({"GPU": num_gpus} if num_gpus else {}),
              **({node_resource: NODE_TOKEN} if node_resource else {})}
    return [dict(bundle) for _ in range(n)]


class PlacementError(RuntimeError):
    """The cluster lacks the resources a role asks for."""


class ActorNotBack(RuntimeError):
    """An actor lost mid-run did not come back (out of restarts, stuck, or no node left with room for its bundle):
    the run stops; its checkpoints let `run.resume=auto` go on once the cluster has room again."""


def place_role(actor_cls, role: str, n: int, resources, strategy: str, args_for, timeout_s: float = 120,
               max_restarts: int = 0) -> tuple[list, object]:
    """Start n actors of `actor_cls` in a placement group of n bundles (`resources.strategy` if set, else `strategy`);
    `args_for(i)` gives actor i's args.
    A dead actor is restarted up to `max_restarts` times in its bundle (the driver then brings it up to date;
    its interrupted calls fail rather than rerun on a stale actor: max_task_retries=0). Returns (actors, group)."""
    strategy = getattr(resources, "strategy", "") or strategy  # the role's own, else the job's default
    node_resource = getattr(resources, "node_resource", "")
    if node_resource and node_resource not in ray.cluster_resources():
        raise PlacementError(f"the {role} role is pinned to nodes with resource {node_resource!r} "
                             f"(resources.{role.split('-')[0]}.node_resource), and no node of the cluster has it: "
                             f"start those nodes with ray start --resources='{{\"{node_resource}\": 1}}'")
    wanted = bundles(n, resources.num_cpus, resources.num_gpus, node_resource)
    group = placement_group(wanted, strategy=strategy, name=f"{role}s")
    try:
        ray.get(group.ready(), timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        remove_placement_group(group)
        raise PlacementError(f"the {role} role's {n} x {wanted[0]} ({strategy}) could not be placed in {timeout_s:.0f}"
                             f" s; the cluster has {ray.available_resources()} free") from None
    actors = []
    for i in range(n):
        actors.append(actor_cls.options(
            name=f"{role}-{i}", num_cpus=resources.num_cpus, num_gpus=resources.num_gpus,
            resources={node_resource: NODE_TOKEN} if node_resource else None,
            max_restarts=max_restarts, max_task_retries=0,
            scheduling_strategy=PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=i),
        ).remote(*args_for(i)))
    return actors, group
