"""Meta-TTRL (arXiv 2603.15724) as a Ray job: the model improves its own image generation with rubrics it
writes and scores itself (Algorithm 1; equations in DESIGN.md §2).

    python launch/meta_ttrl.py [key=value ...]             # starts a local Ray cluster on 127.0.0.1
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python launch/meta_ttrl.py [key=value ...]
`--help` lists every key. Default: the embedded toy world (committed toy UMM, test split, CPU actors).
"""

from __future__ import annotations

import math
import os
import random
import time

import numpy as np
import ray
from tqdm import trange

from launch.cli import UserError, parse_config, run_main
from launch.configs.meta_ttrl import MetaTTRLConfig
from launch.evaluate import load_adapter, load_prompts
from launch.rundir import RunDir


def check(cfg) -> None:
    load_adapter(cfg.model.path)  # a missing or broken checkpoint fails here, in one line
    if cfg.trainer.steps < 0:
        raise UserError(f"trainer.steps must be >= 0 (0: evaluate only), got {cfg.trainer.steps}")
    if cfg.rollout.group_size < 2:
        raise UserError(f"rollout.group_size must be >= 2 (GRPO compares candidates), got {cfg.rollout.group_size}")
    if cfg.rubric.source not in ("introspector", "metadata"):
        raise UserError(f"rubric.source {cfg.rubric.source!r} is not one of: introspector, metadata")
    if cfg.trainer.async_mode:
        raise UserError("trainer.async_mode=true is not available yet; use trainer.async_mode=false")
    if (cfg.data.prompts_per_step * cfg.rollout.group_size) % cfg.trainer.learners:
        raise UserError("prompts_per_step x group_size must divide evenly over trainer.learners")


def connect(address: str, cpus_needed: float) -> None:
    """Join the cluster a job was submitted to (RAY_ADDRESS), or `address`, or start a local one."""
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    env = {"env_vars": {"GLOO_SOCKET_IFNAME": os.environ["GLOO_SOCKET_IFNAME"], "TOKENIZERS_PARALLELISM": "false"}}
    if ray.is_initialized():  # a caller (e.g. the test session) already holds a cluster
        return
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address or None, runtime_env=env, log_to_driver=False)
    else:
        ray.init(_node_ip_address="127.0.0.1", num_cpus=max(os.cpu_count() or 1, math.ceil(cpus_needed)),
                 runtime_env=env, include_dashboard=False, log_to_driver=False)


class PromptStream:
    """Prompts in a seeded order, reshuffled every epoch; `position` is what a checkpoint stores."""

    def __init__(self, prompts: list[str], seed: int):
        self.prompts, self.rng, self.order, self.position = prompts, random.Random(seed), [], 0

    def next(self, n: int) -> list[str]:
        out = []
        while len(out) < n:
            if not self.order:
                self.order = self.rng.sample(self.prompts, len(self.prompts))
            out.append(self.order.pop())
            self.position += 1
        return out


def main(argv: list[str]) -> None:
    from actors.job import MetaTTRLJob  # after the config is checked: Ray actors import torch models

    cfg = parse_config(MetaTTRLConfig, argv, "launch/meta_ttrl.py", __doc__)
    check(cfg)
    metas = load_prompts(cfg.data.split)
    heldout = load_prompts(cfg.data.heldout) if cfg.data.heldout else []
    run = RunDir.create(cfg.run)
    run.save_config(cfg)
    res = cfg.resources
    connect(cfg.run.ray_address, cfg.rollout.actors * res.rollout.num_cpus + cfg.trainer.learners *
            res.learner.num_cpus + cfg.trainer.introspectors * res.introspector.num_cpus)
    job = MetaTTRLJob(cfg, {m["prompt"]: m for m in metas + heldout})
    try:
        summary = meta_ttrl(job, cfg, metas, heldout, run)
    finally:
        job.shutdown()
        run.close()
    print_table(summary)
    print(f"run directory: {run.path}")


def meta_ttrl(job, cfg, metas: list[dict], heldout: list[dict], run: RunDir) -> dict:
    """Algorithm 1: until T steps or the reward converges: rubric -> sample G -> score -> GRPO step."""
    t0 = time.time()
    before = {"test": job.evaluate(metas), **({"heldout": job.evaluate(heldout)} if heldout else {})}
    stream = PromptStream([m["prompt"] for m in metas], cfg.run.seed)
    rewards_seen = []  # one mean reward per step done
    for step in trange(cfg.trainer.steps, desc="meta-ttrl"):
        t = time.time()
        prompts = stream.next(cfg.data.prompts_per_step)
        parts = job.rollout(prompts)              # sample G candidates per prompt
        judgements = job.judge(parts)             # rubric (written once, cached) -> Eq. 5-6 rewards, reference
        oracle = job.oracle(parts)                # metrics only: the oracle never reaches the policy
        stats = job.update(parts, judgements)     # GRPO (Eq. 7-8), then weights to the rollout actors
        rewards = np.concatenate([j.rewards.numpy() for j in ray.get(judgements)])
        rewards_seen.append(float(rewards.mean()))
        run.log({"step": step, "reward_mean": rewards_seen[-1], "reward_std": float(rewards.std()),
                 "oracle": float(np.mean(np.concatenate(ray.get(oracle)))), "step_s": time.time() - t,
                 "rubric": job.rubric_counts(), **stats})
        if converged(rewards_seen, cfg.trainer.converge_window, cfg.trainer.converge_tol):
            break
    job.save_policy(str(run.path / "final"))  # loadable by plain transformers (save_pretrained)
    after = {"test": job.evaluate(metas), **({"heldout": job.evaluate(heldout)} if heldout else {})}
    summary = {"before": before["test"], "after": after["test"], "steps": len(rewards_seen), "wall_s": time.time() - t0}
    if heldout:
        summary |= {"heldout_before": before["heldout"], "heldout_after": after["heldout"]}
    run.write_json("summary.json", summary)
    return summary


def converged(history: list[float], window: int, tol: float) -> bool:
    """The mean reward of the last `window` steps rose by less than `tol` over the window before it."""
    if window <= 0 or len(history) < 2 * window:
        return False
    return np.mean(history[-window:]) - np.mean(history[-2 * window: -window]) < tol


def print_table(summary: dict) -> None:
    rows = [("test", summary["before"], summary["after"])]
    if "heldout_before" in summary:
        rows.append(("heldout", summary["heldout_before"], summary["heldout_after"]))
    print(f"\n{'split':<9}{'tag':<15}{'before':>8}{'after':>8}")
    for split, b, a in rows:
        for tag in b["per_tag"]:
            print(f"{split:<9}{tag:<15}{b['per_tag'][tag]:>8.3f}{a['per_tag'].get(tag, float('nan')):>8.3f}")
        print(f"{split:<9}{'overall':<15}{b['overall']:>8.3f}{a['overall']:>8.3f}")


if __name__ == "__main__":
    run_main(main)
