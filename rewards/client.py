"""The reward server's client: splits items into requests of at most `max_items`, sends them all at once
(pipelined), matches replies by id, and resends what has not been answered within `timeout_s`, up to `retries`
times; then RewardServerError. One client per thread (ZMQ sockets are not thread-safe)."""

from __future__ import annotations

import time
import uuid

import zmq

from rewards import wire


class RewardServerError(RuntimeError):
    """The server did not answer, or answered with an error."""


class RewardClient:
    def __init__(self, address: str, secret: bytes | None = None, timeout_s: float = 30.0, retries: int = 3,
                 max_items: int = 256, max_bytes: int = 64 << 20):
        self.address, self.secret, self.timeout_s, self.retries = address, secret, timeout_s, retries
        self.max_items, self.max_bytes = max_items, max_bytes
        self.ctx = zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDTIMEO, int(timeout_s * 1000))  # a server that is down must not block a send
        self.sock.connect(address)

    def close(self) -> None:
        self.sock.close()

    def call(self, method: str, items: list) -> list:
        """Results for `items`, in order."""
        chunks = {uuid.uuid4().hex: items[i: i + self.max_items] for i in range(0, len(items), self.max_items)}
        results: dict[str, list] = {}
        for attempt in range(self.retries + 1):
            for request_id, chunk in chunks.items():
                if request_id not in results:
                    message = {"v": wire.VERSION, "id": request_id, "ts": time.time(), "method": method,
                               "items": chunk}
                    try:
                        self.sock.send_multipart(wire.encode(message, self.secret))
                    except zmq.Again:  # the queue to an absent server is full: counts as unanswered
                        break
            self._collect(chunks, results)
            if len(results) == len(chunks):
                return [r for request_id in chunks for r in results[request_id]]
        raise RewardServerError(f"{self.address}: {len(chunks) - len(results)} of {len(chunks)} requests unanswered "
                                f"after {self.retries + 1} tries of {self.timeout_s} s")

    def _collect(self, chunks: dict[str, list], results: dict[str, list]) -> None:
        deadline = time.monotonic() + self.timeout_s
        while len(results) < len(chunks):
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(int(left * 1000)):
                return
            try:
                message = wire.decode(self.sock.recv_multipart(), self.secret, self.max_bytes)
            except wire.WireError:
                continue  # not from our server (or damaged): wait for the real answer
            request_id = message.get("id")
            if request_id not in chunks or request_id in results:
                if not message.get("ok") and request_id is None:
                    raise RewardServerError(f"{self.address} refused a request: {message.get('error')}")
                continue  # a late answer to an earlier try
            if not message.get("ok"):
                raise RewardServerError(f"{self.address}: {message.get('error')}")
            result = message.get("result")
            if not isinstance(result, list) or len(result) != len(chunks[request_id]):
                raise RewardServerError(f"{self.address}: malformed reply to request {request_id}")
            results[request_id] = result
