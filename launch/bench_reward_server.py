"""Load test of the reward server on loopback: N concurrent clients x M single-item requests, each answer
checked; prints one JSON object (sent, answered, wrong, p50/p99 latency in ms, requests per second).

    python launch/bench_reward_server.py [clients=8] [requests=500] [secret=true]
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from rewards.client import RewardClient
from rewards.server import RewardServer


def load_test(clients: int = 8, requests: int = 500, secret: bytes | None = None) -> dict:
    server = RewardServer({"square": lambda items: [x * x for x in items]}, secret=secret).start()
    latencies, wrong, answered = [[] for _ in range(clients)], [0] * clients, [0] * clients

    def one_client(c: int) -> None:
        client = RewardClient(server.address, secret=secret, timeout_s=10)
        for i in range(requests):
            x = c * requests + i
            t = time.perf_counter()
            result = client.call("square", [x])
            latencies[c].append(time.perf_counter() - t)
            answered[c] += 1
            wrong[c] += result != [x * x]
        client.close()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=one_client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    server.stop()
    flat = np.array([x for per in latencies for x in per]) * 1000
    return {"sent": clients * requests, "answered": sum(answered), "wrong": sum(wrong),
            "p50_ms": float(np.percentile(flat, 50)), "p99_ms": float(np.percentile(flat, 99)),
            "requests_per_s": clients * requests / wall, "batches": server.stats["batches"]}


def main(argv: list[str]) -> None:
    args = dict(a.split("=", 1) for a in argv)
    secret = b"bench-secret" if args.get("secret", "false").lower() == "true" else None
    print(json.dumps(load_test(int(args.get("clients", 8)), int(args.get("requests", 500)), secret)))


if __name__ == "__main__":
    main(sys.argv[1:])
