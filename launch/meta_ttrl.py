"""Meta-TTRL (arXiv 2603.15724) as a Ray job: the model improves its own image generation with rubrics it
writes and scores itself (Algorithm 1; equations in DESIGN.md §2).

    python launch/meta_ttrl.py [key=value ...]             # starts a local Ray cluster on 127.0.0.1
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python launch/meta_ttrl.py [key=value ...]
`--help` lists every key. Default: the embedded toy world (committed toy UMM, test split, CPU actors).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections import Counter
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import this checkout (e.g. the working dir `ray job submit` shipped)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

if not os.environ.get("RAY_ADDRESS") and not any(a.startswith("run.ray_address=") and a[16:] for a in sys.argv):
    # A local one-machine cluster binds to loopback; without this Ray maps 127.0.0.1 to the eth0 address.
    # Ray reads it at import, so it is set before `import ray`; a job joining a real cluster is left alone.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import numpy as np
import ray
import torch
from omegaconf import OmegaConf
from tqdm import tqdm

from launch.cli import UserError, parse_config, run_main
from launch.configs.meta_ttrl import MetaTTRLConfig
from launch.evaluate import load_adapter, load_prompts
from launch.report import read_metrics, reward_oracle_correlation, save_grid, write_report
from launch.progress import Pipeline, Progress, PromptStream, check_holders, checkpoint_to_resume
from launch.recovery import Recovery
from launch.rundir import RunDir
from launch.tracking import Tracker, wandb_mode
from learners import checkpoint
from models.adapter import resolve_dtype
from rewards.judges import JUDGES
from rollout.health import Guard
from rollout.health import add as add_health


ALGORITHMS = ("grpo", "srum")  # how the learner uses the rewards (actors/learner.py)
# (key, lowest valid value, why): integer and float settings with a floor
FLOORS = [("trainer.steps", 0, "0: evaluate only"), ("rollout.group_size", 2, "GRPO compares candidates"),
          ("trainer.max_staleness", 0, ""), ("trainer.learners", 1, ""), ("trainer.introspectors", 1, ""),
          ("rollout.actors", 1, ""), ("data.prompts_per_step", 1, ""), ("data.eval_samples", 1, ""),
          ("grpo.epochs", 1, ""), ("grpo.minibatch", 1, ""), ("run.checkpoint_every", 0, "0: only after the last step"),
          ("run.keep_checkpoints", 1, ""), ("guard.window", 1, "")]


def check(cfg):
    """Every user error in the config that can be seen before a cluster starts, as one line; returns the model
    adapter's structure (checked once here, weights unread, so a missing or broken checkpoint fails in one line;
    a 7B model is not loaded into the driver)."""
    adapter = load_adapter(cfg.model.path, device="meta", understanding=cfg.model.understanding_path)
    try:
        resolve_dtype(cfg.model.dtype, torch.device("cpu"))
    except ValueError as e:
        raise UserError(str(e)) from None
    for key, floor, why in FLOORS:
        value = OmegaConf.select(cfg, key)
        if value < floor:
            raise UserError(f"{key} must be >= {floor}{f' ({why})' if why else ''}, got {value}")
    for key, limit in cfg.guard.items():
        if key.startswith("max_") and not 0 <= limit <= 1:
            raise UserError(f"guard.{key} is a fraction in [0, 1], got {limit}")
    if cfg.sync.bucket_mb <= 0:
        raise UserError(f"sync.bucket_mb must be > 0, got {cfg.sync.bucket_mb}")
    check_reward(cfg)
    if getattr(adapter, "understanding", True) is None and own_understanding_needed(cfg.reward):
        raise UserError(f"{cfg.model.path} has no VLM (an SD3/FLUX pipeline) and reward.judge={cfg.reward.judge} "
                        f"asks the policy's own understanding: set model.understanding_path=<a Qwen2.5-VL directory>")
    if adapter.token_grid is None and cfg.reward.judge in ("srum", "gvu"):
        raise UserError(f"reward.judge={cfg.reward.judge} needs a token-based generator (the Janus adapter); "
                        f"{cfg.model.path} is a flow model: use rubric, vqa_rubric, oracle or server")
    check_strategy(cfg.trainer)
    if cfg.rubric.source not in ("introspector", "metadata"):
        raise UserError(f"rubric.source {cfg.rubric.source!r} is not one of: introspector, metadata")
    wandb_mode(cfg.run.wandb)
    if (cfg.data.prompts_per_step * cfg.rollout.group_size) % cfg.trainer.learners:
        raise UserError("prompts_per_step x group_size must divide evenly over trainer.learners")
    # Ray sets RAY_JOB_CONFIG_JSON_ENV_VAR in the driver of a submitted job
    if os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") and not Path(cfg.run.dir or cfg.run.root).is_absolute():
        raise UserError("a submitted Ray job runs in a temporary copy of the working dir: give an absolute "
                        "run.root (or run.dir) on storage that outlives the job, e.g. run.root=/shared/runs")
    return adapter


def own_understanding_needed(r) -> bool:
    """Whether the judge writes or answers rubrics with the policy's own (frozen) understanding."""
    return r.judge not in ("oracle", "server") and not r.model_path and r.backend != "vllm"


