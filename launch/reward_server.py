"""Serve a judge to clients outside (or inside) the cluster over the reward server (rewards/server.py).

    python launch/reward_server.py                                   # toy-world oracle on 127.0.0.1:5555
    META_TTRL_REWARD_SECRET=... python launch/reward_server.py host=0.0.0.0   # beyond loopback: secret required

    python launch/reward_server.py model=/models/janus-pro-7b        # also an external model's rubric judge

Methods (items {"prompt": str, "image": {"shape", "data"}}, one float back per item): `oracle`, the toy world's
evaluator: 1.0 if the image is correct for the prompt, else 0.0 (prompts of the built-in splits or of
`prompts=<file.jsonl>`); with `model=<dir>`, `rubric`: that model writes each prompt's rubric (cached) and
answers it, Eq. 5-6 (E-TTRL's judge outside the cluster: the job's `reward.judge=server`). The
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
    model: str = ""  # a Janus-layout model directory: also serve its rubric judge as method `rubric`
    threads: int = 1  # torch CPU threads of the model judge


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


def rubric_judge(model_path: str, threads: int):
    """An external model's rubric judge (rewards.judges.RubricJudge) behind the wire format."""
    from types import SimpleNamespace

    import numpy as np
    import torch

    from launch.evaluate import load_adapter
    from rewards.introspection import RubricBook
    from rewards.judges import RubricJudge, model_writer

    torch.set_num_threads(threads)
    adapter = load_adapter(model_path)
    judge = RubricJudge(RubricBook(model_writer(adapter, 96, adapter.generator(0))), adapter)
    side = adapter.model.config.vision_config.image_size
    size = (side, side, 3)

    def serve(items: list) -> list[float]:
        if not all(isinstance(i, dict) and isinstance(i.get("prompt"), str) and i["prompt"] for i in items):
            raise wire.WireError("each item needs a non-empty 'prompt' string and an 'image'")
        images = [wire.decode_image(i.get("image")) for i in items]
        if any(im.shape != size for im in images):
            raise wire.WireError(f"the model judges {size[0]} x {size[1]} RGB images, got {images[0].shape}...")
        images = np.stack(images)
        with torch.no_grad():
            return judge(SimpleNamespace(prompts=[i["prompt"] for i in items], images=images)).rewards.tolist()
    return serve


def build(cfg) -> RewardServer:
    from launch.evaluate import load_prompts
    from toyworld.prompts import SPLITS, load_split

    metas = [m for split in SPLITS for m in load_split(split)] + (load_prompts(cfg.prompts) if cfg.prompts else [])
    secret = os.environ.get(cfg.secret_env, "").encode() if cfg.secret_env else b""
    if not is_loopback(cfg.host) and not secret:
        raise UserError(f"host={cfg.host} is beyond loopback: set a shared secret in ${cfg.secret_env or '<secret_env>'}"
                        " (clients sign every request with it), or bind 127.0.0.1")
    handlers = {"oracle": oracle_judge({m["prompt"]: m for m in metas})}
    if cfg.model:
        handlers["rubric"] = rubric_judge(cfg.model, cfg.threads)
    return RewardServer(handlers, cfg.host, cfg.port,
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
