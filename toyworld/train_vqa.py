"""A small GIT (transformers GitForCausalLM) trained to answer the toy world's yes/no questions from pixels: the
VQA model of the VQA-scored rubric (reward.judge=vqa_rubric) in the toy world, learnt from scratch on rendered
scenes of every composition for a fixed time budget (entry point: launch/train_toy_vqa.py)."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import torch
from transformers import GitForCausalLM

from models.git import CLIP_MEAN, CLIP_STD, GitVQA, toy_git_config
from toyworld.evaluation import understanding_accuracy
from toyworld.pretrain import random_scenes
from toyworld.prompts import load_split, universe
from toyworld.questions import ask
from toyworld.vocabulary import build_tokenizer


def build(cfg, tok) -> GitVQA:
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


def train(cfg) -> dict:
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
