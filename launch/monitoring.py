"""Does Meta-TTRL gain where its judge monitors well? The frozen model's monitoring of its own samples per tag
(toyworld/monitoring.py: reward AUC against the oracle, within-group concordance, question accuracy and AUC per
dimension) beside each tag's gain over the seeds of a sweep (launch/sweep.py), and their correlation across tags.

    python launch/monitoring.py [sweep=docs/results/sweep/sweep.json] [method=meta_ttrl] [split=test]
                                [samples=8] [seed=0] [out=docs/results/sweep/monitoring]

Writes <out>.json and <out>.md; runs in this process on the committed model (no cluster: one model, no update).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from scipy import stats

from driver.cli import UserError, own_args, run_main
from models.toy import EMBEDDED

OWN = {"sweep": "docs/results/sweep/sweep.json", "method": "meta_ttrl", "split": "test", "samples": "8",
       "seed": "0", "out": "docs/results/sweep/monitoring", "model": str(EMBEDDED)}


def gains(sweep_json: Path, method: str, split: str) -> dict[str, float]:
    if not sweep_json.is_file():
        raise UserError(f"no sweep table at {sweep_json}: run launch/sweep.py first, or give sweep=<sweep.json>")
    row = json.loads(sweep_json.read_text())["methods"].get(method, {}).get(split, {})
    if "gain_per_tag" not in row:
        raise UserError(f"{sweep_json} has no per-tag gains of {method} on {split}")
    return {tag: s["mean"] for tag, s in row["gain_per_tag"].items()}


def correlations(table: dict, gain: dict[str, float]) -> dict:
    """Pearson and Spearman correlation across tags of each monitoring measure with the tag's gain."""
    tags = [t for t in gain if t in table]
    out = {}
    for key in ("reward_auc", "group_concordance"):
        x = np.array([table[t][key] for t in tags], float)
        y = np.array([gain[t] for t in tags], float)
        ok = ~np.isnan(x)
        if ok.sum() >= 3 and x[ok].std() > 0:
            out[key] = {"pearson": float(stats.pearsonr(x[ok], y[ok])[0]),
                        "spearman": float(stats.spearmanr(x[ok], y[ok])[0]), "tags": int(ok.sum())}
    return out


def markdown(table: dict, gain: dict[str, float], corr: dict, own: dict) -> str:
    lines = [f"Judge monitoring of the committed model's own samples on `{own['split']}` ({own['samples']} per "
             f"prompt, seed {own['seed']}) beside {own['method']}'s mean gain per tag over the sweep's seeds.", "",
             "| tag | oracle | reward AUC | group concordance (pairs) | question accuracy / AUC by dimension | gain "
             "(points) |", "|---|---|---|---|---|---|"]
    for tag, row in table.items():
        qs = "; ".join(f"{d} {q['accuracy']:.2f} / {q['auc']:.2f} (n={q['answered']}, skipped {q['skipped']})"
                       for d, q in sorted(row["questions"].items()))
        g = f"{100 * gain[tag]:+.1f}" if tag in gain else "-"
        lines.append(f"| {tag} | {row['oracle']:.3f} | {row['reward_auc']:.3f} | {row['group_concordance']:.3f} "
                     f"({row['group_pairs']}) | {qs} | {g} |")
    for key, c in corr.items():
        lines.append(f"\n{key} vs gain across {c['tags']} tags: Pearson {c['pearson']:+.2f}, Spearman "
                     f"{c['spearman']:+.2f}.")
    return "\n".join(lines) + "\n"


def strict(obj):
    """NaN (an empty side of an AUC) as null: strict JSON has no NaN."""
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    return None if isinstance(obj, float) and obj != obj else obj


def main(argv: list[str]) -> None:
    own = own_args(argv, OWN)
    from models.loading import load_adapter
    from toyworld.monitoring import monitoring
    from toyworld.prompts import load_split

    gain = gains(Path(own["sweep"]), own["method"], own["split"])
    t0 = time.time()
    table = monitoring(load_adapter(own["model"]), load_split(own["split"]), int(own["samples"]), seed=int(own["seed"]))
    corr = correlations(table, gain)
    out = Path(own["out"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(strict({"settings": own, "per_tag": table, "gain": gain,
                                                           "correlation": corr, "wall_s": time.time() - t0}),
                                                   indent=1, allow_nan=False))
    out.with_suffix(".md").write_text(markdown(table, gain, corr, own))
    print(out.with_suffix(".md").read_text())


if __name__ == "__main__":
    run_main(main)
