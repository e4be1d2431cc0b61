"""Train a small GIT (transformers GitForCausalLM) to answer the toy world's yes/no questions from pixels: the
VQA model of the VQA-scored rubric (reward.judge=vqa_rubric) in the toy world. No pretrained weights exist for
the toy world and none can be downloaded here, so it learns from scratch on rendered scenes of every composition
(as the toy UMM's understanding did), for a fixed time budget, then reports its yes/no accuracy per question kind
on renders of the test and heldout prompts (toyworld.evaluation.understanding_accuracy, the toy UMM's measure).

    python launch/train_toy_vqa.py [out=models/toy_git] [minutes=10] [steps=0] [key=value ...]
"""

from __future__ import annotations

import json
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
from transformers import GitForCausalLM

from launch.cli import parse_config, run_main
from models.git import CLIP_MEAN, CLIP_STD, GitVQA, toy_git_config
from models.toy import build_tokenizer
from toyworld.evaluation import understanding_accuracy
from toyworld.pretrain import random_scenes
from toyworld.prompts import load_split, universe
from toyworld.questions import ask


@dataclass
class VQATrainConfig:
    out: str = "models/toy_git"
    minutes: float = 10.0  # wall-clock budget (the run stops at whichever of minutes / steps comes first)
    steps: int = 0  # 0: until the time budget
    batch: int = 64  # images per step, one question each
    lr: float = 5e-4
    hidden: int = 96
    layers: int = 3
    threads: int = 2
    seed: int = 0


def build(cfg: VQATrainConfig, tok) -> GitVQA:
    return GitVQA(GitForCausalLM(toy_git_config(tok, cfg.hidden, cfg.layers)), tok, CLIP_MEAN, CLIP_STD)


def batch(vqa: GitVQA, rng: random.Random, n: int, pool: list[dict]):
    """n rendered scenes, one balanced yes/no question each: ([BOS] question answer) ids, labels on the answer."""
    _, objs, images = random_scenes(rng, n, pool)
    rows = []
    for o in objs:
        q = None
        while q is None:
            q = ask(o, rng)
        rows.append(([vqa.start_id] + vqa.tok(q.text, add_special_tokens=False).input_ids,
                     vqa.tok(q.answer, add_special_tokens=False).input_ids[0]))
    width = max(len(r) for r, _ in rows) + 1
    ids = torch.full((n, width), vqa.tok.pad_token_id)
    labels, mask = torch.full_like(ids, -100), torch.zeros_like(ids)
    for i, (r, answer) in enumerate(rows):
        ids[i, : len(r) + 1] = torch.tensor(r + [answer])
        labels[i, len(r)], mask[i, : len(r) + 1] = answer, 1
    return ids, mask, labels, vqa.image_features(images)


def train(cfg: VQATrainConfig) -> dict:
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    vqa, rng, pool = build(cfg, build_tokenizer()), random.Random(cfg.seed), list(universe())
    opt = torch.optim.AdamW(vqa.model.parameters(), lr=cfg.lr, weight_decay=0.01)
    t0, step, losses = time.time(), 0, []
    vqa.model.train()
    while (cfg.steps == 0 or step < cfg.steps) and time.time() - t0 < cfg.minutes * 60:
        ids, mask, labels, pixels = batch(vqa, rng, cfg.batch, pool)
        loss = vqa.model(input_ids=ids, attention_mask=mask, pixel_values=pixels, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vqa.model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        step += 1
        if step % 100 == 0:
            print(f"step {step} loss {sum(losses[-100:]) / 100:.3f} ({time.time() - t0:.0f} s)", flush=True)
    vqa.model.eval()
    last = losses[-100:]
    report = {"steps": step, "train_s": round(time.time() - t0, 1), "final_loss": sum(last) / max(1, len(last)),
              **{split: understanding_accuracy(vqa, load_split(split), seed=cfg.seed) for split in ("test", "heldout")}}
    out = Path(cfg.out)
    vqa.model.save_pretrained(out)
    vqa.tok.save_pretrained(out)
    (out / "train_report.json").write_text(json.dumps(report, indent=1))
    return report


def main(argv: list[str]) -> None:
    print(json.dumps(train(parse_config(VQATrainConfig, argv, "launch/train_toy_vqa.py", __doc__))))


if __name__ == "__main__":
    run_main(main)
