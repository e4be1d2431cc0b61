"""Weight-sync benchmark (`make bench`, section `sync`): one sender and one receiver actor on this machine, the
same weights moved four ways, side by side in one run:

- bucketed: actors/weight_sync.broadcast_weights as the job runs it (small tensors in flat buckets, big ones alone
  and in place, the checksum on both sides), at each bucket size, checking every element (check_stride 1) or the
  job's default sample (one element in 16 of each big tensor, the offset moving every version);
- per-tensor: a plain `dist.broadcast` of every tensor in place (no checksum);
- object store: `ray.put` of the sender's tensors, `ray.get` + copy into the receiver's (no checksum);
- the memcpy floor: one process copying the same bytes from one set of tensors into another.

The weights are shaped like a transformer's: half big matrices, half norm-sized vectors (48 + 48 tensors).
"""

from __future__ import annotations

import time

import ray
import torch
import torch.distributed as dist

from actors import weight_sync


def layer_shapes(n_params: int, n_big: int = 48, small: int = 2048) -> list[int]:
    """Element counts of `n_big` equal matrices and as many norm-sized vectors, `n_params` in all."""
    big = (n_params - n_big * small) // n_big
    return [size for _ in range(n_big) for size in (big, small)]


@ray.remote(num_cpus=1)
class SyncPeer:
    def __init__(self, sizes: list[int], seed: int):
        torch.set_num_threads(1)
        gen = torch.Generator().manual_seed(seed)
        self.params = [torch.randn(n, generator=gen) for n in sizes]
        self.groups = None

    def address(self) -> tuple[str, int]:
        return ray.util.get_node_ip_address(), weight_sync.free_port()

    def join(self, rank: int, address: str, port: int) -> None:
        self.groups = weight_sync.join(rank, 1, 1, address, port, "gloo", timeout_s=600)

    def bucketed(self, bucket_mb: float, version: int, check_stride: int) -> tuple[float, int]:
        t0 = time.perf_counter()
        _, checksum = weight_sync.broadcast_weights(self.params, version, self.groups, int(bucket_mb * 2 ** 20),
                                                    torch.device("cpu"), check_stride=check_stride)
        return time.perf_counter() - t0, checksum

    def per_tensor(self) -> float:
        t0 = time.perf_counter()
        for p in self.params:
            dist.broadcast(p, src=0, group=self.groups.sync)
        return time.perf_counter() - t0

    def put(self) -> list:
        return [ray.put(self.params)]  # in a list: the receiver gets the ref, not the value

    def take(self, refs: list) -> None:
        for p, new in zip(self.params, ray.get(refs[0])):
            p.copy_(new)

    def memcpy(self) -> float:
        """Copy time into a destination already written once (a fresh one would time page faults)."""
        if not hasattr(self, "dst"):
            self.dst = [torch.zeros_like(p) for p in self.params]
        dst = self.dst
        t0 = time.perf_counter()
        for d, p in zip(dst, self.params):
            d.copy_(p)
        return time.perf_counter() - t0

    def checksum(self) -> int:
        return weight_sync.fingerprint(self.params)

    def leave(self) -> None:
        weight_sync.leave()


def sync_pair(sizes: list[int]) -> tuple:
    """A sender and a receiver holding tensors of these element counts, joined in one sync group."""
    sender, receiver = SyncPeer.remote(sizes, 0), SyncPeer.remote(sizes, 1)
    address, port = ray.get(sender.address.remote())
    ray.get([sender.join.remote(0, address, port), receiver.join.remote(1, address, port)])
    return sender, receiver


def best_bucketed(pair: tuple, bucket_mb: float, stride: int, repeats: int) -> float:
    """Best time of the job's bucketed sync over `repeats` versions; the receiver's checksum must match."""
    sender, receiver = pair
    times = []
    for r in range(repeats):
        (t_send, sent), (t_recv, got) = ray.get([sender.bucketed.remote(bucket_mb, r, stride),
                                                 receiver.bucketed.remote(bucket_mb, r, stride)])
        if sent != got:
            raise RuntimeError(f"bucketed sync at {bucket_mb} MB: receiver checksum {got:#x} != sender {sent:#x}")
        times.append(max(t_send, t_recv))
    return min(times)


def close_pair(pair: tuple) -> None:
    ray.get([peer.leave.remote() for peer in pair])
    for peer in pair:
        ray.kill(peer)


def measure_size(n_params: int, bucket_mbs: list[float], strides: tuple[int, ...] = (1, 16),
                 repeats: int = 3) -> list[dict]:
    """Rows (method, seconds, GB/s, x floor) for one model size; the receiver's checksum must match the sender's."""
    pair = sender, receiver = sync_pair(layer_shapes(n_params))
    gb = 4 * n_params / 1e9
    floor = min(ray.get([sender.memcpy.remote() for _ in range(repeats)]))
    rows = [{"method": "memcpy floor (one process)", "s": floor}]
    for mb, stride in [(mb, stride) for mb in bucket_mbs for stride in strides]:
        check = "every element" if stride == 1 else f"1 in {stride} of big tensors"
        rows.append({"method": f"bucketed {mb:g} MB, check {check}", "s": best_bucketed(pair, mb, stride, repeats)})
    rows.append({"method": "per-tensor broadcast", "s": min(
        [max(ray.get([sender.per_tensor.remote(), receiver.per_tensor.remote()])) for _ in range(repeats)])})
    store = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        ray.get(receiver.take.remote(ray.get(sender.put.remote())))
        store.append(time.perf_counter() - t0)
    rows.append({"method": "object store put/get", "s": min(store)})
    if ray.get(sender.checksum.remote()) != ray.get(receiver.checksum.remote()):
        raise RuntimeError("after the benchmark the receiver does not hold the sender's weights")
    close_pair(pair)
    for row in rows:
        row |= {"params_M": n_params / 1e6, "GB_per_s": gb / row["s"], "x_floor": row["s"] / floor}
    return rows


def run(sizes_m: list[int], bucket_mbs: list[float], repeats: int = 3) -> list[dict]:
    return [row for m in sizes_m for row in measure_size(m * 1_000_000, bucket_mbs, repeats=repeats)]
