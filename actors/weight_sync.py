"""Weights from the learner to the rollout actors over a torch.distributed collective (gloo on CPU, NCCL on GPU),
in bucketed flat buffers, with a version number.

One process group spans the job's weight holders: learner ranks 0..K-1, rollout ranks K..K+N-1. Subgroups:
`learners` (gradient all-reduce for K > 1) and `sync` (learner 0 + every rollout: the broadcast). Bucketing is
pure (`plan_buckets`, `flatten`, `unflatten`) and tested on its own.
"""

from __future__ import annotations

import socket
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist


# A tensor at least this big travels alone and in place (no flatten/unflatten copies): a collective's fixed cost is
# small against a MiB, and the copies were most of the sync's time beside the checksum (docs/results/performance.md).
ALONE_BYTES = 1 << 20


def plan_buckets(sizes_bytes: list[int], bucket_bytes: int, alone_bytes: int = ALONE_BYTES) -> list[list[int]]:
    """Consecutive parameter indices grouped so that no bucket exceeds `bucket_bytes`; a tensor of `alone_bytes`
    or more (or bigger than a bucket) is a bucket of its own."""
    if bucket_bytes <= 0:
        raise ValueError(f"bucket size must be positive, got {bucket_bytes} bytes")
    buckets, current, used = [], [], 0
    for i, size in enumerate(sizes_bytes):
        alone = size >= min(alone_bytes, bucket_bytes)
        if current and (alone or used + size > bucket_bytes):
            buckets.append(current)
            current, used = [], 0
        current.append(i)
        used += size
        if alone:
            buckets.append(current)
            current, used = [], 0
    if current:
        buckets.append(current)
    return buckets


def full_numel(t: torch.Tensor) -> int:
    """Elements of the whole tensor, also for a ZeRO-3 parameter (whose local tensor is an empty placeholder
    outside a gather): bucket plans must be the same on partitioned senders and whole receivers."""
    return getattr(t, "ds_numel", None) or t.numel()


def buckets_of(tensors: list[torch.Tensor], bucket_bytes: int) -> list[list[int]]:
    """Indices of `tensors` in buckets of one dtype each (a flat buffer has a single dtype)."""
    out = []
    for dtype in dict.fromkeys(t.dtype for t in tensors):
        idx = [i for i, t in enumerate(tensors) if t.dtype == dtype]
        out += [[idx[j] for j in b] for b in plan_buckets([full_numel(tensors[i]) * tensors[i].element_size()
                                                           for i in idx], bucket_bytes)]
    return out


def whole_buckets(params: list[torch.Tensor], bucket_bytes: int, gather=None):
    """Yields (indices, tensors) bucket by bucket, each bucket whole while it is out: `gather(tensors)` is a
    context that assembles partitioned parameters (ZeRO-3; a collective every learner rank enters for the same
    buckets in the same order), so at most one bucket is ever whole at once. No gather: the tensors as they are."""
    for bucket in buckets_of(params, bucket_bytes):
        tensors = [params[i] for i in bucket]
        with (gather(tensors) if gather else nullcontext()):
            yield bucket, tensors


