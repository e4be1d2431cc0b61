"""A reward server for judges outside the cluster: ZMQ ROUTER, msgpack frames (rewards/wire.py), batching.

    server = RewardServer({"score": judge}, host="127.0.0.1", port=5555)   # judge(items) -> results, same order
    server.start()                                                            # a daemon thread; or serve_forever()

Security: binds 127.0.0.1 unless told otherwise, and refuses to bind beyond loopback without an HMAC shared
secret; ZMQ drops any message over `max_bytes` (ZMQ_MAXMSGSIZE) before it is read; every frame is decoded
defensively and a bad one gets an error reply (or, with a secret, is dropped unanswered when its MAC is wrong,
so an unauthenticated peer learns nothing). Requests that arrive within `batch_window_s` are judged together,
up to `max_batch` items per handler call (a GPU judge wants large batches). A handler that raises or returns the
wrong number of results fails only the requests of that batch, with the reason in their replies.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import Counter
from typing import Callable

import zmq

from rewards import wire

Handler = Callable[[list], list]


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class RewardServer:
    def __init__(self, handlers: dict[str, Handler], host: str = "127.0.0.1", port: int = 0,
                 secret: bytes | None = None, max_bytes: int = 64 << 20, max_items: int = 1024,
                 max_batch: int = 256, batch_window_s: float = 0.002, max_age_s: float = 300.0):
        if not is_loopback(host) and not secret:
            raise ValueError(f"binding {host} (beyond loopback) needs a shared secret (HMAC); set one, or bind "
                             "127.0.0.1")
        self.handlers, self.secret, self.max_bytes, self.max_items = handlers, secret, max_bytes, max_items
        self.max_batch, self.window, self.max_age_s = max_batch, batch_window_s, max_age_s
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.MAXMSGSIZE, max_bytes + 4096)  # the payload limit plus the frames' overhead
        self.sock.setsockopt(zmq.RCVHWM, 64)  # few queued messages per peer: bounds what a flood can hold
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 0)  # a reply to a peer gone away is dropped, not an error
        self.port = self.sock.bind_to_random_port(f"tcp://{host}") if port == 0 else port
        if port:
            self.sock.bind(f"tcp://{host}:{port}")
        self.address = f"tcp://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{self.port}"
        self.stats: Counter = Counter()  # requests, items, batches, bad_frames, bad_mac, replays, handler_errors
        self.seen: dict[bytes, float] = {}  # signatures of signed requests within max_age_s: a replay is refused
        self._stop, self._thread = threading.Event(), None

    def start(self) -> "RewardServer":
        self._thread = threading.Thread(target=self.serve_forever, name="reward-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sock.close()
        self.ctx.term()

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def serve_forever(self) -> None:
        pending: list[tuple[bytes, str, str, list]] = []  # (peer, id, method, items) waiting for their batch
        opened = 0.0
        while not self._stop.is_set():
            wait_ms = 50 if not pending else max(0, int((opened + self.window - time.monotonic()) * 1000))
            try:
                if self.sock.poll(wait_ms):
                    request = self._receive()
                    if request is not None:
                        opened = opened if pending else time.monotonic()
                        pending.append(request)
                items = sum(len(r[3]) for r in pending)
                if pending and (items >= self.max_batch or time.monotonic() >= opened + self.window):
                    batch, pending = pending, []
                    self._judge(batch)
            except zmq.ZMQError:
                if self._stop.is_set():
                    break
                self.stats["internal_errors"] += 1  # keep serving: one bad exchange must not end the server
            except Exception:
                self.stats["internal_errors"] += 1

    def _send(self, peer: bytes, message: dict) -> None:
        try:
            frames = wire.encode(message, self.secret)
        except (TypeError, ValueError, OverflowError) as e:  # a handler's result msgpack cannot carry
            frames = wire.encode(wire.reply(message["id"], error=f"result is not msgpack-serialisable: {e}"),
                                 self.secret)
        self.sock.send_multipart([peer, *frames])

    def _receive(self) -> tuple[bytes, str, str, list] | None:
        frames = self.sock.recv_multipart()
        peer, body = frames[0], frames[1:]
        try:
            message = wire.decode(body, self.secret, self.max_bytes)
            request_id, method, items = wire.check_request(message, bool(self.secret), self.max_items,
                                                           self.max_age_s, time.time())
            if self.secret:
                self._refuse_replay(body[1])
            if method not in self.handlers:
                raise wire.WireError(f"unknown method {method!r}; valid: {', '.join(sorted(self.handlers))}")
        except wire.AuthError:
            self.stats["bad_frames"] += 1
            self.stats["bad_mac"] += 1
            return None  # unauthenticated: no answer at all
        except wire.WireError as e:
            self.stats["bad_frames"] += 1
            self._send(peer, wire.reply(None, error=str(e)))
            return None
        self.stats["requests"] += 1
        self.stats["items"] += len(items)
        return peer, request_id, method, items

    def _refuse_replay(self, signature: bytes) -> None:
        now = time.time()
        if len(self.seen) > 100_000 or (self.seen and next(iter(self.seen.values())) < now):
            self.seen = {sig: until for sig, until in self.seen.items() if until >= now}
        if signature in self.seen:
            self.stats["replays"] += 1
            raise wire.WireError("replayed request (this signature was seen already)")
        self.seen[signature] = now + self.max_age_s

    def _judge(self, pending: list[tuple[bytes, str, str, list]]) -> None:
        for method in dict.fromkeys(r[2] for r in pending):
            batch = [r for r in pending if r[2] == method]
            items = [item for r in batch for item in r[3]]
            self.stats["batches"] += 1
            try:
                results = list(self.handlers[method](items))
                if len(results) != len(items):
                    raise ValueError(f"handler returned {len(results)} results for {len(items)} items")
            except Exception as e:  # the judge's failure is the callers' answer, never the server's end
                self.stats["handler_errors"] += 1
                for peer, request_id, _, _ in batch:
                    self._send(peer, wire.reply(request_id, error=f"{method} failed: {type(e).__name__}: {e}"))
                continue
            start = 0
            for peer, request_id, _, its in batch:
                self._send(peer, wire.reply(request_id, results[start: start + len(its)]))
                start += len(its)
