"""Pretrain the embedded toy UMM (deterministic by seed): VQ, then joint generation + understanding + rubrics.

    python launch/pretrain_toy.py [key=value ...]     # defaults reproduce the committed models/toy_umm
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from launch.cli import parse_config, run_main
from models.janus import JanusAdapter, to_pixels
from models.toy import RUBRIC_INSTRUCTION, TEMPLATES, build_tokenizer, toy_config
from toyworld.evaluation import generation_score, rubric_quality, understanding_accuracy
from toyworld.pretrain import (JointData, finalize_codebook, generation_loss, kmeans_init, random_scenes,
                               reset_dead_codes, text_loss, vq_loss)
from toyworld.oracle import evaluate
from toyworld.prompts import load_split, universe

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class PretrainConfig:
    out: str = str(ROOT / "models" / "toy_umm")
    seed: int = 0
    threads: int = 2
    hidden: int = 160
    layers: int = 4
    vision_layers: int = 2
    codebook: int = 512
    vq_steps: int = 800
    vq_batch: int = 12
    vq_lr: float = 2e-3
    vq_warmup_fraction: float = 0.0  # autoencoder steps before k-means seeds the codebook (0: off)
    joint_steps: int = 1300
    gen_batch: int = 24  # ~80 tokens a row: generation gets the smaller share of every step's compute
    und_batch: int = 24  # ~170 tokens a row: image, caption and 8 yes/no turns
    rubric_batch: int = 8
    lr: float = 1.5e-3
    warmup: int = 100
    log_every: int = 100
    eval_prompts: int = 40
    vision_hidden: int = 128
    measure_after: bool = True  # measure understanding, rubrics and generation on test and heldout


def cosine_lr(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))


def reveal_schedule(step: int, total: int, start: float = 0.35, end: float = 0.7) -> float:
    """Share of background image tokens visible to attention: none until `start`, all from `end` on."""
    return min(max((step / total - start) / (end - start), 0.0), 1.0)


def train_vq(adapter: JanusAdapter, cfg, rng) -> None:
    """Optional autoencoder warm-up, a k-means codebook (from the encoder's latents at that point; at step 0
    when the warm-up is off), then VQ with straight-through and dead-code resets."""
    vq = adapter.model.model.vqmodel.train()
    opt = torch.optim.AdamW(vq.parameters(), lr=cfg.vq_lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(cfg.seed)
    usage = torch.zeros(vq.quantize.num_embeddings)
    pool, t0 = list(universe()), time.time()
    warm = int(cfg.vq_steps * cfg.vq_warmup_fraction)
    for step in range(cfg.vq_steps):
        if step == warm:
            kmeans_init(vq, to_pixels(random_scenes(rng, 128, pool)[2]), gen)
        pixels = to_pixels(random_scenes(rng, cfg.vq_batch, pool)[2])
        for g in opt.param_groups:
            g["lr"] = cfg.vq_lr * cosine_lr(step, cfg.vq_steps, cfg.warmup)
        loss, idx = vq_loss(vq, pixels, quantize=step >= warm)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if idx is not None:
            usage += torch.bincount(idx, minlength=len(usage))
        if step % 50 == 49 and idx is not None:
            if step < cfg.vq_steps * 0.8:
                reset_dead_codes(vq, usage, pixels, gen)
            usage.zero_()
        if step % cfg.log_every == cfg.log_every - 1:
            print(f"vq {step + 1}/{cfg.vq_steps} loss {loss.item():.4f} {time.time() - t0:.0f}s", flush=True)
    finalize_codebook(vq)
    vq.eval().requires_grad_(False)
    metas, _, images = random_scenes(rng, 120, pool)
    agree = sum(evaluate(img, m).correct for img, m in zip(adapter.reconstruct(images), metas)) / len(metas)
    print(f"vq done: oracle passes {agree:.1%} of round-tripped ground-truth renders", flush=True)


def train_joint(adapter: JanusAdapter, cfg) -> None:
    model, data = adapter.model, JointData(adapter, cfg.seed + 1)
    params = [p for n, p in model.named_parameters() if not n.startswith("model.vqmodel")]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.98), weight_decay=0.01)
    model.train()
    model.model.vqmodel.eval()
    t0, gen = time.time(), torch.Generator().manual_seed(cfg.seed + 2)
    for step in range(cfg.joint_steps):
        for g in opt.param_groups:
            g["lr"] = cfg.lr * cosine_lr(step, cfg.joint_steps, cfg.warmup)
        (und_ids, und_labels), images, _ = data.understanding(cfg.und_batch)
        rub_ids, rub_labels = data.rubric(cfg.rubric_batch)
        losses = {"gen": generation_loss(adapter, *data.generation(cfg.gen_batch)),
                  "und": text_loss(adapter, und_ids, und_labels, images, reveal_schedule(step, cfg.joint_steps), gen),
                  "rubric": text_loss(adapter, rub_ids, rub_labels)}
        opt.zero_grad()
        sum(losses.values()).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % cfg.log_every == cfg.log_every - 1:
            parts = " ".join(f"{k} {v.item():.3f}" for k, v in losses.items())
            print(f"joint {step + 1}/{cfg.joint_steps} {parts} {time.time() - t0:.0f}s", flush=True)
    model.eval()


def measure(adapter: JanusAdapter, cfg) -> dict:
    report = {}
    for split in ("test", "heldout"):
        metas = load_split(split)
        report[split] = {
            "understanding": understanding_accuracy(adapter, metas, seed=cfg.seed),
            "rubric": rubric_quality(adapter, metas, RUBRIC_INSTRUCTION),
            "generation": generation_score(adapter, metas[:: max(1, len(metas) // cfg.eval_prompts)], seed=cfg.seed),
        }
    return report


def main(argv: list[str]) -> None:
    cfg = parse_config(PretrainConfig, argv, "launch/pretrain_toy.py", __doc__)
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(cfg.threads)
    import random
    rng = random.Random(cfg.seed)
    tok = build_tokenizer()
    model_cfg = toy_config(len(tok), tok.convert_tokens_to_ids("<image>"), hidden=cfg.hidden, layers=cfg.layers,
                           vision_hidden=cfg.vision_hidden, vision_layers=cfg.vision_layers,
                           codebook=cfg.codebook)
    from transformers import JanusForConditionalGeneration
    adapter = JanusAdapter(JanusForConditionalGeneration(model_cfg), tok, TEMPLATES)
    t0 = time.time()
    train_vq(adapter, cfg, rng)
    t_vq = time.time() - t0
    train_joint(adapter, cfg)
    wall = time.time() - t0
    adapter.save_pretrained(cfg.out)
    report = {"wall_s": round(wall, 1), "vq_s": round(t_vq, 1), **(measure(adapter, cfg) if cfg.measure_after else {})}
    (Path(cfg.out) / "pretrain_report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report))


if __name__ == "__main__":
    run_main(main)
