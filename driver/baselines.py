"""The methods without a weight update, on a job of rollouts and introspectors only (no learner): Best-of-N
(N candidates per prompt, the judge's favourite kept) and MILR (latent search per prompt, rollout/milr.py). The
kept images are scored by the benchmark's own evaluator (data.benchmark; actors/evaluator.py)."""

from __future__ import annotations

import ray
from omegaconf import OmegaConf

import benchmarks
from actors.job import MetaTTRLJob
from benchmarks import results
from driver.cli import UserError
from driver.cluster import connect, cpus_needed
from driver.inputs import EvalSet, load_prompts
from driver.preflight import check_evaluation, check_job, check_prompts
from rollout.best_of_n import pick_best


def without_training(cfg, work, policy_needs: tuple[str, ...] = (), method: str = "") -> dict:
    """Run `work(job, metas)` over the prompts of `cfg.data.split` (the first `data.eval_max_prompts` if set);
    the actors go away after. `policy_needs`: capabilities the method needs of the policy (models/adapter.py)."""
    policy = check_job(cfg, policy_needs, method)
    d = cfg.data
    metas = load_prompts(d.benchmark, d.split)
    metas = metas[: d.eval_max_prompts] if d.eval_max_prompts > 0 else metas
    if not cfg.eval.final:
        raise UserError(f"{method or 'this method'} reports the evaluator's score of the kept images: it needs "
                        f"eval.final=true")
    check_evaluation(cfg.eval, EvalSet(d.split, d.benchmark, metas))
    check_prompts(policy, metas, d.split or d.benchmark, cfg.rubric.max_new_tokens)
    connect(cfg.run.ray_address, cpus_needed(cfg, train=False))
    job = MetaTTRLJob(cfg, {m["prompt"]: m for m in metas}, train=False, evaluated=(d.benchmark,))
    try:
        return work(job, metas)
    finally:
        job.shutdown()


def kept_table(job, images: list, records: list[dict]) -> dict:
    """The benchmark's table of the kept images (one per prompt)."""
    name = job.cfg.data.benchmark
    scored = ray.get(job.evaluators.score(name, images, records))
    return results.table(benchmarks.get(name), records, scored)


def best_of_n(job, metas: list[dict], n: int, prompts_per_call: int = 8) -> dict:
    """Per category and overall: the evaluator's score of each prompt's kept image; plus n."""
    kept, records = [], []
    for start in range(0, len(metas), prompts_per_call):
        chunk = {m["prompt"]: m for m in metas[start: start + prompts_per_call]}
        parts = job.rollout(list(chunk), group_size=n)
        for batch, judged in zip(ray.get(parts), ray.get(job.judge(parts))):
            for i in pick_best(judged.rewards, n).tolist():
                kept.append(batch.images[i])
                records.append(chunk[batch.prompts[i]])
    return kept_table(job, kept, records) | {"n": n}


def milr(job, metas: list[dict], cfg) -> dict:
    """Chunks of prompts dealt round-robin to the rollout actors (each paired with an introspector that judges its
    searches); per category and overall, the evaluator's score of each prompt's found image, and the search's cost."""
    r, n = cfg.rollout, cfg.prompts_per_call
    settings = OmegaConf.to_object(cfg.milr).resolved()  # the variant's values for what the command left unset
    chunks = [metas[i: i + n] for i in range(0, len(metas), n)]
    refs = [job.rollouts[k % len(job.rollouts)].milr.remote(
        [m["prompt"] for m in chunk], settings, job.introspectors[k % len(job.introspectors)], r.guidance,
        r.temperature) for k, chunk in enumerate(chunks)]
    kept, records, steps, early = [], [], [], []
    for chunk, found in zip(chunks, ray.get(refs)):
        for meta, f in zip(chunk, found):
            kept.append(f.image)
            records.append(meta)
            steps.append(f.steps)
            early.append(f.stopped_early)
    return kept_table(job, kept, records) | {"samples": sum(steps) * settings.samples,
                                             "mean_steps": sum(steps) / len(steps),
                                             "stopped_early": sum(early) / len(early)}
