"""The methods without a weight update, on a job of rollouts and introspectors only (no learner): Best-of-N
(N candidates per prompt, the judge's favourite kept) and MILR (latent search per prompt, rollout/milr.py). The
kept images are scored by the toy world's oracle."""

from __future__ import annotations

from collections import defaultdict

import ray

from actors.job import MetaTTRLJob
from driver.cluster import connect, cpus_needed
from driver.inputs import load_prompts
from driver.preflight import check_job
from rollout.best_of_n import pick_best
from toyworld.evaluation import tag_table
from toyworld.oracle import evaluate


def without_training(cfg, work, policy_needs: tuple[str, ...] = (), method: str = "") -> dict:
    """Run `work(job, metas)` over the prompts of `cfg.data.split` (the first `data.eval_max_prompts` if set);
    the actors go away after. `policy_needs`: capabilities the method needs of the policy (models/adapter.py)."""
    check_job(cfg, policy_needs, method)
    metas = load_prompts(cfg.data.split)
    metas = metas[: cfg.data.eval_max_prompts] if cfg.data.eval_max_prompts > 0 else metas
    connect(cfg.run.ray_address, cpus_needed(cfg, train=False))
    job = MetaTTRLJob(cfg, {m["prompt"]: m for m in metas}, train=False)
    try:
        return work(job, metas)
    finally:
        job.shutdown()


def best_of_n(job, metas: list[dict], n: int, prompts_per_call: int = 8) -> dict:
    """Per tag and overall: the oracle's score of each prompt's kept image; plus n."""
    by_tag = defaultdict(list)
    for start in range(0, len(metas), prompts_per_call):
        chunk = {m["prompt"]: m for m in metas[start: start + prompts_per_call]}
        parts = job.rollout(list(chunk), group_size=n)
        for batch, judged in zip(ray.get(parts), ray.get(job.judge(parts))):
            for i in pick_best(judged.rewards, n).tolist():
                meta = chunk[batch.prompts[i]]
                by_tag[meta["tag"]].append(evaluate(batch.images[i], meta).correct)
    return tag_table(by_tag) | {"n": n}


def milr(job, metas: list[dict], cfg) -> dict:
    """Chunks of prompts dealt round-robin to the rollout actors (each paired with an introspector that judges its
    searches); per tag and overall, the oracle's score of each prompt's found image, and the search's cost."""
    r, n = cfg.rollout, cfg.prompts_per_call
    chunks = [metas[i: i + n] for i in range(0, len(metas), n)]
    refs = [job.rollouts[k % len(job.rollouts)].milr.remote(
        [m["prompt"] for m in chunk], cfg.milr, job.introspectors[k % len(job.introspectors)], r.guidance,
        r.temperature) for k, chunk in enumerate(chunks)]
    by_tag, steps, early = defaultdict(list), [], []
    for chunk, found in zip(chunks, ray.get(refs)):
        for meta, f in zip(chunk, found):
            by_tag[meta["tag"]].append(evaluate(f.image, meta).correct)
            steps.append(f.steps)
            early.append(f.stopped_early)
    return tag_table(by_tag) | {"samples": sum(steps) * cfg.milr.samples, "mean_steps": sum(steps) / len(steps),
                                "stopped_early": sum(early) / len(early)}
