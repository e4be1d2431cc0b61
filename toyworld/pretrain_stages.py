"""The stages of the toy UMM's pretraining (deterministic by seed on one CPU type): VQ; understanding on symbolic
scenes; then joint generation + understanding + rubrics; then an understanding tail with spatial questions
weighted; then a composition tail that teaches the generator shape words before colour words and each colour word
on its own. Data streams and losses: toyworld/pretrain.py; the entry point: launch/pretrain_toy.py.
"""

from __future__ import annotations

import json
import math
import random
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from torch.nn.utils import parametrize
from transformers import JanusForConditionalGeneration

from models.janus import JanusAdapter, to_pixels
from models.toy import TEMPLATES, toy_config
from toyworld.evaluation import generation_score, rubric_quality, understanding_accuracy
from toyworld.oracle import evaluate
from toyworld.pretrain import (N_PATCH_TYPES, JointData, TypeFactored, alignment_loss, code_usage,
                               consolidate_codebook, finalize_codebook, generation_loss, kmeans_init, patch_types,
                               random_scenes, reset_dead_codes, retarget_codes, segment_loss, symbolic_features,
                               text_loss, vq_loss, without_background)
from toyworld.prompts import load_split, names_a_color, universe
from toyworld.questions import KINDS
from toyworld.vocabulary import RUBRIC_INSTRUCTION, build_tokenizer


def cosine_lr(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(total - warmup, 1)))


def train_vq(adapter: JanusAdapter, cfg, rng) -> float:
    """Optional autoencoder warm-up, a k-means codebook (from the encoder's latents at that point; at step 0
    when the warm-up is off), then VQ with straight-through and dead-code resets, then (`consolidate_codes`) one
    code per patch type. Returns the share of tokens whose code is their patch type."""
    vq = adapter.model.model.vqmodel.train()
    gen = torch.Generator().manual_seed(cfg.seed)
    prototypes = None
    if cfg.vq_type_loss:
        prototypes = torch.nn.Parameter(torch.randn(N_PATCH_TYPES, vq.quantize.embedding_dim, generator=gen))
    extra = [prototypes] if prototypes is not None else []
    opt = torch.optim.AdamW(list(vq.parameters()) + extra, lr=cfg.vq_lr, weight_decay=0.0)
    usage = torch.zeros(vq.quantize.num_embeddings)
    pool, t0 = list(universe()), time.time()
    warm = int(cfg.vq_steps * cfg.vq_warmup_fraction)
    for step in range(cfg.vq_steps):
        if step == warm:
            kmeans_init(vq, to_pixels(random_scenes(rng, 128, pool)[2]), gen)
        _, objs, images = random_scenes(rng, cfg.vq_batch, pool)
        pixels = to_pixels(images)
        for g in opt.param_groups:
            g["lr"] = cfg.vq_lr * cosine_lr(step, cfg.vq_steps, cfg.warmup)
        loss, idx = vq_loss(vq, pixels, quantize=step >= warm, types=patch_types(objs), prototypes=prototypes)
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
    if cfg.consolidate_codes:
        _, objs, images = random_scenes(rng, 400, pool)
        usage = code_usage(vq.encode(to_pixels(images)).image_tokens, patch_types(objs),
                           vq.quantize.num_embeddings)
        with torch.no_grad():
            vq.quantize.embedding.weight.copy_(consolidate_codebook(vq.quantize.embedding.weight, usage))
        print(f"codes per patch type before consolidation: background {int((usage[0] > 0).sum())}, objects "
              f"{int((usage[1:] > 0).sum(1).min())}-{int((usage[1:] > 0).sum(1).max())}", flush=True)
    return check_codes(adapter, rng, pool, "vq done")


@torch.no_grad()
def check_codes(adapter: JanusAdapter, rng: random.Random, pool: list[dict], label: str) -> float:
    """Round trips of 120 random scenes: prints how many the oracle passes; returns the share of tokens whose
    code is their patch type."""
    metas, objs, images = random_scenes(rng, 120, pool)
    codes = adapter.model.model.vqmodel.encode(to_pixels(images)).image_tokens.view(len(images), -1)
    agree = sum(evaluate(img, m).correct for img, m in zip(adapter.decode(codes), metas)) / len(metas)
    same = (codes == patch_types(objs)).float().mean().item()
    print(f"{label}: oracle passes {agree:.1%} of round-tripped ground-truth renders; code == patch type for "
          f"{same:.2%} of their tokens", flush=True)
    return same


def understanding_losses(adapter: JanusAdapter, data: JointData, cfg, symbolic: bool) -> dict:
    """Yes/no + caption loss on the model's own vision features, or (while `symbolic`) on the scene written in
    word embeddings with background tokens hidden; the vision features are pulled toward those words throughout
    (alignment)."""
    batch, images, objs = data.understanding(cfg.und_batch)
    real, words = adapter.image_features(images), symbolic_features(adapter, objs)
    if symbolic:
        und = segment_loss(adapter, batch, words, without_background(adapter, batch, objs))
    else:
        und = segment_loss(adapter, batch, real)
    return {"und": und,
            "align": cfg.align_weight * alignment_loss(real, words)}


