"""Every method of the family on the toy world with the same sample budget and seed: one table (markdown + JSON)
and one figure, overall and per tag on `test` and `heldout`.

    python launch/compare.py [out=docs/results/compare] [steps=100] [vqa_path=models/toy_git] [external=<dir>]
                             [key=value ...]   # job keys pass through to every run

A second run into the same `out` with the same settings keeps the methods already measured (compare.json).

Budget: each trained method (Meta-TTRL, GvU, SRUM, VQA-scored rubric, oracle GRPO, E-TTRL) draws
steps x prompts_per_step x group_size samples; Best-of-N and MILR get the same number spread over the split's
prompts (Best-of-N: n per prompt, at least 2; MILR: up to K = milr_steps steps of `milr_samples` per prompt,
K = budget / (prompts x samples), stopping early at the threshold, so it may use less). Vanilla is the untrained
model's evaluation (the "before" of the first run). The VQA-scored rubric needs a GIT (`vqa_path`), E-TTRL an
external judge model (`external`); without one the row says so, never silently dropped.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import driver  # noqa: F401  (first: a local Ray cluster binds loopback, which must precede `import ray`)
from driver.cli import UserError, parse_config, run_main
from driver.cluster import connect, cpus_needed
from driver.inputs import load_prompts
from driver.methods import MILR_SAMPLES, NEEDS, TRAINED, best_of_n_n, milr_k, per_split
from launch.best_of_n import run as best_of_n  # the other entry points, by their commands
from launch.configs.meta_ttrl import MetaTTRLConfig
from launch.meta_ttrl import main as meta_ttrl
from launch.milr import run as milr

def split_args(argv: list[str]) -> tuple[dict, list[str]]:
    own = {"out": "docs/results/compare", "steps": "100", "vqa_path": "", "external": ""}
    rest = []
    for arg in argv:
        key = arg.split("=", 1)[0]
        if key in own and "=" in arg:
            own[key] = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return own, rest


def resumed(out: Path, steps: int, overrides: list[str]) -> dict | None:
    """The table of an earlier compare into `out` with the same budget and overrides: its methods are kept, not
    run again (a compare that stopped half-way goes on where it was)."""
    path = out / "compare.json"
    if not path.is_file():
        return None
    table = json.loads(path.read_text())
    if table.get("steps") != steps or table.get("overrides") != overrides:
        raise UserError(f"{path} holds a comparison with other settings (steps {table.get('steps')}, overrides "
                        f"{table.get('overrides')}): choose another out=")
    print(f"keeping {', '.join(table['methods'])} from {path}", flush=True)
    return table


def run_trained(name: str, overrides: list[str], out: Path, own: dict) -> dict:
    t0 = time.time()
    meta_ttrl(overrides + [o.format(**own) for o in TRAINED[name]] + [f"run.dir={out / name}",
                                                                           "run.wandb=disabled"])
    s = json.loads((out / name / "summary.json").read_text())
    return {"test": s["after"], "heldout": s["heldout_after"], "wall_s": time.time() - t0,
            "vanilla": {"test": s["before"], "heldout": s["heldout_before"]}}


def compare(argv: list[str]) -> dict:
    own, overrides = split_args(argv)
    out, steps = Path(own["out"]), int(own["steps"])
    cfg = parse_config(MetaTTRLConfig, overrides + [f"trainer.steps={steps}"], "")
    if cfg.data.benchmark != "toyworld" or cfg.data.split not in ("", "test") or cfg.data.heldout not in ("auto",
                                                                                                       "heldout"):
        raise UserError("compare runs on the toy world's test and heldout splits; leave data.benchmark, data.split "
                        "and data.heldout")
    job = overrides + [f"trainer.steps={steps}", "trainer.converge_window=0"]
    skipped = {m: f"needs {arg}=<dir>" for m, arg in NEEDS.items() if not own[arg]}
    budget = steps * cfg.data.prompts_per_step * cfg.rollout.group_size
    table = resumed(out, steps, overrides) or {"steps": steps, "samples_per_method": budget, "overrides": overrides,
                                               "methods": {}}
    rows, table["not_run"] = table["methods"], skipped
    connect(cfg.run.ray_address, cpus_needed(cfg))  # one cluster for every method, sized for the trained ones
    n_prompts = len(load_prompts("toyworld", "test"))
    n = best_of_n_n(budget, n_prompts)
    # the baselines without training first (minutes each), then the trained methods (the longest runs)
    if "best_of_n" not in rows:
        rows["best_of_n"] = per_split(best_of_n, overrides, [f"n={n}"]) | {"n": n, "samples": n * n_prompts}
        write(out, table)
    k = milr_k(budget, n_prompts)
    if "milr" not in rows:
        rows["milr"] = per_split(milr, overrides, [f"milr.steps={k}", f"milr.samples={MILR_SAMPLES}"]) | {"k": k}
        rows["milr"]["samples"] = rows["milr"]["test"]["samples"]  # early stops: at most k x samples per prompt
        write(out, table)
    for name in [m for m in TRAINED if m not in skipped and m not in rows]:
        if (out / name).exists():  # a run this compare started and did not finish: its directory is kept
            (out / name).rename(out / f"{name}.interrupted-{int(time.time())}")
        rows[name] = run_trained(name, job, out, own) | {"samples": budget}
        rows.setdefault("vanilla", rows[name].pop("vanilla") | {"samples": 0})
        rows[name].pop("vanilla", None)
        write(out, table)  # after every method: a later crash keeps what was measured
    return table


def write(out: Path, table: dict) -> None:
    """compare.json, compare.md (vanilla first) and compare.png from the rows measured so far."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(table, indent=1))
    rows = table["methods"]
    names = (["vanilla"] if "vanilla" in rows else []) + [n for n in rows if n != "vanilla"]
    if not names:
        return
    first = rows[names[0]]
    columns = [(split, tag) for split in ("test", "heldout") for tag in first[split]["per_tag"]]
    lines = [f"| method | test | heldout | samples (test) | {' | '.join(f'{s} {t}' for s, t in columns)} |",
             "|---|---|---|---|" + "---|" * len(columns)]
    for name in names:
        row = rows[name]
        per_tag = " | ".join(f"{row[s]['per_tag'].get(t, float('nan')):.3f}" for s, t in columns)
        lines.append(f"| {name} | {row['test']['overall']:.3f} | {row['heldout']['overall']:.3f} | "
                     f"{row.get('samples', 0)} | {per_tag} |")
    lines += [f"| {name} | not run: {why} | | |" + " |" * len(columns) for name, why in table["not_run"].items()]
    (out / "compare.md").write_text("\n".join(lines) + "\n")
    plot(out / "compare.png", table, names)


def plot(path: Path, table: dict, names: list[str]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(7.0, 1.1 * len(names)), 3.8))
    for k, split in enumerate(("test", "heldout")):
        ax.bar([i + 0.4 * k for i in range(len(names))], [table["methods"][n][split]["overall"] for n in names],
               width=0.4, label=split)
    ax.set_xticks([i + 0.2 for i in range(len(names))], names, rotation=20)
    ax.set_ylabel("oracle score (GenEval rules)")
    ax.set_title(f"toy world, {table['samples_per_method']} samples per method")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str]) -> None:
    table = compare(argv)
    print((Path(split_args(argv)[0]["out"]) / "compare.md").read_text())
    print(json.dumps({n: {s: r[s]["overall"] for s in ("test", "heldout")} for n, r in table["methods"].items()}))


if __name__ == "__main__":
    run_main(main)
