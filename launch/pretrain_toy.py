"""Pretrain the embedded toy UMM (deterministic by seed on one CPU type): VQ; understanding on symbolic scenes; then
joint generation + understanding + rubrics; then an understanding tail with spatial questions weighted; then a
composition tail that teaches the generator shape words before colour words and each colour word on its own
(the stages: toyworld/pretrain_stages.py).

    python launch/pretrain_toy.py [key=value ...]     # defaults reproduce the committed models/toy_umm
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from driver.cli import parse_config, run_main
from launch.configs.pretrain import PretrainConfig
from toyworld.pretrain_stages import deterministic, pretrain


def main(argv: list[str]) -> None:
    cfg = parse_config(PretrainConfig, argv, "launch/pretrain_toy.py", __doc__)
    with deterministic(cfg.threads):
        report = pretrain(cfg)
    print(json.dumps(report))


if __name__ == "__main__":
    run_main(main)