def lm_optimizer(model, lr: float):
    """Everything but the (frozen) VQ trains; puts the model in train mode with the VQ in eval mode."""
    params = [p for n, p in model.named_parameters() if not n.startswith("model.vqmodel")]
    model.train()
    model.model.vqmodel.eval()
    return params, torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.98), weight_decay=0.01)


def optimizer_step(opt, params, losses: dict) -> None:
    opt.zero_grad()
    sum(losses.values()).backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()


def log_losses(phase: str, step: int, total: int, losses: dict, t0: float) -> None:
    parts = " ".join(f"{k} {v.item():.3f}" for k, v in losses.items())
    print(f"{phase} {step + 1}/{total} {parts} {time.time() - t0:.0f}s", flush=True)


def train_joint(adapter: JanusAdapter, cfg, codes_are_types: bool = False) -> None:
    """Understanding first on symbolic images (the LM learns to match question words against scene words while
    the vision encoder learns to produce them), then on the model's own vision features with generation."""
    model, data = adapter.model, JointData(adapter, cfg.seed + 1, codes_are_types=codes_are_types,
                                             tag_balanced=cfg.gen_tag_balanced)
    params, opt = lm_optimizer(model, cfg.lr)
    t0, total = time.time(), cfg.symbolic_steps + cfg.joint_steps
    for step in range(total):
        symbolic = step < cfg.symbolic_steps
        # Each phase has its own warm-up and cosine decay; the joint phase restarts from a fresh warm-up.
        phase_step, phase_len = (step, cfg.symbolic_steps) if symbolic else (step - cfg.symbolic_steps, cfg.joint_steps)
        for g in opt.param_groups:
            g["lr"] = cfg.lr * cosine_lr(phase_step, phase_len, cfg.warmup)
        data.hard_p = cfg.hard_negatives_symbolic if symbolic else cfg.hard_negatives
        losses = understanding_losses(adapter, data, cfg, symbolic)
        losses["rubric"] = text_loss(adapter, *data.rubric(cfg.rubric_batch))
        if not symbolic:
            losses["gen"] = generation_loss(adapter, *data.generation(cfg.gen_batch))
        optimizer_step(opt, params, losses)
        if step % cfg.log_every == cfg.log_every - 1:
            log_losses("symbolic" if symbolic else "joint", step, total, losses, t0)
    model.eval()


def question_kinds(text: str, key: str = "tail_kinds") -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in kinds if k not in KINDS]
    if not kinds or bad:
        raise ValueError(f"{key} {text!r}: expected a comma list of question kinds from {', '.join(KINDS)} "
                         f"(repeat a kind to weight it)")
    return kinds


def retarget_generator(adapter: JanusAdapter, seed: int) -> bool:
    """`retarget_codes` on the model, with code usage from 400 random scenes; True if afterwards the encoder gives
    every token of the check scenes its patch type (then generation targets are the types, no encoder pass)."""
    model, rng, pool = adapter.model.model, random.Random(seed), list(universe())
    _, objs, images = random_scenes(rng, 400, pool)
    quantize, head = model.vqmodel.quantize, model.generation_head.vision_head
    with torch.no_grad():
        usage = code_usage(model.vqmodel.encode(to_pixels(images)).image_tokens, patch_types(objs),
                           quantize.num_embeddings)
    retarget_codes(quantize.embedding.weight, model.generation_embeddings.weight, head.weight, head.bias, usage)
    return check_codes(adapter, rng, pool, "codes retargeted to patch types") == 1.0


@contextmanager
def factored_generator(model, enabled: bool):
    """`TypeFactored` on the generator's head rows and code embeddings for the block, then baked into plain
    weights (the saved model is a standard Janus checkpoint)."""
    tables = [(model.model.generation_head.vision_head, "weight"), (model.model.generation_embeddings, "weight")]
    for module, name in tables if enabled else []:
        parametrize.register_parametrization(module, name, TypeFactored(getattr(module, name).detach()))
    try:
        yield
    finally:
        for module, name in tables if enabled else []:
            parametrize.remove_parametrizations(module, name, leave_parametrized=True)


