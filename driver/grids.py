"""Image grids of fixed prompts with fixed noise over training: what changes between two grids is the weights."""

from __future__ import annotations

from driver.report import save_grid


def grid_prompts(metas: list[dict], n: int) -> list[str]:
    """The first prompt of each tag, in the split's order, then further prompts until n."""
    firsts = list({m["tag"]: m["prompt"] for m in reversed(metas)}.values())[::-1]
    rest = [m["prompt"] for m in metas if m["prompt"] not in firsts]
    return (firsts + rest)[:n]


class Grids:
    """Rows are prompts, columns samples; drawn every `every` steps (and before and after training)."""
    PER_PROMPT = 4

    def __init__(self, job, run_path, prompts: list[str], every: int, drawn: list[tuple[str, str]]):
        self.job, self.path, self.prompts, self.every = job, run_path / "grids", prompts, every
        self.drawn = drawn  # (label, file relative to the run directory); a resumed run's list goes on

    def draw(self, label: str) -> None:
        if not self.prompts:
            return
        images, version = self.job.grid(self.prompts, self.PER_PROMPT)
        name = f"grid_v{version:04d}.png"
        if self.drawn and self.drawn[-1][1].endswith(name):  # these weights are drawn already
            return
        save_grid(images, len(self.prompts), self.path / name)
        self.drawn.append((f"{label} (weights v{version})", f"grids/{name}"))

    def after_step(self, done: int) -> None:
        if self.every > 0 and done % self.every == 0:
            self.draw(f"after step {done}")
