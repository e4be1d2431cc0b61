"""A run's directory: resolved config, metrics.jsonl (appended and flushed per step, so a crash loses
nothing already measured), summary.json."""

from __future__ import annotations

import json
import time
from pathlib import Path

from omegaconf import OmegaConf


class RunDir:
    def __init__(self, path: Path):
        self.path = path
        self.path.mkdir(parents=True, exist_ok=True)
        self._metrics = (self.path / "metrics.jsonl").open("a")

    @classmethod
    def create(cls, run_cfg) -> "RunDir":
        if run_cfg.dir:
            return cls(Path(run_cfg.dir))
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return cls(Path(run_cfg.root) / f"{stamp}-{run_cfg.name}")

    def save_config(self, cfg) -> None:
        (self.path / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    def log(self, record: dict) -> None:
        self._metrics.write(json.dumps(record) + "\n")
        self._metrics.flush()

    def truncate_metrics(self, steps: int) -> int:
        """Keep only the records of steps < `steps` (a resumed run redoes the rest); returns records dropped."""
        from driver.report import read_metrics
        path = self.path / "metrics.jsonl"
        self._metrics.close()
        rows = read_metrics(path)
        kept = [r for r in rows if r.get("step", steps) < steps]
        tmp = self.path / ".metrics.jsonl.tmp"
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(path)
        self._metrics = path.open("a")
        return len(rows) - len(kept)

    def write_json(self, name: str, obj) -> None:
        tmp = self.path / f".{name}.tmp"
        tmp.write_text(json.dumps(obj, indent=1))
        tmp.replace(self.path / name)  # atomic: a reader never sees half a file

    def close(self) -> None:
        self._metrics.close()
