"""The sweep's table (markdown) and figure (per-seed curves) from sweep.json's content (launch/sweep.py)."""

from __future__ import annotations

from pathlib import Path


def fmt(s: dict | None, points: bool = False) -> str:
    """mean +- std [95% interval] (n seeds); points: x 100, signed (a gain)."""
    if not s:
        return "-"
    k = 100.0 if points else 1.0
    sign = "+" if points else ""
    if s["std"] is None:
        return f"{k * s['mean']:{sign}.{1 if points else 3}f} (n=1)"
    d = 1 if points else 3
    lo, hi = k * (s["mean"] - s["ci95"]), k * (s["mean"] + s["ci95"])
    return f"{k * s['mean']:{sign}.{d}f} ± {k * s['std']:.{d}f} [{lo:{sign}.{d}f}, {hi:{sign}.{d}f}]"


def markdown(result: dict) -> str:
    rows = result["methods"]
    lines = [f"Sweep: {len(result['seeds'])} seeds ({', '.join(map(str, result['seeds']))}), "
             f"{result['samples_per_method']} samples per method, {result['steps']} steps, overrides "
             f"{result['overrides'] or 'none'}. Each cell: mean ± std [95% t-interval] over seeds; gains in points.",
             "", "| method | seeds | test | test gain | heldout | heldout gain | reward/eval corr. | s per cell |",
             "|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        walls = [c["wall_s"] for c in result["cells"].get(name, {}).values()]
        wall = f"{sum(walls) / len(walls):.0f}" if walls else "-"
        test, held = row.get("test", {}), row.get("heldout", {})
        lines.append(f"| {name} | {len(row['seeds'])} | {fmt(test.get('overall'))} | {fmt(test.get('gain'), True)} | "
                     f"{fmt(held.get('overall'))} | {fmt(held.get('gain'), True)} | {fmt(row.get('correlation'))} | "
                     f"{wall} |")
    lines += [f"| {name} | not run: {why} | | | | | | |" for name, why in result["not_run"].items()]
    for split in ("test", "heldout"):
        tags = sorted({t for row in rows.values() for t in row.get(split, {}).get("per_tag", {})})
        if not tags:
            continue
        lines += ["", f"Per tag on `{split}` (score; mean ± std over seeds):", "",
                  f"| method | {' | '.join(tags)} |", "|---|" + "---|" * len(tags)]
        for name, row in rows.items():
            per_tag = row.get(split, {}).get("per_tag", {})
            cells = [(f"{per_tag[t]['mean']:.3f}" + (f" ± {per_tag[t]['std']:.3f}" if per_tag[t]["std"] is not None
                                                     else "")) if t in per_tag else "-" for t in tags]
            lines.append(f"| {name} | {' | '.join(cells)} |")
    for control, splits in result.get("judge_contribution", {}).items():
        for split, m in splits.items():
            overlap = {None: "one seed: no interval", True: "intervals overlap",
                       False: "intervals do not overlap"}[m["intervals_overlap"]]
            lines.append(f"\nJudge contribution on `{split}`: meta_ttrl - {control} = {100 * m['difference']:+.1f} "
                         f"points ({overlap}).")
    return "\n".join(lines) + "\n"


def plot(path: Path, curves: dict[str, dict[int, list[dict]]]) -> None:
    """One column per trained method; rows: the mean reward and the evaluator's score of each step's rollouts;
    one line per seed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not curves:
        return
    fig, axes = plt.subplots(2, len(curves), figsize=(3.2 * len(curves) + 1, 5.5), squeeze=False, sharex=True)
    for col, (method, by_seed) in enumerate(curves.items()):
        for seed, metrics in sorted(by_seed.items()):
            for row, key in enumerate(("reward_mean", "eval")):
                points = [(m["step"], m[key]) for m in metrics if key in m]
                if points:
                    axes[row][col].plot(*zip(*points), lw=1, label=f"seed {seed}")
        axes[0][col].set_title(method)
        axes[1][col].set_xlabel("step")
    axes[0][0].set_ylabel("mean reward")
    axes[1][0].set_ylabel("evaluator score of the rollouts")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