def check_reward(cfg) -> None:
    """The judge and the update that uses it; external models are loaded once here to fail in one line."""
    r = cfg.reward
    if r.judge not in JUDGES:
        raise UserError(f"reward.judge {r.judge!r} is not one of: {', '.join(JUDGES)}")
    if cfg.trainer.algorithm not in ALGORITHMS:
        raise UserError(f"trainer.algorithm {cfg.trainer.algorithm!r} is not one of: {', '.join(ALGORITHMS)}")
    if cfg.trainer.algorithm == "srum" and r.judge != "srum":
        raise UserError("trainer.algorithm=srum trains on reward maps: it needs reward.judge=srum")
    if r.backend not in ("transformers", "vllm"):
        raise UserError(f"reward.backend {r.backend!r} is not one of: transformers, vllm")
    if r.backend == "vllm":
        check_vllm(r)
    elif r.model_path:
        load_adapter(r.model_path, device="meta")
    if r.judge == "vqa_rubric":
        from models.git import GitVQA
        if not r.vqa_path:
            raise UserError("reward.judge=vqa_rubric needs reward.vqa_path: a GIT model directory")
        try:
            GitVQA.from_pretrained(r.vqa_path)
        except Exception as e:  # the user's directory: any failure to read it is theirs
            raise UserError(f"reward.vqa_path {r.vqa_path!r} could not be loaded as a GIT model "
                            f"({type(e).__name__}: {(str(e).splitlines() or [''])[0]})") from None
    if r.judge == "server" and not r.server.startswith(("tcp://", "ipc://")):
        raise UserError(f"reward.judge=server needs reward.server=tcp://host:port, got {r.server!r}")


def check_strategy(tr) -> None:
    from learners.optim import STRATEGIES
    if tr.strategy not in STRATEGIES:
        raise UserError(f"trainer.strategy {tr.strategy!r} is not one of: {', '.join(STRATEGIES)}")
    if tr.strategy == "deepspeed":
        from learners.deepspeed_optim import ZERO_STAGES, ds_config, require_deepspeed
        if tr.zero_stage not in ZERO_STAGES:
            raise UserError(f"trainer.zero_stage must be one of {ZERO_STAGES}, got {tr.zero_stage}")
        try:
            ds_config(1.0, tr.zero_stage, torch.float32,
                      OmegaConf.to_container(tr.deepspeed))
        except ValueError as e:
            raise UserError(str(e)) from None
        try:
            require_deepspeed()
        except RuntimeError as e:
            raise UserError(str(e)) from None


def check_vllm(r) -> None:
    from models.vllm_introspector import VLLMUnavailable, require_vllm
    if r.judge not in ("rubric", "srum"):
        raise UserError(f"reward.backend=vllm writes and answers rubrics: it serves reward.judge=rubric or srum, "
                        f"not {r.judge}")
    if not r.model_path:
        raise UserError("reward.backend=vllm needs reward.model_path: a VLM directory vLLM serves (e.g. Qwen2.5-VL)")
    try:
        require_vllm(need_gpu=False)  # the driver may have no GPU; the introspector's actor checks for one
    except VLLMUnavailable as e:
        raise UserError(str(e)) from None


def check_prompts(adapter, metas: list[dict], where: str, max_new_tokens: int) -> None:
    """Every prompt must fit the model's context in each of its uses (image, rubric, fallback question)."""
    from rewards.rubric import SCHEMA_INSTRUCTION
    if getattr(adapter, "understanding", True) is None:
        return  # an SD3/FLUX pipeline judged by another model: no rubric passes through the policy's context
    for n, meta in enumerate(metas, start=1):
        needed = adapter.positions_needed(meta["prompt"], SCHEMA_INSTRUCTION, max_new_tokens)
        if needed > adapter.max_positions:
            raise UserError(f"{where}: prompt {n} ({meta['prompt'][:40]!r}...) needs {needed} sequence positions, "
                            f"the model has {adapter.max_positions}: shorten it (or lower rubric.max_new_tokens)")


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