def train_tail(adapter: JanusAdapter, cfg) -> None:
    """Understanding with spatial questions weighted (the default `tail_kinds` asks them twice as often), with
    rubric writing and generation replay (drawn tag by tag) so neither drifts, at a constant low learning rate and
    a fresh optimizer; with `tail_retarget_codes`, the generator first moves to one code per patch type and trains
    factored (docs/results/toy_umm.md, "Generator: the synonym leak"). Measured on the 900-joint-step model
    (docs/results/toy_umm.md, "Understanding tail"), 300 steps: yes/no 0.879 / 0.887 -> 0.906 / 0.921 (spatial
    0.63 -> 0.74 on test), generation on test 0.206 -> 0.246 (145 prompts). Without rubric rows the parse rate
    fell to 0.34; on count and spatial questions only, object and attribute fell to 0.82 / 0.64.
    `tail_gen_only_steps`, `tail_shape_first` and `tail_color_only` (off by default; on in the composition tail,
    `compose_stage`) train the generator harder, shape words before colour words and colour words on their own, so
    reserved colour-shape pairs compose (docs/results/toy_umm.md, "Composition")."""
    if cfg.tail_steps <= 0:
        return
    codes_are_types = cfg.tail_retarget_codes and retarget_generator(adapter, cfg.seed + 12)
    model = adapter.model
    data = JointData(adapter, cfg.seed + 11, tag_balanced=cfg.tail_gen_tag_balanced, codes_are_types=codes_are_types)
    data.hard_p, data.kinds = cfg.hard_negatives, question_kinds(cfg.tail_kinds)
    # generation-only steps draw uniformly over train prompts (76% position: multi-object scenes)
    gen_only = JointData(adapter, cfg.seed + 13, codes_are_types=codes_are_types)
    train_prompts, shape_first_steps = data.train_pool, round(cfg.tail_shape_first * cfg.tail_steps)
    with factored_generator(model, cfg.tail_retarget_codes):
        params, opt = lm_optimizer(model, cfg.tail_lr)
        t0 = time.time()
        for step in range(cfg.tail_steps):
            if shape_first_steps and step in (0, shape_first_steps):  # colourless prompts first, then all
                pool = [m for m in train_prompts if step or not names_a_color(m)]
                data.use_generation_prompts(pool)
                gen_only.use_generation_prompts(pool)
            if step == shape_first_steps:
                data.color_only_p = gen_only.color_only_p = cfg.tail_color_only
            losses = understanding_losses(adapter, data, cfg, symbolic=False)
            losses["rubric"] = text_loss(adapter, *data.rubric(cfg.rubric_batch))  # without: parse rate 1.00 -> 0.34
            if cfg.tail_gen_batch:
                losses["gen"] = generation_loss(adapter, *data.generation(cfg.tail_gen_batch))
            optimizer_step(opt, params, losses)
            for _ in range(cfg.tail_gen_only_steps if cfg.tail_gen_batch else 0):
                batch = gen_only.generation(cfg.tail_gen_batch)
                optimizer_step(opt, params, {"gen": generation_loss(adapter, *batch)})
            if step % cfg.log_every == cfg.log_every - 1:
                log_losses("tail", step, cfg.tail_steps, losses, t0)
    model.eval()


def compose_stage(cfg):
    """The composition tail as a tail config (the `compose_*` values in the `tail_*` keys, codes retargeted). It
    draws the same data streams as the tail (seeds + 11, 12, 13): measured that way."""
    stage = cfg.copy()
    stage.tail_steps, stage.tail_kinds, stage.tail_retarget_codes = cfg.compose_steps, cfg.compose_kinds, True
    stage.tail_gen_only_steps, stage.tail_shape_first = cfg.compose_gen_only_steps, cfg.compose_shape_first
    stage.tail_color_only = cfg.compose_color_only
    return stage


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


@contextmanager
def deterministic(threads: int):
    """Bitwise-reproducible CPU training for the block, restoring the caller's settings after. Measured: without
    deterministic algorithms, the token-embedding gradient differs by ~3e-8 between identical passes (a
    multi-threaded accumulation), enough for full-size reruns to drift apart after the VQ stage."""
    before = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(before[0])
        torch.use_deterministic_algorithms(before[1])


def pretrain(cfg) -> dict:
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    tok = build_tokenizer()
    model_cfg = toy_config(len(tok), tok.convert_tokens_to_ids("<image>"), hidden=cfg.hidden, layers=cfg.layers,
                           vision_hidden=cfg.vision_hidden, vision_layers=cfg.vision_layers,
                           codebook=cfg.codebook)
    adapter = JanusAdapter(JanusForConditionalGeneration(model_cfg), tok, TEMPLATES)
    t0 = time.time()
    codes_are_types = train_vq(adapter, cfg, rng) == 1.0 and cfg.consolidate_codes
    if cfg.consolidate_codes and not codes_are_types:
        print("warning: some codes differ from their patch type; generation targets come from the encoder")
    t_vq = time.time() - t0
    train_joint(adapter, cfg, codes_are_types)
    train_tail(adapter, cfg)
    train_tail(adapter, compose_stage(cfg))
    wall = time.time() - t0
    adapter.save_pretrained(cfg.out)
    report = {"wall_s": round(wall, 1), "vq_s": round(t_vq, 1), **(measure(adapter, cfg) if cfg.measure_after else {})}
    (Path(cfg.out) / "pretrain_report.json").write_text(json.dumps(report, indent=1))
    return report
