"""Meta-TTRL (arXiv 2603.15724) as a Ray job: the model improves its own image generation with rubrics it
writes and scores itself (Algorithm 1; equations in DESIGN.md §2).

    python launch/meta_ttrl.py [key=value ...]             # starts a local Ray cluster on 127.0.0.1
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- python launch/meta_ttrl.py [key=value ...]
`--help` lists every key. Default: the embedded toy world (committed toy UMM, test split, CPU actors).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: import this checkout (e.g. the working dir `ray job submit` shipped)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import driver  # noqa: F401  (first: a local Ray cluster binds loopback, which must precede `import ray`)
from driver.cli import parse_config, run_main
from driver.preflight import check_job, job_prompts
from driver.recovery import RedoStep, RolledBack
from driver.report import before_after_table, documented_range
from driver.session import Session
from launch.configs.meta_ttrl import ROOT, MetaTTRLConfig

SWEEP = ROOT / "docs" / "results" / "sweep" / "sweep.json"  # the default job over seeds (launch/sweep.py)


def meta_ttrl(s: Session) -> dict:
    """Algorithm 1: repeat {rubric -> sample G -> score -> GRPO update -> sync} until T steps or the reward has
    converged; the benchmark's evaluator measures the policy before and after (never the policy's reward). In async mode the next
    `max_staleness` steps' rollouts and scoring are already in flight during an update."""
    s.measure_before()
    while True:
        try:
            while s.training():  # t < T and the mean reward still rising
                step = s.next_step()  # sample G per prompt; the frozen introspector writes each prompt's rubric
                # (once, cached) and scores every candidate on it (Eq. 5-6): object refs, in flight
                stats = s.update(step)  # GRPO (Eq. 7-8) on the learner, then the weights broadcast to the rollouts
                s.record(step, stats)  # metrics line, health guard, convergence test
                s.after_step()  # grids, checkpoint
            s.stop_training()
            return s.measure_after()
        except RedoStep:  # a rollout or introspector died mid-step: restarted, the step redone from its prompts
            continue
        except RolledBack as back:  # a learner died: every actor back to the newest checkpoint, go on from there
            s.roll_back(back.progress)


def load_config(argv: list[str]):
    """The command line's config; a resumed run starts from the config it saved, the command line on top."""
    cfg = parse_config(MetaTTRLConfig, argv, "launch/meta_ttrl.py", __doc__)
    saved = Path(cfg.run.dir) / "config.yaml" if cfg.run.resume else None
    return parse_config(MetaTTRLConfig, argv, "", saved=str(saved)) if saved and saved.is_file() else cfg


def is_default_job(cfg) -> bool:
    """The embedded default (`make run`): every setting outside the run section (where, which seed) at its default.
    Each section's default is built alone: the whole config's own checks (e.g. a submitted job's run.root) are not
    about the defaults."""
    from dataclasses import fields

    from omegaconf import OmegaConf
    return all(OmegaConf.to_container(OmegaConf.structured(getattr(cfg, f.name))) ==
               OmegaConf.to_container(OmegaConf.structured(f.default_factory()))
               for f in fields(MetaTTRLConfig) if f.name != "run")


def main(argv: list[str]) -> None:
    cfg = load_config(argv)  # every section checks itself, then the rules across sections
    prompts = job_prompts(cfg, check_job(cfg))  # the model, judge, extras, prompts and evaluators, before a cluster
    with Session(cfg, prompts) as session:  # run directory, cluster, actors, resume
        summary = meta_ttrl(session)
    print(before_after_table(summary))
    if is_default_job(cfg):
        print(documented_range(summary, SWEEP))
    path = session.run.path.resolve()
    print(f"run directory: {path}\nreport: {path / 'report.html'}")


if __name__ == "__main__":
    run_main(main)
