"""Train a small GIT (transformers GitForCausalLM) to answer the toy world's yes/no questions from pixels: the
VQA model of the VQA-scored rubric (reward.judge=vqa_rubric) in the toy world. No pretrained weights exist for
the toy world and none can be downloaded here, so it learns from scratch on rendered scenes of every composition
(as the toy UMM's understanding did), for a fixed time budget, then reports its yes/no accuracy per question kind
on renders of the test and heldout prompts (toyworld.evaluation.understanding_accuracy, the toy UMM's measure).

    python launch/train_toy_vqa.py [out=models/toy_git] [minutes=10] [steps=0] [key=value ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from driver.cli import parse_config, run_main
from launch.configs.pretrain import VQATrainConfig
from toyworld.train_vqa import train


def main(argv: list[str]) -> None:
    print(json.dumps(train(parse_config(VQATrainConfig, argv, "launch/train_toy_vqa.py", __doc__))))


if __name__ == "__main__":
    run_main(main)
