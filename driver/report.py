"""What a run leaves for a person to look at: image grids of fixed prompts over training, and report.html
(grids over time, reward and oracle curves, the before/after table). Files only: no Ray, no models."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
from PIL import Image


def save_grid(images: np.ndarray, rows: int, path: Path) -> None:
    """(rows*cols, H, W, 3) uint8, row-major (one prompt per row) -> one PNG with 2-pixel gutters."""
    n, h, w, _ = images.shape
    cols = n // rows
    canvas = np.full((rows * (h + 2), cols * (w + 2), 3), 255, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        canvas[r * (h + 2): r * (h + 2) + h, c * (w + 2): c * (w + 2) + w] = img
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).resize((canvas.shape[1] * 2, canvas.shape[0] * 2), Image.NEAREST).save(path)


def read_metrics(path: Path) -> list[dict]:
    """metrics.jsonl, tolerating a torn last line (a run killed mid-write loses only that line)."""
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


SMOOTH = 10  # steps in the moving average drawn over the per-step curves


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last `window` values at each step (fewer at the start)."""
    sums = np.cumsum(np.insert(values, 0, 0.0))
    starts = np.maximum(np.arange(1, len(values) + 1) - window, 0)
    return (sums[1:] - sums[starts]) / (np.arange(1, len(values) + 1) - starts)


def reward_eval_correlation(metrics: list[dict]) -> float:
    """Pearson correlation of the per-step mean reward and evaluator score (nan with fewer than 3 such steps)."""
    pairs = np.array([(m["reward_mean"], m["eval"]) for m in metrics if "reward_mean" in m and "eval" in m])
    if len(pairs) < 3 or pairs.std(0).min() == 0:
        return float("nan")
    return float(np.corrcoef(pairs.T)[0, 1])


def plot_curves(metrics: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [m["step"] for m in metrics]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    for key, label, color in (("reward_mean", "mean reward (own rubric, Eq. 6)", "tab:blue"),
                              ("eval", "benchmark evaluator's score (metrics only)", "tab:orange")):
        values = np.array([m.get(key, np.nan) for m in metrics], dtype=float)
        top.plot(steps, values, color=color, alpha=0.3, linewidth=0.8)
        top.plot(steps, moving_average(values, SMOOTH), color=color, linewidth=2, label=f"{label}, {SMOOTH}-step mean")
    top.set_ylim(0, 1)
    top.set_ylabel("per step, training samples")
    top.legend()
    bottom.plot(steps, [m.get("kl", np.nan) for m in metrics], color="tab:red", label="k3 KL to reference")
    bottom.plot(steps, [m.get("clip_fraction", np.nan) for m in metrics], color="tab:gray", label="clip fraction")
    bottom.set_xlabel("step")
    bottom.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _table(summary: dict) -> str:
    rows = []
    for split, b, a in measured(summary):
        for tag in [*b["per_tag"], "overall"]:
            x = b["overall"] if tag == "overall" else b["per_tag"][tag]
            y = a["overall"] if tag == "overall" else a["per_tag"].get(tag, float("nan"))
            rows.append(f"<tr><td>{split}</td><td>{tag}</td><td>{x:.3f}</td><td>{y:.3f}</td><td>{y - x:+.3f}</td></tr>")
    head = "<tr><th>split</th><th>tag</th><th>before</th><th>after</th><th>change</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def write_report(run_path: Path, summary: dict, grids: list[tuple[str, str]], prompts: list[str]) -> Path:
    """report.html beside metrics.jsonl; `grids` are (label, file relative to the run directory)."""
    metrics = read_metrics(run_path / "metrics.jsonl")
    if metrics:
        plot_curves(metrics, run_path / "curves.png")
    figures = "".join(f"<figure><img src='{html.escape(f)}'><figcaption>{html.escape(label)}</figcaption></figure>"
                      for label, f in grids)
    rows = "".join(f"<li>{html.escape(p)}</li>" for p in prompts)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(run_path.name)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}} figure{{display:inline-block;margin:4px}}</style>
</head><body><h1>{html.escape(run_path.name)}</h1>
<p>{summary.get('steps', 0)} steps, {summary.get('wall_s', 0):.0f} s wall. Scores: the {html.escape(
    summary.get('benchmark', 'toyworld'))} benchmark's own evaluator (never seen by the policy); transfer rows: other
benchmarks', each by its own evaluator.</p>
<h2>Before / after</h2>{_table(summary)}
<h2>Reward and evaluator score per step</h2>{"<img src='curves.png'>" if metrics else "<p>no steps</p>"}
<p>Per-step correlation of mean reward and evaluator score: {reward_eval_correlation(metrics):.2f}</p>
<h2>Fixed prompts over training</h2><p>Rows, top to bottom:</p><ol>{rows}</ol>{figures}
</body></html>"""
    out = run_path / "report.html"
    out.write_text(page)
    return out


def measured(summary: dict) -> list[tuple[str, dict, dict]]:
    """(label, before, after) of every set measured: the trained split, heldout, then each transfer benchmark."""
    rows = [(summary.get("split", "test"), summary["before"], summary["after"])] if "before" in summary else []
    if "heldout_before" in summary:
        rows.append(("heldout", summary["heldout_before"], summary["heldout_after"]))
    return rows + [(label, t["before"], t["after"]) for label, t in summary.get("transfer", {}).items()]


def before_after_table(summary: dict) -> str:
    """The job's last words: per split and tag, the evaluator's score before and after (text, a blank line first)."""
    rows = measured(summary)
    if not rows:
        return "\n(no evaluation: eval.final=false)"
    width = max(9, *(len(r[0]) + 2 for r in rows))
    lines = ["", f"{'split':<{width}}{'tag':<15}{'before':>8}{'after':>8}"]
    for split, b, a in rows:
        for tag in b["per_tag"]:
            lines.append(f"{split:<{width}}{tag:<15}{b['per_tag'][tag]:>8.3f}"
                         f"{a['per_tag'].get(tag, float('nan')):>8.3f}")
        lines.append(f"{split:<{width}}{'overall':<15}{b['overall']:>8.3f}{a['overall']:>8.3f}")
    return "\n".join(lines)


def documented_range(summary: dict, sweep_json: Path) -> str:
    """Beside the default job's result: the same command's spread over seeds as the sweep measured it
    (docs/results/sweep), and where this run falls, so that a user can tell a normal run from a broken one. A
    host of another CPU type follows another trajectory from the same seed: inside the range is normal."""
    if not sweep_json.is_file() or "before" not in summary:
        return ""
    row = json.loads(sweep_json.read_text()).get("methods", {}).get("meta_ttrl", {})
    lines = []
    for split, before, after in (("test", "before", "after"), ("heldout", "heldout_before", "heldout_after")):
        gain = row.get(split, {}).get("gain")
        if not gain or before not in summary:
            continue
        mine = 100 * (summary[after]["overall"] - summary[before]["overall"])
        lo, hi = 100 * gain["min"], 100 * gain["max"]
        where = "inside" if lo - 1e-9 <= mine <= hi + 1e-9 else ("above" if mine > hi else "below")
        spread = f" ± {100 * gain['std']:.1f}" if gain["std"] is not None else ""
        lines.append(f"{split:<9}gain {mine:+.1f} points; documented over {gain['n']} seeds: "
                     f"{100 * gain['mean']:+.1f}{spread} (seeds ranged {lo:+.1f} to {hi:+.1f}): {where} that range")
    return "\n" + "\n".join(lines) + f"\n(documented in {sweep_json})" if lines else ""
