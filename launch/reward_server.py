"""Serve a judge to clients outside (or inside) the cluster over the reward server (rewards/server.py).

    python launch/reward_server.py                                   # toy-world oracle on 127.0.0.1:5555
    META_TTRL_REWARD_SECRET=... python launch/reward_server.py host=0.0.0.0   # beyond loopback: secret required

    python launch/reward_server.py model=/models/janus-pro-7b        # also an external model's rubric judge

Methods (items {"prompt": str, "image": {"shape", "data"}}, one float back per item): `oracle`, the evaluator of
`benchmark` (default: the toy world's pixel oracle, 1.0 if the image is correct for the prompt, else 0.0; others
need their eval.* model directories) on the prompts of its splits or of `prompts=<file in its format>`; with `model=<dir>`, `rubric`: that model writes each prompt's rubric (cached) and
answers it, Eq. 5-6 (E-TTRL's judge outside the cluster: the job's `reward.judge=server`), and `reward_model`: its
P(yes) to one question, does the image match the prompt (an external reward model). The
secret is read from the environment variable named by `secret_env` (never from the command line, where `ps`
would show it).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from driver.cli import parse_config, run_main
from driver.reward_methods import build_server
from launch.configs.server import ServerConfig


def main(argv: list[str]) -> None:
    cfg = parse_config(ServerConfig, argv, "launch/reward_server.py", __doc__)
    server = build_server(cfg)
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
