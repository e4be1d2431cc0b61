"""The Meta-TTRL job on a real local Ray cluster with the embedded toy model."""
import json
from contextlib import contextmanager

import pytest
import torch

from driver.cli import parse_config
from launch import meta_ttrl
from launch.configs.meta_ttrl import MetaTTRLConfig
from toyworld.prompts import load_split

SHORT = ["trainer.steps=2", "data.prompts_per_step=2", "rollout.group_size=2", "data.eval_max_prompts=2",
         "data.eval_samples=1", "grpo.lr=1e-3"]


@contextmanager
def started_job(overrides: list[str], n_prompts: int, evaluated: tuple[str, ...] = ()):
    """The job's actors on the session's Ray cluster (shut down after), with the first test prompts."""
    from actors.job import MetaTTRLJob

    metas = load_split("test")[:n_prompts]
    job = MetaTTRLJob(parse_config(MetaTTRLConfig, SHORT + overrides, "test"), {m["prompt"]: m for m in metas},
                      evaluated=evaluated)
    try:
        yield job, metas
    finally:
        job.shutdown()


def test_the_main_job_runs_end_to_end_async_and_writes_its_run_directory(ray_local, tmp_path, capsys):
    meta_ttrl.main(SHORT + ["trainer.steps=3", "trainer.async_mode=true", "run.grid_every=2", "run.wandb=offline",
                    f"run.dir={tmp_path}"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert {"before", "after", "heldout_before", "heldout_after", "steps", "wall_s"} <= summary.keys()
    assert summary["steps"] == 3 and 0 <= summary["after"]["overall"] <= 1
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [0, 1, 2] and [m["version"] for m in lines] == [1, 2, 3]
    # the rollout of step t+1 overlapped the update of step t: one version behind, within max_staleness=1
    assert [m["staleness_max"] for m in lines] == [0, 1, 1] and lines[-1]["stale_dropped"] == 0
    assert all(0 <= m["reward_mean"] <= 1 and 0 <= m["eval"] <= 1 and m["sync_s"] >= 0 for m in lines)
    assert lines[-1]["rubric"]["written"] >= 2
    assert all(m["health"]["samples"] == 4 and m["health"]["groups"] == 2 for m in lines)  # counted every step
    grids = sorted(p.name for p in (tmp_path / "grids").iterdir())
    assert grids == ["grid_v0000.png", "grid_v0002.png", "grid_v0003.png"]  # before, after step 2, after
    report = (tmp_path / "report.html").read_text()
    assert all(f"grids/{g}" in report for g in grids) and (tmp_path / "curves.png").is_file()
    assert list((tmp_path / "wandb").glob("offline-run-*"))  # no credentials here: wandb logs offline
    assert (tmp_path / "config.yaml").is_file() and "overall" in capsys.readouterr().out


@pytest.mark.parametrize("override, message", [
    ("rollout.group_size=1", "group_size must be >= 2"),
    ("rubric.source=oracle", "rubric.source"),
    ("model.path=/nonexistent", "not found"),
])
def test_bad_config_is_one_clear_line(override, message, tmp_path):
    from driver.cli import UserError
    with pytest.raises(UserError, match=message):
        meta_ttrl.main(SHORT + [override, f"run.dir={tmp_path}"])


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL needs a GPU per rank (a GPU machine runs this)")
def test_after_an_nccl_sync_every_rollout_actor_holds_the_learner_weights(ray_local):
    gpus = ["resources.rollout.num_gpus=1", "resources.learner.num_gpus=1", "resources.introspector.num_gpus=0"]
    with started_job(["sync.backend=nccl"] + gpus, 2) as (job, metas):
        parts = job.rollout([m["prompt"] for m in metas])
        job.update(parts, job.judge(parts))
        learner, held = ray_local.get([job.learners[0].weights.remote(), job.rollouts[0].weights.remote()])
        assert all(torch.equal(held[n].cpu(), learner[n].cpu()) for n in learner)


def test_the_evaluation_is_the_same_whoever_draws_its_batches(ray_local):
    """Every batch has its own seed: rollout and learner drawing alternate batches give the same records and scores
    as the rollout drawing them all, and the learner is among the samplers (it holds the same weights)."""
    with started_job(["eval.batch_prompts=1", "data.eval_samples=2", "data.eval_max_prompts=3"], 3,
                     ("toyworld",)) as (job, metas):
        assert job.evaluation_samplers() == job.rollouts + job.learners[:1]
        shared = job.evaluate(metas, "toyworld")
        job.evaluation_samplers = lambda: job.rollouts
        alone = job.evaluate(metas, "toyworld")
    assert shared[0] == alone[0] and [s.score for s in shared[1]] == [s.score for s in alone[1]]
    assert len(shared[1]) == 6
