"""Actor failures during a real run: a killed rollout, introspector and learner are restarted by Ray and brought
up to date by the driver; the run finishes, every step is logged once and applied once, restarts are counted."""
import json
import threading
import time

import pytest
import ray

from launch import meta_ttrl
from test_meta_ttrl import SHORT


def logged(path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


def kill_when(metrics, plan: list[tuple[int, str]], errors: list) -> None:
    """Kill each named actor (restart allowed) once metrics.jsonl has that many lines."""
    try:
        for lines, name in plan:
            deadline = time.time() + 300
            while logged(metrics) < lines:
                assert time.time() < deadline, f"the run never logged {lines} steps"
                time.sleep(0.05)
            ray.kill(ray.get_actor(name), no_restart=False)
    except Exception as e:  # surfaces in the test, not lost in the thread
        errors.append(e)


PLANS = {  # a rollout dies (new process group, the weights re-sent), then the learner after the step-2
    # checkpoint (a rollback): the default suite's; the learner alone and an introspector's restart (rubric cache
    # restored from the checkpoint) are the slow set's (~25-35 s each), to keep the default suite short
    "rollout_and_learner": [(1, "rollout-0"), (3, "learner-0")],
    "learner": pytest.param([(3, "learner-0")], marks=pytest.mark.slow),
    "introspector": pytest.param([(1, "introspector-0")], marks=pytest.mark.slow),
}


@pytest.mark.parametrize("plan", list(PLANS.values()), ids=list(PLANS))
def test_killed_actors_restart_and_the_run_finishes_with_each_step_once(ray_local, tmp_path, capsys, plan):
    errors: list = []
    killer = threading.Thread(target=kill_when, args=(tmp_path / "metrics.jsonl", plan, errors), daemon=True)
    killer.start()
    meta_ttrl.main(SHORT + ["trainer.steps=5", "trainer.async_mode=true", "run.checkpoint_every=2",
                            "run.wandb=disabled", "data.heldout=", "run.grid_prompts=0", f"run.dir={tmp_path}"])
    killer.join(timeout=10)
    assert not errors and not killer.is_alive()
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == list(range(5))
    assert [m["version"] for m in lines] == list(range(1, 6))  # no step applied twice, none lost
    killed = [name for _, name in plan]
    assert lines[-1]["restarts"] == {name.rsplit("-", 1)[0]: 1 for name in killed}
    out = capsys.readouterr().out
    assert all(f"{name} restarted" in out for name in killed)
    if "learner-0" in killed:
        assert "resumed from" in out and "step_000002" in out  # the learner's death rolled back to the checkpoint
    assert json.loads((tmp_path / "summary.json").read_text())["steps"] == 5
