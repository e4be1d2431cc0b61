"""`ray job submit` of the real main job against a `ray start --head` node on 127.0.0.1, then the dashboard's
REST API shows the job and its role-named actors (issue: Meta-TTRL as a Ray job)."""
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from actors.weight_sync import free_port

ROOT = Path(__file__).resolve().parents[1]
SHORT = ["trainer.steps=1", "data.prompts_per_step=2", "rollout.group_size=2", "data.eval_max_prompts=1",
         "data.eval_samples=1", "data.heldout=", "run.grid_prompts=0", "run.wandb=disabled"]


def _rest(url: str, token: str):
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as reply:
        return json.loads(reply.read())


@pytest.fixture
def head_node(tmp_path):
    """A head node of its own (own ports, own auth token), stopped by ending `ray start --block`."""
    bin_dir = Path(sys.executable).parent
    token = secrets.token_hex(32)
    (tmp_path / "token").write_text(token)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env |= {"PATH": f"{bin_dir}:{env['PATH']}", "RAY_AUTH_MODE": "token", "GLOO_SOCKET_IFNAME": "lo",
            "RAY_AUTH_TOKEN_PATH": str(tmp_path / "token"), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    dashboard = f"http://127.0.0.1:{free_port()}"
    pointer = Path("/tmp/ray/ray_current_cluster")  # `ray start` points it at the newest head; put it back after
    previous = pointer.read_text() if pointer.exists() else None
    # every port its own: the test session's cluster already holds Ray's defaults (e.g. the agent's 52365)
    ports = [f"--{name}={free_port()}" for name in ("port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                                                     "metrics-export-port", "runtime-env-agent-port",
                                                     "ray-client-server-port", "node-manager-port",
                                                     "object-manager-port")]
    head = subprocess.Popen([bin_dir / "ray", "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                             "--dashboard-host", "127.0.0.1", f"--dashboard-port={dashboard.rsplit(':', 1)[1]}",
                             *ports, "--num-cpus", "4", "--disable-usage-stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 90
        while True:
            try:
                _rest(f"{dashboard}/api/version", token)
                break
            except OSError:
                if time.time() > deadline or head.poll() is not None:
                    raise RuntimeError("the head node's dashboard did not come up")
                time.sleep(1)
        yield dashboard, token, env
    finally:
        head.send_signal(signal.SIGTERM)
        head.wait(60)
        if previous is None:
            pointer.unlink(missing_ok=True)
        else:
            pointer.write_text(previous)


def test_ray_job_submit_runs_the_main_job_and_the_dashboard_shows_its_actors(head_node, tmp_path):
    dashboard, token, env = head_node
    command = [Path(sys.executable).parent / "ray", "job", "submit", "--address", dashboard, "--working-dir",
               str(ROOT), "--", "python", "launch/meta_ttrl.py", *SHORT, f"run.dir={tmp_path / 'run'}"]
    for _ in range(10):  # the dashboard answers before the head's job agent does ("please try again later")
        submit = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if "No available agent" not in submit.stderr:
            break
        time.sleep(2)
    assert submit.returncode == 0 and "succeeded" in submit.stdout, submit.stdout[-3000:] + submit.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 1 and "after" in summary

    jobs = [j for j in _rest(f"{dashboard}/api/jobs/", token) if j["entrypoint"].startswith("python launch/meta")]
    assert len(jobs) == 1 and jobs[0]["status"] == "SUCCEEDED"
    actors = _rest(f"{dashboard}/api/v0/actors?limit=1000", token)["data"]["result"]["result"]
    names = {a["name"] for a in actors if a.get("job_id") == jobs[0]["job_id"]}
    assert {"rollout-0", "introspector-0", "learner-0"} <= names
