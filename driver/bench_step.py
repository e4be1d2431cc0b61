"""The default job's step, old commit vs this checkout, side by side (`make bench`, section `step`).

Each run is the real job (`launch/meta_ttrl.py`, the embedded default, `trainer.steps` short, no before/after
evaluation) in its own process and local cluster; the baseline runs from a `git worktree` of the given commit with
the same interpreter, so only the code differs. Reported: mean seconds per step and per stage over the steps
after the first two (the first writes rubrics and warms caches).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGES = ("step_s", "rollout_s", "judge_s", "train_s", "sync_s")


def timed_job(checkout: Path, root: Path, name: str, overrides: list[str]) -> float:
    """Wall seconds of the job as `checkout` runs it (its packages first on the path, also in the Ray workers,
    which inherit PYTHONPATH)."""
    env = dict(os.environ, PYTHONPATH=str(checkout))
    cmd = [sys.executable, str(checkout / "launch" / "meta_ttrl.py"), f"run.dir={root / name}", "run.wandb=disabled",
           *overrides]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{name}: the job failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return time.perf_counter() - t0


def run_job(checkout: Path, root: Path, name: str, steps: int, overrides: list[str]) -> dict:
    """Mean stage times of `steps` steps of the job as `checkout` runs it."""
    timed_job(checkout, root, name, [f"trainer.steps={steps}", "eval.final=false", *overrides])
    lines = [json.loads(x) for x in (root / name / "metrics.jsonl").read_text().splitlines()][2:]
    if not lines:
        raise RuntimeError(f"{name}: fewer than 3 steps ran; ask for more steps")
    return {k: sum(m[k] for m in lines) / len(lines) for k in STAGES} | {
        "rewards": [round(m["reward_mean"], 4) for m in lines[:3]]}


def worktree(repo: Path, commit: str, where: Path) -> Path:
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", str(where), commit], check=True,
                   capture_output=True)
    return where


EVALUATE_ONLY = ["trainer.steps=0", "data.heldout="]  # the test split's table before and after, no step


def step_rows(repo: Path, baseline: str, steps: int) -> tuple[list[dict], list[dict]]:
    """Step rows: baseline (async), this checkout (async), this checkout on-policy, each with its ratio to the
    baseline's step; evaluation rows: the wall time of an evaluate-only job (start-up and two evaluations of the
    `test` split, 1160 images each), baseline vs this checkout."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old_tree = worktree(repo, baseline, tmp / "baseline")
        try:
            old = run_job(old_tree, tmp, "old", steps, [])
            old_eval = timed_job(old_tree, tmp, "old_eval", EVALUATE_ONLY)
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(old_tree)],
                           capture_output=True)
        new = run_job(repo, tmp, "new", steps, [])
        on_policy = run_job(repo, tmp, "new_on_policy", steps, ["trainer.async_mode=false"])
        new_eval = timed_job(repo, tmp, "new_eval", EVALUATE_ONLY)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    rows = [(f"baseline {baseline} (async)", old), (f"this checkout {head} (async)", new),
            (f"this checkout {head} (on-policy)", on_policy)]
    evals = [{"run": f"baseline {baseline}", "wall_s": old_eval, "x_baseline": 1.0},
             {"run": f"this checkout {head}", "wall_s": new_eval, "x_baseline": old_eval / new_eval}]
    return [{"run": name, **r, "x_baseline": old["step_s"] / r["step_s"]} for name, r in rows], evals
