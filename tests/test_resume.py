"""Exact resume: kill -9 the driver (and the local cluster it started) mid-run, resume, finish; on-policy the
final weights are bitwise those of an uninterrupted run and metrics.jsonl holds every step exactly once.
(The same comparison shows same-seed on-policy runs are deterministic: any run-to-run drift would fail it.)"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import load_file

from driver.cli import UserError, parse_config
from launch import meta_ttrl
from launch.configs.meta_ttrl import MetaTTRLConfig
from test_meta_ttrl import SHORT

ROOT = Path(__file__).resolve().parents[1]
RUN = SHORT + ["trainer.steps=4", "trainer.async_mode=false", "run.checkpoint_every=2", "run.wandb=disabled",
               "data.heldout=", "run.grid_prompts=1", "run.grid_every=0"]


def steps_logged(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def kill_mid_run(run_dir: Path, after_checkpoint: str) -> None:
    """Start the job as its own process session (it starts its own local Ray), wait for a checkpoint, then
    SIGKILL every process of the session: the driver, the raylet, GCS and the actors."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen([sys.executable, "launch/meta_ttrl.py", *RUN, f"run.dir={run_dir}"], cwd=ROOT, env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (run_dir / "checkpoints" / after_checkpoint).is_dir():
        assert proc.poll() is None, f"the job ended before its checkpoint: {proc.stderr.read()[-2000:]}"
        assert time.time() < deadline, "no checkpoint within 240 s"
        time.sleep(0.05)
    subprocess.run(["pkill", "-9", "-s", str(proc.pid)], check=False)
    proc.wait(timeout=30)
    for _ in range(100):  # the workers notice their raylet is gone and exit within seconds
        if subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True).returncode == 1:
            break
        time.sleep(0.2)
    else:
        pytest.fail("processes of the killed job's cluster survive")


def test_kill_9_then_resume_is_bitwise_the_uninterrupted_run(ray_local, tmp_path):
    meta_ttrl.main(RUN + [f"run.dir={tmp_path / 'straight'}"])
    killed = tmp_path / "killed"
    kill_mid_run(killed, "step_000002")
    assert not (killed / "summary.json").exists()  # the kill landed mid-run
    assert 2 <= len(steps_logged(killed)) < 4
    meta_ttrl.main([f"run.dir={killed}", "run.resume=auto"])  # the saved config; a fresh cluster (the session's)

    a, b = (load_file(tmp_path / n / "final" / "model.safetensors") for n in ("straight", "killed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert steps_logged(killed) == list(range(4))
    rows = [(tmp_path / n / "metrics.jsonl").read_text().splitlines() for n in ("straight", "killed")]
    assert [json.loads(x)["reward_mean"] for x in rows[0]] == [json.loads(x)["reward_mean"] for x in rows[1]]
    assert sorted(p.name for p in (killed / "checkpoints").iterdir()) == ["step_000000", "step_000002",
                                                                          "step_000004"]
    summary = json.loads((killed / "summary.json").read_text())
    assert summary["steps"] == 4 and summary["before"] == json.loads(
        (tmp_path / "straight" / "summary.json").read_text())["before"]  # restored, not re-measured


def test_a_resumed_run_takes_its_saved_config_with_the_command_line_on_top(tmp_path):
    saved = parse_config(MetaTTRLConfig, ["trainer.steps=6", "grpo.lr=0.01", "run.seed=3"], "")
    (tmp_path / "config.yaml").write_text(OmegaConf.to_yaml(saved))
    cfg = meta_ttrl.load_config([f"run.dir={tmp_path}", "run.resume=auto", "trainer.steps=9"])  # extend the run
    assert (cfg.trainer.steps, cfg.grpo.lr, cfg.run.seed, cfg.run.resume) == (9, 0.01, 3, "auto")


def test_a_used_run_dir_needs_resume_and_resume_needs_a_run_dir(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 0}\n')
    with pytest.raises(UserError, match="already holds a run"):
        meta_ttrl.main(SHORT + [f"run.dir={tmp_path}"])
    with pytest.raises(UserError, match="run.resume needs run.dir"):
        meta_ttrl.main(SHORT + ["run.resume=auto"])


def test_resume_skips_a_tampered_newest_checkpoint_naming_the_file(tmp_path, capsys):
    from driver.progress import checkpoint_to_resume
    from learners import checkpoint

    for step in (2, 4):
        checkpoint.save(tmp_path / "checkpoints", step, {"driver": ({"x": torch.ones(2)}, {"step": step})}, keep=3)
    bad = tmp_path / "checkpoints" / "step_000004" / "driver.safetensors"
    bad.write_bytes(bad.read_bytes()[:-3])  # truncated
    found = checkpoint_to_resume(OmegaConf.create({"resume": "auto"}), tmp_path)
    assert found.name == "step_000002"
    assert f"{bad}: checksum mismatch" in capsys.readouterr().out
    with pytest.raises(UserError, match="checksum mismatch"):
        checkpoint_to_resume(OmegaConf.create({"resume": str(bad.parent)}), tmp_path)
