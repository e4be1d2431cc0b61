"""Where a step's metrics go: metrics.jsonl in the run directory (always; flushed per step), wandb (online when
an API key or WANDB_MODE says so, offline into the run directory otherwise, or off), and the Ray dashboard's
metrics (Prometheus gauges via `ray.util.metrics`, tagged with the run name)."""

from __future__ import annotations

import os
import secrets

from driver.cli import UserError
from driver.rundir import RunDir

WANDB_MODES = ("auto", "online", "offline", "disabled")  # wandb's own mode names
GAUGES = ("reward_mean", "eval", "kl", "clip_fraction", "staleness_max", "stale_dropped", "step_s", "sync_s",
          "version")


def flatten(record: dict, prefix: str = "") -> dict[str, float]:
    """{"rubric": {"fallback": 2}} -> {"rubric/fallback": 2}; numbers only (what wandb and gauges take)."""
    out = {}
    for key, value in record.items():
        if isinstance(value, dict):
            out |= flatten(value, f"{prefix}{key}/")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[prefix + key] = value
    return out


def wandb_mode(setting: str) -> str:
    if setting not in WANDB_MODES:
        raise UserError(f"run.wandb {setting!r} is not one of: {', '.join(WANDB_MODES)}")
    if setting != "auto":
        return setting
    return "online" if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_MODE") == "online" else "offline"


class Tracker:
    def __init__(self, run: RunDir, run_cfg, config: dict):
        self.run, self.name = run, run.path.name
        self.wandb = None
        mode = wandb_mode(run_cfg.wandb)
        if mode != "disabled":
            os.environ.setdefault("WANDB_SILENT", "true")
            import wandb
            id_file = run.path / "wandb_id"  # one wandb run per run directory, continued on resume
            run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(4)
            id_file.write_text(run_id)
            self.wandb = wandb.init(project=run_cfg.wandb_project, name=self.name, dir=str(run.path), mode=mode,
                                    config=config, id=run_id, resume="allow")
        self.gauges = {}
        import ray
        if ray.is_initialized():
            from ray.util.metrics import Gauge
            self.gauges = {k: Gauge(f"meta_ttrl_{k}", description=f"Meta-TTRL {k} per step", tag_keys=("run",))
                           for k in GAUGES}

    def log(self, record: dict) -> None:
        self.run.log(record)
        flat = flatten(record)
        if self.wandb is not None:
            self.wandb.log(flat, step=record["step"])
        for key, gauge in self.gauges.items():
            if key in flat:
                gauge.set(float(flat[key]), tags={"run": self.name})

    def summary(self, summary: dict) -> None:
        self.run.write_json("summary.json", summary)
        if self.wandb is not None:
            self.wandb.summary.update(flatten(summary))

    def close(self) -> None:
        try:
            if self.wandb is not None:
                self.wandb, run = None, self.wandb
                run.finish()
        finally:
            self.run.close()