def main(argv: list[str]) -> None:
    from actors.job import MetaTTRLJob  # after the config is checked: Ray actors import torch models
    from actors.placement import PlacementError

    cfg = load_config(argv)
    adapter = check(cfg)
    metas = load_prompts(cfg.data.split)
    heldout = load_prompts(cfg.data.heldout) if cfg.data.heldout else []
    check_prompts(adapter, metas, cfg.data.split, cfg.rubric.max_new_tokens)
    check_prompts(adapter, heldout, str(cfg.data.heldout), cfg.rubric.max_new_tokens)
    del adapter
    run = RunDir.create(cfg.run)
    resume_from = checkpoint_to_resume(cfg.run, run.path)
    run.save_config(cfg)
    res = cfg.resources
    connect(cfg.run.ray_address, cfg.rollout.actors * res.rollout.num_cpus + cfg.trainer.learners *
            res.learner.num_cpus + cfg.trainer.introspectors * res.introspector.num_cpus)
    try:
        job = MetaTTRLJob(cfg, {m["prompt"]: m for m in metas + heldout})
    except PlacementError as e:
        run.close()
        raise UserError(str(e)) from None
    tracker = None
    try:
        stream = PromptStream([m["prompt"] for m in metas], cfg.run.seed)
        progress = resume(job, run, resume_from, stream) if resume_from else start(run, cfg.run.resume)
        tracker = Tracker(run, cfg.run, OmegaConf.to_container(cfg))
        summary = meta_ttrl(job, cfg, metas, heldout, tracker, stream, progress)
    finally:
        try:
            job.shutdown()
        finally:
            tracker.close() if tracker else run.close()
    print_table(summary)
    print(f"run directory: {run.path.resolve()}\nreport: {run.path.resolve() / 'report.html'}")


def load_config(argv: list[str]):
    """The command line's config; a resumed run starts from the config it saved, the command line on top."""
    cfg = parse_config(MetaTTRLConfig, argv, "launch/meta_ttrl.py", __doc__)
    if cfg.run.resume and not cfg.run.dir:
        raise UserError("run.resume needs run.dir: the directory of the run to continue")
    saved = Path(cfg.run.dir) / "config.yaml" if cfg.run.resume else None
    return parse_config(MetaTTRLConfig, argv, "", saved=str(saved)) if saved and saved.is_file() else cfg


def resume(job, run: RunDir, path: Path, stream: PromptStream) -> Progress:
    """Every actor and the driver back to the checkpoint; metrics.jsonl back to the steps it holds."""
    check_holders(path, list(job.holders()))
    job.restore(path)
    progress = Progress.from_state(checkpoint.read_state(path, "driver"), stream)
    dropped = run.truncate_metrics(progress.step)
    aside = checkpoint.set_aside_newer(path.parent, progress.step)
    print(f"resumed from {path} at step {progress.step} (dropped {dropped} metrics lines of later steps"
          f"{f'; newer checkpoints moved to {aside[0].parent}' if aside else ''})", flush=True)
    return progress


def start(run: RunDir, resume_setting: str) -> Progress:
    if resume_setting:  # resume=auto found nothing valid: whatever a killed first session logged is redone
        print(f"no valid checkpoint under {run.path / 'checkpoints'}: starting at step 0", flush=True)
        run.truncate_metrics(0)
    return Progress()


