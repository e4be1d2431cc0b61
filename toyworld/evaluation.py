"""Measurements of a model on the toy world: generation (oracle), yes/no understanding, rubric writing."""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np
import torch

from models.adapter import Generator, Understanding
from rewards.rubric import RubricParseError, parse_rubric, rubric_from_metadata
from toyworld.oracle import evaluate
from toyworld.prompts import TAGS, scene_for
from toyworld.questions import KINDS, ask
from toyworld.render import render


def tag_table(correct_by_tag: dict[str, list[bool]]) -> dict:
    """GenEval aggregation: per-tag mean image correctness; overall = unweighted mean over present tags."""
    per_tag = {t: float(np.mean(v)) for t in TAGS if (v := correct_by_tag.get(t))}
    overall = float(np.mean(list(per_tag.values()))) if per_tag else 0.0
    return {"overall": overall, "per_tag": per_tag, "n_images": sum(len(v) for v in correct_by_tag.values())}


@torch.no_grad()
def generation_score(adapter: Generator, metas: list[dict], samples_per_prompt: int = 4, guidance: float = 3.0,
                     temperature: float = 1.0, seed: int = 0, batch_prompts: int = 16) -> dict:
    gen = adapter.generator(seed)
    by_tag = defaultdict(list)
    for start in range(0, len(metas), batch_prompts):
        chunk = metas[start: start + batch_prompts]
        out = adapter.sample([m["prompt"] for m in chunk], samples_per_prompt, guidance, temperature, gen)
        for i, image in enumerate(out.images):
            meta = chunk[i // samples_per_prompt]
            by_tag[meta["tag"]].append(evaluate(image, meta).correct)
    return tag_table(by_tag)


@torch.no_grad()
def understanding_accuracy(adapter: Understanding, metas: list[dict], questions_per_image: int = 10,
                           seed: int = 0, batch_images: int = 32) -> dict:
    """Yes/no accuracy on ground-truth renders of the prompts: balanced answers, per question kind."""
    rng = random.Random(seed)
    hits, negatives, hard = defaultdict(list), 0, 0
    scored = defaultdict(lambda: {"yes": [], "no": []})  # Eq. 5 yes-score by kind and true answer
    for start in range(0, len(metas), batch_images):
        scenes = [scene_for(m, rng) for m in metas[start: start + batch_images]]
        images = np.stack([render(o) for o in scenes])
        qs, index = [], []
        for i, objs in enumerate(scenes):
            for j in range(questions_per_image // 2):
                # A yes and a no of the same kind, or neither: balanced overall and per kind.
                kind = KINDS[(start + i + j) % len(KINDS)]
                pair = [ask(objs, rng, kind=kind, want=w) for w in ("yes", "no")]
                if all(pair):
                    qs += pair
                    index += [i, i]
        probs = adapter.answer_probs(images, [q.text for q in qs], index)
        for q, p in zip(qs, probs):
            said = "yes" if p[0] >= p[1] else "no"
            hits[q.kind].append(said == q.answer)
            scored[q.kind][q.answer].append(float(p[0] / (p[0] + p[1])))
            if q.answer == "no":
                negatives += 1
                hard += q.hard
    per_kind = {k: float(np.mean(v)) for k, v in hits.items()}
    all_hits = [h for v in hits.values() for h in v]
    return {"overall": float(np.mean(all_hits)), "per_kind": per_kind, "n_questions": len(all_hits),
            "hard_negative_fraction": hard / max(negatives, 1), "negative_fraction": negatives / max(len(all_hits), 1),
            "auc_per_kind": {k: ranking_auc(v["yes"], v["no"]) for k, v in scored.items()}}


def ranking_auc(positive: list[float], negative: list[float]) -> float:
    """P(score of a true statement > score of a false one), ties count half: what a GRPO judge needs (it only
    ranks a group's images), unlike accuracy at a 0.5 threshold. NaN if either side is empty."""
    if not positive or not negative:
        return float("nan")
    pos, neg = np.asarray(positive)[:, None], np.asarray(negative)[None]
    return float((pos > neg).mean() + 0.5 * (pos == neg).mean())


@torch.no_grad()
def rubric_quality(adapter: Understanding, metas: list[dict], instruction: str, batch: int = 64) -> dict:
    """Fraction of written rubrics that parse, and that equal the metadata rubric exactly."""
    parsed = exact = 0
    for start in range(0, len(metas), batch):
        chunk = metas[start: start + batch]
        for meta, text in zip(chunk, adapter.write([m["prompt"] for m in chunk], instruction)):
            try:
                items = parse_rubric(text)
            except RubricParseError:
                continue
            parsed += 1
            exact += items == rubric_from_metadata(meta)
    return {"parse_rate": parsed / max(len(metas), 1), "exact_rate": exact / max(len(metas), 1)}
