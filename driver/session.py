"""One run of the Meta-TTRL job: its run directory, actors, prompt stream, progress, in-flight pipeline, recovery,
health guard, grids and tracker, behind the verbs Algorithm 1's loop calls (launch/meta_ttrl.py).

An actor that dies is restarted by Ray and brought up to date (driver/recovery.py): the verbs raise RedoStep when
the step must be redone from its prompts, RolledBack when a learner's death sent every actor back to a
checkpoint; the loop then carries on, after `roll_back` for the latter.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import ray
from omegaconf import OmegaConf
from tqdm import tqdm

import benchmarks
from actors.job import MetaTTRLJob
from benchmarks import results
from actors.placement import PlacementError
from driver.cli import UserError
from driver.cluster import connect, cpus_needed
from driver.grids import Grids, grid_prompts
from driver.offline import OfflinePipeline
from driver.pipeline import InFlight, Pipeline
from driver.progress import (Progress, PromptStream, check_holders, checkpoint_to_resume, converged,
                             step_record)
from driver.recovery import Recovery, RedoStep
from driver.inputs import JobPrompts
from driver.report import read_metrics, reward_eval_correlation, write_report
from driver.rundir import RunDir
from driver.tracking import Tracker
from learners import checkpoint
from rollout.health import Guard


class Session:
    def __init__(self, cfg, prompts: JobPrompts):
        """Run directory, cluster, actors, resume (when asked), tracker; every verb below acts on them."""
        self.cfg, self.prompts = cfg, prompts
        metas = prompts.train.records
        self.run = RunDir.create(cfg.run)
        resume_from = checkpoint_to_resume(cfg.run, self.run.path)
        self.run.save_config(cfg)
        connect(cfg.run.ray_address, cpus_needed(cfg))
        try:
            self.job = MetaTTRLJob(cfg, prompts.metadata(), evaluated=evaluated_benchmarks(cfg, prompts))
        except PlacementError as e:
            self.run.close()
            raise UserError(str(e)) from None
        self.tracker = None
        try:
            self.run.write_json("placement.json", self.job.placement())  # rewritten after every recovery
            self.stream = PromptStream([m["prompt"] for m in metas], cfg.run.seed)
            self.progress = self._resume(resume_from) if resume_from else self._start()
            self.tracker = Tracker(self.run, cfg.run, OmegaConf.to_container(cfg))
        except BaseException:
            self.close()
            raise
        tr, p = cfg.trainer, self.progress
        self.t0, self.t_step = time.time(), 0.0
        ahead = tr.max_staleness if tr.async_mode else 0
        self.pipeline = Pipeline(self.job, self.stream, cfg.data.prompts_per_step, ahead) if tr.regime == "online" \
            else OfflinePipeline(self.job, self.stream, [m["prompt"] for m in metas], cfg.data.prompts_per_step,
                                 self.run.path / "offline", cfg.run.seed)
        self.grids = Grids(self.job, self.run.path, grid_prompts(metas, cfg.run.grid_prompts), cfg.run.grid_every,
                           p.grids)
        self.recovery = Recovery(self.job, self.run, tr.max_recoveries, self._resume)
        limits = {k[len("max_"):]: v for k, v in cfg.guard.items() if k.startswith("max_")}
        self.guard = Guard(limits, cfg.guard.window, p.health)
        self.bar = None

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Actors and placement groups freed, the run directory's files closed (wandb finished)."""
        try:
            self.job.shutdown()
        finally:
            self.tracker.close() if self.tracker else self.run.close()

    # ---- the loop's verbs ----------------------------------------------------------------------------------
    def measure_before(self) -> None:
        """The benchmark's table before training (eval.final), the first grid and a step-0 checkpoint (what a learner that dies
        before the first periodic checkpoint rolls back to); a resumed run has them already."""
        if self.progress.before is None:
            self.progress.before = self.evaluate_splits("before")
            self.grids.draw("before training")
            self.save_checkpoint()
        self.bar = tqdm(total=self.cfg.trainer.steps, initial=self.progress.step, desc="meta-ttrl")

    def training(self) -> bool:
        """Steps left (T not reached) and the mean reward still rising (trainer.converge_window)."""
        return self.progress.step < self.cfg.trainer.steps and not self.progress.converged

    def next_step(self) -> InFlight:
        """The step to train on now: rollouts and their judging already submitted (ahead, in async mode)."""
        self.t_step = time.time()
        return self.pipeline.current(self.progress.step, self.cfg.trainer.steps)

    def update(self, flight: InFlight) -> dict:
        """GRPO (or SRUM) on the step's samples, then the weights to the rollouts; the step's stats. An actor's
        death first drops the work in flight (its results ignored) and redraws its prompts; a
        death during the sync leaves the applied step standing (the recovery re-syncs)."""
        try:
            stats = self.job.train(flight.parts, flight.judgements)
        except ray.exceptions.RayError as e:
            self.pipeline.drop(rewind=True)
            self.recovery.handle(e)
            raise RedoStep() from e
        self.pipeline.done()
        try:
            version, sync_s = self.job.sync()
        except ray.exceptions.RayError as e:
            self.pipeline.drop(rewind=True)  # later steps in flight may hold the dead actor's failed work
            self.recovery.handle(e)
            version, sync_s = self.recovery.synced
        return {**stats, "version": version, "sync_s": sync_s}

    def record(self, flight: InFlight, stats: dict) -> None:
        """The step's metrics line (tracker), the health guard (NaN rewards, flat groups, blank images, fallback
        rubrics: the run stops if too many), the convergence test."""
        p = self.progress
        rec = step_record(p.step, ray.get(flight.judgements), ray.get(flight.evaluated), stats, p.rubric)
        self.tracker.log(rec | {"restarts": dict(self.recovery.restarts), "step_s": time.time() - self.t_step})
        self.guard.check(rec["health"])
        p.rewards_seen.append(rec["reward_mean"])
        tr = self.cfg.trainer
        p.step, p.converged = p.step + 1, converged(p.rewards_seen, tr.converge_window, tr.converge_tol)
        p.health = list(self.guard.recent)
        self.bar.update(1)

    def after_step(self) -> None:
        """Grids and checkpoints when due; they call the actors too, so a death there is recovered the same way."""
        p, every = self.progress, self.cfg.run.checkpoint_every
        self.recovery.retry(lambda: self.grids.after_step(p.step))
        if p.converged or p.step == self.cfg.trainer.steps or (every and p.step % every == 0):
            self.recovery.idle_check()
            self.recovery.retry(self.save_checkpoint)

    def stop_training(self) -> None:
        """Nothing left in flight (after an early stop, rollouts no longer needed); a death found now is
        recovered (RolledBack for a learner) so that the final evaluation measures the trained weights."""
        self.pipeline.drop(rewind=False)
        self.recovery.idle_check()

    def roll_back(self, to: Progress) -> None:
        """Go on from a checkpoint's progress (the actors and the stream are restored already)."""
        self.progress, self.t0 = to, time.time()
        self.guard.recent, self.grids.drawn, self.bar.n = list(to.health), to.grids, to.step
        self.pipeline.drop(rewind=False)

    def measure_after(self) -> dict:
        """The trained policy saved loadable by plain transformers (save_pretrained), the last grid, the benchmark's
        table after (and its results files); summary.json and report.html. Returns the summary."""
        self.bar.close()
        self.job.save_policy(str(self.run.path / "final"))
        self.grids.draw("after training")
        before, after = self.progress.before, self.evaluate_splits("after")
        summary = {"benchmark": self.cfg.data.benchmark, "split": self.prompts.train.label,
                   "steps": len(self.progress.rewards_seen), "wall_s": self.progress.wall_s + time.time() - self.t0}
        summary |= summary_tables(self.prompts, before, after)
        corr = reward_eval_correlation(read_metrics(self.run.path / "metrics.jsonl"))
        summary["reward_eval_correlation"] = None if math.isnan(corr) else corr  # strict JSON has no NaN
        self.tracker.summary(summary)
        write_report(self.run.path, summary, self.grids.drawn, self.grids.prompts)
        return summary

    # ---- helpers ---------------------------------------------------------------------------------------------
    def evaluate_splits(self, phase: str = "before") -> dict:
        """Label -> table of every measured set (none when eval.final=false); each set's results files are
        written under eval/<phase>/<label>/ in the run directory."""
        if not self.cfg.eval.final:
            return {}
        tables = {}
        for measured in self.prompts.measured():
            bench = benchmarks.get(measured.benchmark)
            records, scored = self.job.evaluate(measured.records, measured.benchmark)
            folder = self.run.path / "eval" / phase / measured.key.replace(":", "_").replace("/", "_")
            results.write(bench, folder, records, scored, self.cfg.data.eval_samples)
            tables[measured.key] = results.table(bench, records, scored)
        return tables

    def save_checkpoint(self) -> None:
        p = self.progress
        self.job.save_checkpoint(self.run.path / "checkpoints", p.step,
                                 p.state(self.pipeline.resume_state(), time.time() - self.t0),
                                 self.cfg.run.keep_checkpoints)

    def _start(self) -> Progress:
        if self.cfg.run.resume:  # resume=auto found nothing valid: whatever a killed first session logged is redone
            print(f"no valid checkpoint under {self.run.path / 'checkpoints'}: starting at step 0", flush=True)
            self.run.truncate_metrics(0)
        return Progress()

    def _resume(self, path: Path) -> Progress:
        """Every actor and the driver back to the checkpoint; metrics.jsonl back to the steps it holds."""
        check_holders(path, list(self.job.holders()))
        self.job.restore(path)
        progress = Progress.from_state(checkpoint.read_state(path, "driver"), self.stream)
        dropped = self.run.truncate_metrics(progress.step)
        aside = checkpoint.set_aside_newer(path.parent, progress.step)
        print(f"resumed from {path} at step {progress.step} (dropped {dropped} metrics lines of later steps"
              f"{f'; newer checkpoints moved to {aside[0].parent}' if aside else ''})", flush=True)
        return progress



def evaluated_benchmarks(cfg, prompts: JobPrompts) -> tuple[str, ...]:
    """The benchmarks whose evaluators the job needs (its own when eval.every or eval.final; transfer ones)."""
    own = (cfg.data.benchmark,) if cfg.eval.every or cfg.eval.final else ()
    return tuple(dict.fromkeys(own + (tuple(t.benchmark for t in prompts.transfer) if cfg.eval.final else ())))


def summary_tables(prompts: JobPrompts, before: dict, after: dict) -> dict:
    """summary.json's tables: before/after on the trained split, heldout_before/_after, transfer[label]."""
    if not before:
        return {}
    out = {"before": before["test"], "after": after["test"]}
    if prompts.heldout:
        out |= {"heldout_before": before["heldout"], "heldout_after": after["heldout"]}
    if prompts.transfer:
        out["transfer"] = {t.key: {"before": before[t.key], "after": after[t.key]} for t in prompts.transfer}
    return out