def flatten(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


def unflatten(flat: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    total = sum(t.numel() for t in like)
    if total != flat.numel():
        raise ValueError(f"flat buffer has {flat.numel()} elements, the tensors {total}")
    out, start = [], 0
    for t in like:
        out.append(flat[start: start + t.numel()].view_as(t))
        start += t.numel()
    return out


_INT_OF_SIZE = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}
_MODULUS = (1 << 61) - 1
_PERIOD = 65521  # element weights repeat with this period (a prime)


def fingerprint(tensors: list[torch.Tensor]) -> int:
    """A checksum of the exact bits of `tensors`, computed where they live (no copy to host): each element's bit
    pattern as an integer, weighted by (its index mod 65521) + 1, summed in int64 (exact, so independent of
    reduction order and threads), then mixed with the tensor's position. Any changed, missing or moved element
    changes it except by a rare collision; it is a guard against failed syncs, not a cryptographic hash."""
    return fingerprint_of(enumerate(tensors))


def fingerprint_of(indexed, stride: int = 1, offset: int = 0) -> int:
    """`fingerprint` from (position, tensor) pairs in any grouping: the sum is over tensors, so a sender can add
    up a bucket at a time while each bucket is whole. With `stride` > 1 only one of `stride` equal contiguous
    blocks of each tensor counts, block `offset mod stride` (a sampled check that reads 1/stride of the memory; the
    weight sync moves the offset every version, so `stride` successive syncs cover every element). The weighted
    sum runs as column sums of the bits laid out in rows of 65521 (element i sits in column i mod 65521), then one
    dot with the weights: no int64 copy of the tensor and no index tensor (5x faster than weighting element by
    element; sums wrap modulo 2^64 alike on every rank)."""
    total = 0
    for i, t in indexed:
        bits = t.detach().contiguous().view(_INT_OF_SIZE[t.element_size()]).reshape(-1)
        block = -(-bits.numel() // stride)
        bits = bits[offset % stride * block: (offset % stride + 1) * block]
        whole = bits.numel() // _PERIOD * _PERIOD
        weights = torch.arange(1, _PERIOD + 1, device=bits.device)
        s = int((bits[:whole].view(-1, _PERIOD).sum(0, dtype=torch.int64) * weights).sum()) if whole else 0
        tail = bits[whole:]
        s += int((tail.to(torch.int64) * weights[: tail.numel()]).sum())
        total = (total + (i + 1) * (s % _MODULUS + t.numel())) % _MODULUS
    return total


class SyncError(RuntimeError):
    """A rollout actor does not hold the weights the learner sent."""


def check_sync(sent: tuple[int, int], received: dict[str, tuple[int, int]]) -> None:
    """Every receiver's (version, fingerprint) must equal the sender's; otherwise stop, naming who differs."""
    wrong = {name: got for name, got in received.items() if tuple(got) != tuple(sent)}
    if wrong:
        name, (version, fp) = next(iter(wrong.items()))
        raise SyncError(f"after the weight sync {name} holds version {version} (checksum {fp:#x}), the learner "
                        f"sent version {sent[0]} (checksum {sent[1]:#x}); {len(wrong)} actor(s) disagree")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# sync.backend -> the torch.distributed backend it means in this process
BACKENDS = {"auto": lambda: "nccl" if torch.cuda.is_available() else "gloo", "gloo": lambda: "gloo",
            "nccl": lambda: "nccl"}


def resolve_backend(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"unknown sync backend {name!r}; valid: {', '.join(BACKENDS)}")
    return BACKENDS[name]()


@dataclass
class Groups:
    rank: int
    learners: object  # process group of the learner ranks
    sync: object  # learner 0 + rollout ranks
    own: object = None  # this rank alone (DeepSpeed's model-parallel group: there is no model parallelism)
    backend: str = "gloo"

    def buffer_device(self, device: torch.device) -> torch.device:
        """Where flat buffers live: on the GPU for NCCL, on the host for gloo (also when the weights are on a GPU,
        e.g. several roles sharing one GPU, which NCCL refuses)."""
        return device if self.backend == "nccl" else torch.device("cpu")


def join(rank: int, n_learners: int, n_rollouts: int, address: str, port: int, backend: str,
         timeout_s: float = 300) -> Groups:
    """Join the job's process group (every weight holder calls this at once) and build both subgroups."""
    world = n_learners + n_rollouts
    backend = resolve_backend(backend)
    timeout = timedelta(seconds=timeout_s)
    dist.init_process_group(backend, init_method=f"tcp://{address}:{port}", rank=rank, world_size=world,
                            timeout=timeout)
    # each subgroup gets the timeout too: a new_group without one waits torch's default 30 min, so a survivor of a
    # lost peer sat that long inside the broken broadcast, deaf to the driver's recovery (seen on a lost node)
    learners = dist.new_group(list(range(n_learners)), timeout=timeout)
    sync = dist.new_group([0] + list(range(n_learners, world)), timeout=timeout)
    singles = [dist.new_group([r], timeout=timeout) for r in range(world)]  # every rank takes part in each
    return Groups(rank, learners, sync, singles[rank], backend)


def leave() -> None:
    """Leave the job's process group (before a new one is formed without a restarted member's old self)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def broadcast_weights(params: list[torch.Tensor], version: int, groups: Groups, bucket_bytes: int,
                      device: torch.device, gather=None, check_stride: int = 1, window: int = 4) -> tuple[int, int]:
    """Learner 0 sends, rollouts receive in place; returns (the version now held, the checksum of what was sent
    or received). Up to `window` buckets are in flight at once, each checked once it has arrived while the later
    ones travel (1 under a ZeRO-3 gather, whose buckets are whole only one at a time). Buckets of small tensors are
    checked in full; a big tensor (sent alone, in place) on one block in `check_stride`, the version's (1: every
    element, every sync). The learner ranks 1..K-1 are not in the sync group: they call `follow_broadcast` (which
    only matters under ZeRO-3, where they hold parts of every bucket)."""
    device = groups.buffer_device(device)
    header = torch.tensor([version], dtype=torch.int64, device=device)
    dist.broadcast(header, src=0, group=groups.sync)
    version = int(header.item())
    checksum, in_flight = 0, []
    window = 1 if gather is not None and groups.rank == 0 else max(1, window)

    def land(bucket, tensors, flat, work) -> int:
        """Wait for a bucket; a receiver unpacks a flat one; the checksum with this bucket added."""
        work.wait()
        if groups.rank != 0 and flat is not None:
            with torch.no_grad():
                for p, new in zip(tensors, unflatten(flat, tensors)):
                    p.copy_(new)
        big = len(tensors) == 1 and full_numel(tensors[0]) * tensors[0].element_size() >= ALONE_BYTES
        return (checksum + fingerprint_of(zip(bucket, tensors), check_stride if big else 1, version)) % _MODULUS

    for bucket, tensors in whole_buckets(params, bucket_bytes, gather if groups.rank == 0 else None):
        if len(tensors) == 1 and tensors[0].is_contiguous() and tensors[0].device == device:
            flat, buffer = None, tensors[0].detach()  # straight from the sender's weights into the receivers'
        elif groups.rank == 0:
            flat = buffer = flatten(tensors).to(device)
        else:
            flat = buffer = torch.empty(sum(t.numel() for t in tensors), dtype=tensors[0].dtype, device=device)
        in_flight.append((bucket, tensors, flat, dist.broadcast(buffer, src=0, group=groups.sync, async_op=True)))
        if len(in_flight) >= window:
            checksum = land(*in_flight.pop(0))
    for waiting in in_flight:
        checksum = land(*waiting)
    return version, checksum


def follow_broadcast(params: list[torch.Tensor], bucket_bytes: int, gather) -> None:
    """What a learner rank other than 0 does during a broadcast: take part in each bucket's gather (ZeRO-3)."""
    for _ in whole_buckets(params, bucket_bytes, gather):
        pass


def allreduce_gradients(params: list[torch.Tensor], groups: Groups, world: int, bucket_bytes: int) -> None:
    """Average gradients over the learner ranks (data parallelism), bucket by bucket."""
    if world == 1:
        return
    grads_all = [p.grad for p in params if p.grad is not None]
    for bucket in buckets_of(grads_all, bucket_bytes):
        grads = [grads_all[i] for i in bucket]
        flat = flatten(grads).to(groups.buffer_device(grads[0].device))
        dist.all_reduce(flat, group=groups.learners)
        flat /= world
        for g, new in zip(grads, unflatten(flat, grads)):
            g.copy_(new)
