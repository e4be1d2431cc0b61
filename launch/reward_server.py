"""Serve a judge to clients outside (or inside) the cluster over the reward server (rewards/server.py).

    python launch/reward_server.py                                   # toy-world oracle on 127.0.0.1:5555
    META_TTRL_REWARD_SECRET=... python launch/reward_server.py host=0.0.0.0   # beyond loopback: secret required

Methods: `oracle` (the toy world's evaluator: items {"prompt": str, "image": {"shape", "data"}} -> 1.0 if the
image is correct for the prompt, else 0.0; prompts of the built-in splits or of `prompts=<file.jsonl>`). The
secret is read from the environment variable named by `secret_env` (never from the command line, where `ps`
would show it).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from launch.cli import UserError, parse_config, run_main
from rewards import wire
from rewards.server import RewardServer, is_loopback


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 5555
    secret_env: str = "META_TTRL_REWARD_SECRET"  # the shared HMAC secret's environment variable ("" = none)
    max_mb: float = 64.0  # largest request accepted
    max_batch: int = 256  # items per judge call
    batch_window_ms: float = 2.0  # how long the first request of a batch waits for company
    prompts: str = ""  # a GenEval-format .jsonl whose prompts the oracle also knows


def oracle_judge(metadata: dict[str, dict]):
    from toyworld.oracle import evaluate

    def judge(items: list) -> list[float]:
        out = []
        for item in items:
            if not isinstance(item, dict) or item.get("prompt") not in metadata:
                raise wire.WireError("each item needs a 'prompt' the server knows and an 'image'")
            out.append(float(evaluate(wire.decode_image(item.get("image")), metadata[item["prompt"]]).correct))
        return out
    return judge


def build(cfg) -> RewardServer:
    from launch.evaluate import load_prompts
    from toyworld.prompts import SPLITS, load_split

    metas = [m for split in SPLITS for m in load_split(split)] + (load_prompts(cfg.prompts) if cfg.prompts else [])
    secret = os.environ.get(cfg.secret_env, "").encode() if cfg.secret_env else b""
    if not is_loopback(cfg.host) and not secret:
        raise UserError(f"host={cfg.host} is beyond loopback: set a shared secret in ${cfg.secret_env or '<secret_env>'}"
                        " (clients sign every request with it), or bind 127.0.0.1")
    return RewardServer({"oracle": oracle_judge({m["prompt"]: m for m in metas})}, cfg.host, cfg.port,
                        secret or None, int(cfg.max_mb * 2**20), max_batch=cfg.max_batch,
                        batch_window_s=cfg.batch_window_ms / 1000)


def main(argv: list[str]) -> None:
    cfg = parse_config(ServerConfig, argv, "launch/reward_server.py", __doc__)
    server = build(cfg)
    print(f"reward server on {cfg.host}:{server.port} ({'HMAC-signed' if server.secret else 'unsigned, loopback'})",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    run_main(main)
