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
import sys
import time
from collections import Counter, deque
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import this checkout (e.g. the working dir `ray job submit` shipped)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import ray
from omegaconf import OmegaConf
from tqdm import trange

from launch.cli import UserError, parse_config, run_main
from launch.configs.meta_ttrl import MetaTTRLConfig
from launch.evaluate import load_adapter, load_prompts
from launch.report import read_metrics, reward_oracle_correlation, save_grid, write_report
from launch.rundir import RunDir
from launch.tracking import Tracker, wandb_mode


def check(cfg) -> None:
    load_adapter(cfg.model.path)  # a missing or broken checkpoint fails here, in one line
    if cfg.trainer.steps < 0:
        raise UserError(f"trainer.steps must be >= 0 (0: evaluate only), got {cfg.trainer.steps}")
    if cfg.rollout.group_size < 2:
        raise UserError(f"rollout.group_size must be >= 2 (GRPO compares candidates), got {cfg.rollout.group_size}")
    if cfg.rubric.source not in ("introspector", "metadata"):
        raise UserError(f"rubric.source {cfg.rubric.source!r} is not one of: introspector, metadata")
    if cfg.trainer.max_staleness < 0:
        raise UserError(f"trainer.max_staleness must be >= 0, got {cfg.trainer.max_staleness}")
    wandb_mode(cfg.run.wandb)
    if (cfg.data.prompts_per_step * cfg.rollout.group_size) % cfg.trainer.learners:
        raise UserError("prompts_per_step x group_size must divide evenly over trainer.learners")


def connect(address: str, cpus_needed: float) -> None:
    """Join the cluster a job was submitted to (RAY_ADDRESS; the runtime envs merge), or `address`, or start a
    local one."""
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    env = {"env_vars": {"GLOO_SOCKET_IFNAME": os.environ["GLOO_SOCKET_IFNAME"], "TOKENIZERS_PARALLELISM": "false"}}
    if ray.is_initialized():  # a caller (e.g. the test session) already holds a cluster
        return
    if address or os.environ.get("RAY_ADDRESS"):
        ray.init(address=address or None, runtime_env=env, log_to_driver=False)
    else:
        # address="local": a new cluster even if this machine runs another (or a stale pointer to one)
        ray.init(address="local", _node_ip_address="127.0.0.1", runtime_env=env, include_dashboard=False,
                 num_cpus=max(os.cpu_count() or 1, math.ceil(cpus_needed)), log_to_driver=False)


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
    tracker = Tracker(run, cfg.run, OmegaConf.to_container(cfg))
    job = MetaTTRLJob(cfg, {m["prompt"]: m for m in metas + heldout})
    try:
        summary = meta_ttrl(job, cfg, metas, heldout, tracker)
    finally:
        job.shutdown()
        tracker.close()
    print_table(summary)
    print(f"run directory: {run.path}\nreport: {run.path / 'report.html'}")