def meta_ttrl(job, cfg, metas: list[dict], heldout: list[dict], tracker: Tracker, stream: PromptStream,
              progress: Progress) -> dict:
    """Algorithm 1: until T steps or the reward converges: rubric -> sample G -> score -> GRPO step.
    Async mode keeps the rollouts (and scoring) of the next `max_staleness` steps in flight during an update.
    An actor that dies is restarted and brought up to date, and its step redone (launch/recovery.py)."""
    t0, tr, p, run = time.time(), cfg.trainer, progress, tracker.run
    grids = Grids(job, run.path, grid_prompts(metas, cfg.run.grid_prompts), cfg.run.grid_every, p.grids)

    def save_checkpoint():
        job.save_checkpoint(run.path / "checkpoints", p.step, p.state(pipeline.resume_state(), time.time() - t0),
                            cfg.run.keep_checkpoints)

    pipeline = Pipeline(job, stream, cfg.data.prompts_per_step, tr.max_staleness if tr.async_mode else 0)
    if p.before is None:
        p.before = evaluate_splits(job, metas, heldout)
        grids.draw("before training")
        save_checkpoint()  # step 0: what a learner that dies before the first periodic checkpoint rolls back to
    recovery = Recovery(job, run, tr.max_recoveries, lambda path: resume(job, run, path, stream))
    guard = Guard({k[len("max_"):]: v for k, v in cfg.guard.items() if k.startswith("max_")}, cfg.guard.window,
                  p.health)
    bar = tqdm(total=tr.steps, initial=p.step, desc="meta-ttrl")

    def roll_back(to: Progress) -> None:  # a learner died: go on from the checkpoint's progress
        nonlocal p, t0
        p, t0, guard.recent, grids.drawn, bar.n = to, time.time(), list(to.health), to.grids, to.step

    while True:
        while p.step < tr.steps and not p.converged:
            t, flight = time.time(), pipeline.current(p.step, tr.steps)
            outcome = train_and_sync(job, pipeline, recovery)  # GRPO (Eq. 7-8), then the weights to the rollouts
            if not isinstance(outcome, dict):  # an actor died: redo this step, or go on from a rolled-back one
                if outcome is not None:
                    roll_back(outcome)
                continue
            record = step_record(p.step, ray.get(flight.judgements), ray.get(flight.oracle), outcome, p.rubric)
            tracker.log(record | {"restarts": dict(recovery.restarts), "step_s": time.time() - t})
            guard.check(record["health"])  # NaN rewards, flat groups, blank images, fallback rubrics: stop if many
            p.rewards_seen.append(record["reward_mean"])
            p.step, p.converged = p.step + 1, converged(p.rewards_seen, tr.converge_window, tr.converge_tol)
            p.health = list(guard.recent)
            bar.update(1)
            # grids and checkpoints call the actors too: a death there is recovered like one during a step
            rolled_back = with_recovery(lambda: grids.after_step(p.step), recovery)
            if rolled_back is None and (p.converged or p.step == tr.steps or (
                    cfg.run.checkpoint_every and p.step % cfg.run.checkpoint_every == 0)):
                rolled_back = recovery.idle_check() or with_recovery(save_checkpoint, recovery)
            if rolled_back is not None:
                roll_back(rolled_back)
                pipeline.drop(rewind=False)
        pipeline.drop(rewind=False)  # after an early stop: rollouts no longer needed
        rolled_back = recovery.idle_check()  # the final evaluation must measure the trained weights
        if rolled_back is None:
            break
        roll_back(rolled_back)
    bar.close()
    job.save_policy(str(run.path / "final"))  # loadable by plain transformers (save_pretrained)
    grids.draw("after training")
    after = evaluate_splits(job, metas, heldout)
    return finish(tracker, grids, p.before, after, len(p.rewards_seen), p.wall_s + time.time() - t0)


def with_recovery(action, recovery: Recovery, tries: int = 3) -> Progress | None:
    """Run `action` (a call on the actors); an actor that dies during it is brought back and the action redone.
    Returns the restored progress if a learner's death rolled the run back instead."""
    for _ in range(tries):
        try:
            action()
            return None
        except ray.exceptions.RayError as e:
            rolled_back = recovery.handle(e)
            if rolled_back is not None:
                return rolled_back
    raise RuntimeError(f"giving up after {tries} tries: actors keep dying during {action}")


def train_and_sync(job, pipeline: Pipeline, recovery: Recovery) -> dict | Progress | None:
    """The current step's update and weight sync: its stats, or what `recovery` made of an actor's death (a step
    the learner did not apply is redone: None; a learner's death rolls back: the restored Progress). A death
    during the sync leaves the applied step standing: the recovery re-syncs. Either way the work still in flight
    is cancelled first (the survivors must be free to answer) and its prompts are drawn again."""
    flight = pipeline.queue[0]
    try:
        stats = job.train(flight.parts, flight.judgements)
    except ray.exceptions.RayError as e:
        pipeline.drop(rewind=True)
        return recovery.handle(e)
    pipeline.done()
    try:
        version, sync_s = job.sync()
    except ray.exceptions.RayError as e:
        pipeline.drop(rewind=True)  # later steps in flight may hold the dead actor's failed work
        restored = recovery.handle(e)
        if restored is not None:
            return restored
        version, sync_s = recovery.synced
    return {**stats, "version": version, "sync_s": sync_s}


def step_record(step: int, judged: list, oracle: list, stats: dict, rubric: Counter) -> dict:
    """One metrics.jsonl line; `rubric` accumulates the rubric book's events over the run."""
    rewards = np.concatenate([j.rewards.numpy() for j in judged])
    health: dict[str, int] = {}
    for j in judged:
        rubric.update(j.rubric)
        health = add_health(health, j.health)
    finite = rewards[np.isfinite(rewards)]  # NaN/inf are counted in health, not averaged in
    mean, std = (float(finite.mean()), float(finite.std())) if finite.size else (float("nan"), float("nan"))
    return {"step": step, "reward_mean": mean, "reward_std": std, "oracle": float(np.mean(np.concatenate(oracle))),
            **stats, "rubric": dict(rubric), "health": health}


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

    def __init__(self, job, run_path, prompts: list[str], every: int, drawn: list[tuple[str, str]]):
        self.job, self.path, self.prompts, self.every = job, run_path / "grids", prompts, every
        self.drawn = drawn  # (label, file relative to the run directory); a resumed run's list goes on

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
