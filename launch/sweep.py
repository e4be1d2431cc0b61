"""Methods x seeds at one sample budget on the toy world: every cell a normal run, one table of mean, std and 95%
interval over seeds (overall and per tag, on `test` and `heldout`) and one figure of the per-seed curves.

    python launch/sweep.py [out=docs/results/sweep] [methods=meta_ttrl,random,...] [seeds=0,1,2] [steps=100]
                           [vqa_path=models/toy_git] [external=<dir>] [key=value ...]  # job keys: every cell

Methods: vanilla (the untrained policy: the "before" of each seed's trained cells), best_of_n and milr (no
training, budget-matched as in launch/compare.py), the trained methods of compare (meta_ttrl, gvu, srum,
vqa_rubric, e_ttrl, oracle_grpo) and the reward controls: random (uniform rewards), shuffled (each group scored
with another group's rubric rewards), and metadata_rubric (Meta-TTRL on rubrics built from the prompt's
metadata, not written by the model). `methods=` defaults to every method that can run.

A cell is <out>/<method>/seed<k>/: a trained method's run directory, plus cell.json once it has finished. The
same command again skips the finished cells and resumes an interrupted trained cell from its newest checkpoint
(run.resume=auto); a cell measured with other settings is refused, never overwritten. `run.seed` = k drives
every stream of the cell: prompt order, rollout sampling, the learner's and the introspector's RNG.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import driver  # noqa: F401  (first: a local Ray cluster binds loopback, which must precede `import ray`)
from driver import aggregate
from driver import methods as family
from driver.cli import UserError, parse_config, run_main
from driver.cluster import connect, cpus_needed
from driver.inputs import load_prompts
from driver.report import read_metrics
from launch.configs.meta_ttrl import MetaTTRLConfig

TRAINED = family.TRAINED | family.CONTROLS
UNTRAINED = ("best_of_n", "milr")
METHODS = UNTRAINED + tuple(TRAINED)
OWN = {"out": "docs/results/sweep", "methods": "", "seeds": "0,1,2", "steps": "100", "vqa_path": "",
       "external": ""}


def split_args(argv: list[str]) -> tuple[dict, list[str]]:
    own, rest = dict(OWN), []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if key in own and sep:
            own[key] = value
        else:
            rest.append(arg)
    return own, rest


def chosen(own: dict) -> tuple[list[str], list[int], dict]:
    """The methods and seeds asked for, and the methods that cannot run (the argument each one needs)."""
    skipped = {m: f"needs {arg}=<dir>" for m, arg in family.NEEDS.items() if not own[arg]}
    asked = [m.strip() for m in own["methods"].split(",") if m.strip()] or [m for m in METHODS if m not in skipped]
    unknown = [m for m in asked if m not in METHODS]
    if unknown:
        raise UserError(f"methods: {', '.join(unknown)} not among {', '.join(METHODS)}")
    try:
        seeds = [int(s) for s in own["seeds"].split(",") if s.strip()]
    except ValueError:
        raise UserError(f"seeds must be integers separated by commas, got {own['seeds']!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise UserError(f"seeds must be distinct integers, got {own['seeds']!r}")
    return [m for m in asked if m not in skipped], seeds, {m: w for m, w in skipped.items() if m in asked}


class Cell:
    """One (method, seed): its directory, its settings (spec.json, written when it starts) and its result
    (cell.json, written when it has finished)."""

    def __init__(self, out: Path, method: str, seed: int, spec: dict):
        self.method, self.seed, self.dir = method, seed, out / method / f"seed{seed}"
        self.spec = spec | {"method": method, "seed": seed}

    def _check(self, name: str) -> dict | None:
        path = self.dir / name
        if not path.is_file():
            return None
        saved = json.loads(path.read_text())
        if saved.get("spec", saved) != self.spec:
            raise UserError(f"{path} was measured with other settings ({saved.get('spec', saved)}); this sweep asks "
                            f"for {self.spec}: choose another out=")
        return saved

    def finished(self) -> dict | None:
        return self._check("cell.json")

    def start(self) -> bool:
        """Mark the cell started; True when an earlier sweep had started it (a trained cell then resumes)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        begun = self._check("spec.json") is not None
        (self.dir / "spec.json").write_text(json.dumps(self.spec, indent=1))
        return begun

    def finish(self, result: dict) -> dict:
        cell = {"spec": self.spec, "seed": self.seed} | result
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / ".cell.json.tmp"
        tmp.write_text(json.dumps(cell, indent=1))
        tmp.replace(self.dir / "cell.json")  # atomic: a killed sweep never leaves half a result
        return cell


def run_trained(cell: Cell, job: list[str], own: dict, resume: bool) -> dict:
    from launch.meta_ttrl import main as meta_ttrl

    t0 = time.time()
    argv = job + [o.format(**own) for o in TRAINED[cell.method]] + [
        f"run.dir={cell.dir}", f"run.seed={cell.seed}", "run.wandb=disabled"] + (["run.resume=auto"] if resume else [])
    meta_ttrl(argv)
    s = json.loads((cell.dir / "summary.json").read_text())
    return {"test": s["after"], "heldout": s.get("heldout_after"), "before": s["before"],
            "heldout_before": s.get("heldout_before"), "correlation": s.get("reward_eval_correlation"),
            "steps_run": s["steps"], "wall_s": time.time() - t0}