def meta_ttrl(job, cfg, metas: list[dict], heldout: list[dict], tracker: Tracker) -> dict:
    """Algorithm 1: until T steps or the reward converges: rubric -> sample G -> score -> GRPO step.
    Async mode keeps the rollouts (and scoring) of the next `max_staleness` steps in flight during an update."""
    t0, tr = time.time(), cfg.trainer
    grids = Grids(job, tracker.run.path, grid_prompts(metas, cfg.run.grid_prompts), cfg.run.grid_every)
    before = evaluate_splits(job, metas, heldout)
    grids.draw("before training")
    stream = PromptStream([m["prompt"] for m in metas], cfg.run.seed)
    ahead = tr.max_staleness if tr.async_mode else 0
    in_flight, rewards_seen = deque(), []  # submitted steps not yet trained on; mean reward per step done
    rubric = Counter({"written": 0, "retried": 0, "repaired": 0, "fallback": 0})  # rubric book events so far
    progress = trange(tr.steps, desc="meta-ttrl")
    for step in progress:
        t = time.time()
        while len(in_flight) <= ahead and step + len(in_flight) < tr.steps:
            parts = job.rollout(stream.next(cfg.data.prompts_per_step))  # sample G candidates per prompt
            # rubric (written once per prompt, cached) -> Eq. 5-6 rewards; the oracle is for metrics only
            in_flight.append((parts, job.judge(parts), job.oracle(parts)))
        parts, judgements, oracle = in_flight.popleft()
        stats = job.update(parts, judgements)  # GRPO (Eq. 7-8), then the weights to the rollout actors
        record = step_record(step, ray.get(judgements), ray.get(oracle), stats, rubric)
        rewards_seen.append(record["reward_mean"])
        tracker.log(record | {"step_s": time.time() - t})
        progress.set_postfix(reward=f"{record['reward_mean']:.3f}", oracle=f"{record['oracle']:.3f}")
        grids.after_step(step + 1)
        if converged(rewards_seen, tr.converge_window, tr.converge_tol):
            break
    job.save_policy(str(tracker.run.path / "final"))  # loadable by plain transformers (save_pretrained)
    grids.draw("after training")
    return finish(tracker, grids, before, evaluate_splits(job, metas, heldout), len(rewards_seen), time.time() - t0)


def step_record(step: int, judged: list, oracle: list, stats: dict, rubric: Counter) -> dict:
    """One metrics.jsonl line; `rubric` accumulates the rubric book's events over the run."""
    rewards = np.concatenate([j.rewards.numpy() for j in judged])
    for j in judged:
        rubric.update(j.rubric)
    return {"step": step, "reward_mean": float(rewards.mean()), "reward_std": float(rewards.std()),
            "oracle": float(np.mean(np.concatenate(oracle))), **stats, "rubric": dict(rubric)}


def finish(tracker: Tracker, grids: "Grids", before: dict, after: dict, steps: int, wall_s: float) -> dict:
    """summary.json (the issue's schema plus the per-step reward/oracle correlation) and report.html."""
    summary = {"before": before["test"], "after": after["test"], "steps": steps, "wall_s": wall_s}
    if "heldout" in before:
        summary |= {"heldout_before": before["heldout"], "heldout_after": after["heldout"]}
    corr = reward_oracle_correlation(read_metrics(tracker.run.path / "metrics.jsonl"))
    summary["reward_oracle_correlation"] = None if math.isnan(corr) else corr  # strict JSON has no NaN
    tracker.summary(summary)
    write_report(tracker.run.path, summary, grids.drawn, grids.prompts)
    return summary


def evaluate_splits(job, metas: list[dict], heldout: list[dict]) -> dict:
    return {"test": job.evaluate(metas), **({"heldout": job.evaluate(heldout)} if heldout else {})}


def grid_prompts(metas: list[dict], n: int) -> list[str]:
    """The first prompt of each tag, in the split's order, then further prompts until n."""
    firsts = list({m["tag"]: m["prompt"] for m in reversed(metas)}.values())[::-1]
    rest = [m["prompt"] for m in metas if m["prompt"] not in firsts]
    return (firsts + rest)[:n]


class Grids:
    """Image grids of fixed prompts with fixed noise, every `every` steps: rows are prompts, columns samples."""
    PER_PROMPT = 4

    def __init__(self, job, run_path, prompts: list[str], every: int):
        self.job, self.path, self.prompts, self.every = job, run_path / "grids", prompts, every
        self.drawn: list[tuple[str, str]] = []  # (label, file relative to the run directory)

    def draw(self, label: str) -> None:
        if not self.prompts:
            return
        images, version = self.job.grid(self.prompts, self.PER_PROMPT)
        name = f"grid_v{version:04d}.png"
        if self.drawn and self.drawn[-1][1].endswith(name):  # these weights are drawn already
            return
        save_grid(images, len(self.prompts), self.path / name)
        self.drawn.append((f"{label} (weights v{version})", f"grids/{name}"))

    def after_step(self, done: int) -> None:
        if self.every > 0 and done % self.every == 0:
            self.draw(f"after step {done}")


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
