"""Statistics over seeds for the sweep (launch/sweep.py): pure functions, numbers in and numbers out.

Each measured value is summarised by its mean, its sample standard deviation (ddof 1) and the half-width of a
95% Student-t interval of the mean, t(0.975, n - 1) x std / sqrt(n). One seed has no spread: std and interval are
None (a table shows "n=1"), never a made-up zero.
"""

from __future__ import annotations

import math

from scipy import stats

LEVEL = 0.95


def summary(values: list[float]) -> dict:
    """{"mean", "std", "ci95", "n", "min", "max", "values"} of one quantity over seeds."""
    values = [float(v) for v in values]
    n = len(values)
    if n == 0:
        raise ValueError("no values to summarise")
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else None
    ci = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * std / math.sqrt(n) if n > 1 else None
    return {"mean": mean, "std": std, "ci95": ci, "n": n, "min": min(values), "max": max(values), "values": values}


def interval(s: dict) -> tuple[float, float] | None:
    return None if s["ci95"] is None else (s["mean"] - s["ci95"], s["mean"] + s["ci95"])


def margin(a: dict, b: dict) -> dict:
    """a's mean minus b's, and whether their 95% intervals overlap (None when either has one seed)."""
    ia, ib = interval(a), interval(b)
    overlap = None if ia is None or ib is None else not (ia[0] > ib[1] or ib[0] > ia[1])
    return {"difference": a["mean"] - b["mean"], "intervals_overlap": overlap}


def method_summary(cells: list[dict]) -> dict:
    """One method's cells (one per seed, each {"test": table, "heldout": table, "before"?: table,
    "heldout_before"?: table, "correlation"?: float}, a table being {"overall", "per_tag"}) -> per split: the
    overall score, each tag and, for trained cells, the gain over the same seed's untrained policy."""
    out = {"seeds": [c["seed"] for c in cells]}
    for split, before_key in (("test", "before"), ("heldout", "heldout_before")):
        tables = [c[split] for c in cells if c.get(split)]
        if not tables:
            continue
        tags = sorted({t for table in tables for t in table["per_tag"]})
        part = {"overall": summary([t["overall"] for t in tables]),
                "per_tag": {tag: summary([t["per_tag"][tag] for t in tables if tag in t["per_tag"]])
                            for tag in tags}}
        befores = [(c[before_key], c[split]) for c in cells if c.get(before_key) and c.get(split)]
        if befores:
            part["gain"] = summary([after["overall"] - before["overall"] for before, after in befores])
            part["gain_per_tag"] = {tag: summary([a["per_tag"][tag] - b["per_tag"][tag] for b, a in befores
                                                  if tag in a["per_tag"] and tag in b["per_tag"]]) for tag in tags}
        out[split] = part
    correlations = [c["correlation"] for c in cells if c.get("correlation") is not None]
    if correlations:
        out["correlation"] = summary(correlations)
    return out


def vanilla_cells(cells: list[dict]) -> list[dict]:
    """The untrained policy per seed: the "before" tables of that seed's first trained cell."""
    by_seed = {}
    for c in cells:
        if c.get("before") and c["seed"] not in by_seed:
            by_seed[c["seed"]] = {"seed": c["seed"], "test": c["before"], "heldout": c.get("heldout_before")}
    return [by_seed[s] for s in sorted(by_seed)]
