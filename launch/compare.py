"""Every method of the family on the toy world with the same sample budget and seed: one table (markdown + JSON)
and one figure, overall and per tag on `test` and `heldout`.

    python launch/compare.py [out=docs/results/compare] [steps=100] [key=value ...]   # job keys pass through

Budget: each GRPO method draws steps x prompts_per_step x group_size samples; Best-of-N gets the same number
spread over the split's prompts (n per prompt, at least 2). Vanilla is the untrained model's evaluation (the
"before" of the first run). Methods not runnable yet are listed in the table as such, never silently dropped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from launch import best_of_n, meta_ttrl  # meta_ttrl first: loopback-only local Ray before `import ray`
from launch.cli import UserError, run_main

# method -> overrides of the Meta-TTRL job (GRPO methods) or None (evaluated otherwise)
GRPO_METHODS = {"meta_ttrl": ["reward.judge=rubric"], "gvu": ["reward.judge=gvu"],
                "oracle_grpo": ["reward.judge=oracle"]}
NOT_YET = {"srum": "reward-weighted training not wired into the job yet (losses in learners/srum.py)",
           "milr": "latent search not wired into the rollout actor yet (pieces in rollout/milr.py)",
           "vqa_rubric": "GIT VQA answerer not implemented yet"}


def split_args(argv: list[str]) -> tuple[dict, list[str]]:
    own = {"out": "docs/results/compare", "steps": "100"}
    rest = []
    for arg in argv:
        key = arg.split("=", 1)[0]
        if key in own and "=" in arg:
            own[key] = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return own, rest


def run_grpo(name: str, overrides: list[str], out: Path) -> dict:
    meta_ttrl.main(overrides + GRPO_METHODS[name] + [f"run.dir={out / name}", "run.wandb=disabled"])
    return json.loads((out / name / "summary.json").read_text())


def run_best_of_n(overrides: list[str], n: int) -> dict:
    result = {}
    for split in ("test", "heldout"):
        result[split] = best_of_n.run(overrides + [f"n={n}", f"data.split={split}", "data.heldout="])
    return result


def compare(argv: list[str]) -> dict:
    own, overrides = split_args(argv)
    out, steps = Path(own["out"]), int(own["steps"])
    cfg = meta_ttrl.parse_config(meta_ttrl.MetaTTRLConfig, overrides + [f"trainer.steps={steps}"], "")
    if cfg.data.split != "test" or cfg.data.heldout != "heldout":
        raise UserError("compare runs on the built-in test and heldout splits; leave data.split / data.heldout")
    job = overrides + [f"trainer.steps={steps}", "trainer.converge_window=0"]
    rows = {}
    for name in GRPO_METHODS:
        s = run_grpo(name, job, out)
        rows.setdefault("vanilla", {"test": s["before"], "heldout": s["heldout_before"]})
        rows[name] = {"test": s["after"], "heldout": s["heldout_after"], "wall_s": s["wall_s"]}
    n_prompts = len(meta_ttrl.load_prompts("test"))
    n = max(2, round(steps * cfg.data.prompts_per_step * cfg.rollout.group_size / n_prompts))
    rows["best_of_n"] = run_best_of_n(overrides, n) | {"n": n}
    table = {"steps": steps, "samples_per_method": steps * cfg.data.prompts_per_step * cfg.rollout.group_size,
             "overrides": overrides, "methods": rows, "not_yet": NOT_YET}
    write(out, table)
    return table


def write(out: Path, table: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(table, indent=1))
    tags = list(table["methods"]["vanilla"]["test"]["per_tag"])
    lines = [f"| method | test | heldout | {' | '.join(f'test {t}' for t in tags)} |",
             "|---|---|---|" + "---|" * len(tags)]
    for name, row in table["methods"].items():
        per_tag = " | ".join(f"{row['test']['per_tag'].get(t, float('nan')):.3f}" for t in tags)
        lines.append(f"| {name} | {row['test']['overall']:.3f} | {row['heldout']['overall']:.3f} | {per_tag} |")
    lines += [f"| {name} | not run: {why} | | " + " | " * len(tags) for name, why in table["not_yet"].items()]
    (out / "compare.md").write_text("\n".join(lines) + "\n")
    plot(out / "compare.png", table)


def plot(path: Path, table: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(table["methods"])
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for k, split in enumerate(("test", "heldout")):
        ax.bar([i + 0.4 * k for i in range(len(names))], [table["methods"][n][split]["overall"] for n in names],
               width=0.4, label=split)
    ax.set_xticks([i + 0.2 for i in range(len(names))], names)
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