def run_untrained(cell: Cell, job: list[str], budget: int) -> dict:
    from launch.best_of_n import run as best_of_n
    from launch.milr import run as milr

    n_prompts = len(load_prompts("toyworld", "test"))
    seed = [f"run.seed={cell.seed}"]
    if cell.method == "best_of_n":
        n = family.best_of_n_n(budget, n_prompts)
        return family.per_split(best_of_n, job + seed, [f"n={n}"]) | {"n": n, "samples": n * n_prompts}
    k = family.milr_k(budget, n_prompts)
    row = family.per_split(milr, job + seed, [f"milr.steps={k}", f"milr.samples={family.MILR_SAMPLES}"])
    return row | {"k": k, "samples": row["test"]["samples"]}


def sweep(argv: list[str], run_cell=None) -> dict:
    """Every asked (method, seed) cell not finished yet, then the table of all of them. `run_cell(cell, resume)`
    replaces the real runs (tests)."""
    own, overrides = split_args(argv)
    out, steps = Path(own["out"]), int(own["steps"])
    cfg = parse_config(MetaTTRLConfig, overrides + [f"trainer.steps={steps}"], "")
    if cfg.data.benchmark != "toyworld" or cfg.data.split not in ("", "test") or cfg.data.heldout not in (
            "auto", "heldout") or "run.seed" in {o.split("=", 1)[0] for o in overrides}:
        raise UserError("the sweep runs on the toy world's test and heldout splits with seeds=...: leave "
                        "data.benchmark, data.split, data.heldout and run.seed")
    methods, seeds, skipped = chosen(own)
    budget = steps * cfg.data.prompts_per_step * cfg.rollout.group_size
    job = overrides + [f"trainer.steps={steps}", "trainer.converge_window=0"]
    spec = {"steps": steps, "overrides": overrides}
    cells = [Cell(out, m, s, spec) for m in methods for s in seeds]
    todo = [c for c in cells if c.finished() is None]
    if run_cell is None and todo:
        connect(cfg.run.ray_address, cpus_needed(cfg))  # one cluster for every cell
    # the untrained baselines first (minutes), then the trained cells seed by seed (every method gets its first
    # seed before any gets its third: an interrupted sweep already holds comparable rows)
    todo.sort(key=lambda c: (c.method not in UNTRAINED, c.seed, methods.index(c.method)))
    done = {(c.method, c.seed): c.finished() for c in cells if c not in todo}
    for k, cell in enumerate(todo):
        print(f"sweep: cell {k + 1}/{len(todo)}: {cell.method} seed {cell.seed}", flush=True)
        resume = cell.start()
        if run_cell is not None:
            result = run_cell(cell, resume)
        elif cell.method in UNTRAINED:
            result = run_untrained(cell, job, budget)
        else:
            result = run_trained(cell, job, own, resume)
        done[(cell.method, cell.seed)] = cell.finish(result)
        write(out, table(done, methods, seeds, skipped, spec | {"samples_per_method": budget}))
    result = table(done, methods, seeds, skipped, spec | {"samples_per_method": budget})
    write(out, result)
    return result


def table(done: dict, methods: list[str], seeds: list[int], skipped: dict, spec: dict) -> dict:
    """sweep.json's content from the finished cells ({(method, seed): cell})."""
    by_method = {m: [done[(m, s)] for s in seeds if (m, s) in done] for m in methods}
    trained = [c for m in methods if m in TRAINED for c in by_method[m]]
    rows = {"vanilla": aggregate.method_summary(aggregate.vanilla_cells(trained))} if trained else {}
    rows |= {m: aggregate.method_summary(cells) for m, cells in by_method.items() if cells}
    result = spec | {"seeds": seeds, "methods": rows, "not_run": skipped,
                     "cells": {m: {str(c["seed"]): {"wall_s": round(c.get("wall_s", 0.0), 1),
                                                    "samples": c.get("samples", spec["samples_per_method"])}
                                   for c in cells} for m, cells in by_method.items()}}
    if "meta_ttrl" in rows and "test" in rows["meta_ttrl"]:  # what the judge adds over GRPO on a blind reward
        result["judge_contribution"] = {c: {split: aggregate.margin(rows["meta_ttrl"][split]["overall"],
                                                                    rows[c][split]["overall"])
                                            for split in ("test", "heldout") if split in rows[c]}
                                        for c in ("random", "shuffled", "vqa_rubric") if c in rows}
    return result


def write(out: Path, result: dict) -> None:
    from driver.sweep_report import markdown, plot

    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(result, indent=1))
    (out / "sweep.md").write_text(markdown(result))
    curves = {m: {s: read_metrics(out / m / f"seed{s}" / "metrics.jsonl") for s in result["seeds"]
                  if (out / m / f"seed{s}" / "metrics.jsonl").is_file()} for m in result["methods"] if m in TRAINED}
    plot(out / "sweep.png", {m: c for m, c in curves.items() if c})


def main(argv: list[str]) -> None:
    sweep(argv)
    print((Path(split_args(argv)[0]["out"]) / "sweep.md").read_text())


if __name__ == "__main__":
    run_main(main)
