"""The job on a simulated cluster of three worker nodes (ray.cluster_utils.Cluster, loopback only): roles pinned
to nodes by custom resources, the weight sync across nodes, and a rollout node removed mid-run (recovered onto the
other node when it has room; else one line, exit code 4, and `run.resume=auto` goes on once a node is back). The
job runs as its own process (`launch/meta_ttrl.py run.ray_address=...`), as `ray job submit` would start it, so
the test session's shared local cluster is left alone."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data.prompts_per_step=2", "rollout.group_size=2", "data.eval_max_prompts=2", "data.eval_samples=1",
        "run.grid_prompts=0", "run.wandb=disabled", "rollout.actors=2",
        "resources.rollout.node_resource=rollout_node", "resources.learner.node_resource=trainer_node",
        "resources.introspector.node_resource=trainer_node"]


@pytest.fixture
def cluster():
    from ray.cluster_utils import Cluster

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1",
                                                      "include_dashboard": False})
    yield c
    c.shutdown()


def add(c, cpus: int, resource: str):
    return c.add_node(num_cpus=cpus, resources={resource: 1}, node_ip_address="127.0.0.1")


def job(c, run_dir: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0", GLOO_SOCKET_IFNAME="lo", RAY_ADDRESS="")
    return subprocess.Popen([sys.executable, str(ROOT / "launch" / "meta_ttrl.py"), f"run.ray_address={c.address}",
                             f"run.dir={run_dir}", *TINY, *extra], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow  # ~1 min: a cluster of four raylets and a job process on 2 cores
def test_roles_pinned_to_nodes_and_the_sync_crosses_them(cluster, tmp_path):
    rollout_nodes = {add(cluster, 1, "rollout_node").node_id, add(cluster, 1, "rollout_node").node_id}
    trainer_node = add(cluster, 2, "trainer_node").node_id
    proc = job(cluster, tmp_path, "trainer.steps=3", "resources.rollout.strategy=STRICT_SPREAD")
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 0, out[-3000:]
    placed = json.loads((tmp_path / "placement.json").read_text())
    assert {placed["rollout-0"]["node_id"], placed["rollout-1"]["node_id"]} == rollout_nodes  # one per node
    assert placed["learner-0"]["node_id"] == placed["introspector-0"]["node_id"] == trainer_node
    # every step's broadcast reached both rollout nodes with the learner's checksum (a mismatch stops the run)
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3 and (tmp_path / "summary.json").is_file()


LOSS = ["trainer.steps=8", "run.checkpoint_every=2", "sync.timeout_s=15", "trainer.restart_timeout_s=40"]


def remove_a_rollout_node_after(c, nodes: dict, run_dir: Path, steps: int, proc: subprocess.Popen) -> str:
    """Wait for `steps` metrics lines, then remove the node rollout-0 is on; returns its node id."""
    deadline = time.time() + 300
    metrics = run_dir / "metrics.jsonl"
    while not (metrics.is_file() and len(metrics.read_text().splitlines()) >= steps):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0][-3000:]
        time.sleep(0.5)
    lost = json.loads((run_dir / "placement.json").read_text())["rollout-0"]["node_id"]
    c.remove_node(nodes[lost])
    return lost


@pytest.mark.slow  # ~2 min: four raylets, a job, a node lost and the sync's timeout waited out
def test_a_rollout_node_lost_mid_run_recovers_onto_the_other(cluster, tmp_path):
    nodes = {n.node_id: n for n in (add(cluster, 2, "rollout_node"), add(cluster, 2, "rollout_node"))}
    add(cluster, 2, "trainer_node")
    proc = job(cluster, tmp_path, *LOSS, "resources.rollout.strategy=SPREAD")
    lost = remove_a_rollout_node_after(cluster, nodes, tmp_path, 3, proc)
    out = proc.communicate(timeout=400)[0]
    assert proc.returncode == 0, out[-3000:]
    assert "rollout-0 restarted" in out
    placed = json.loads((tmp_path / "placement.json").read_text())  # rewritten after the recovery
    survivor = next(n for n in nodes if n != lost)
    assert placed["rollout-0"]["node_id"] == placed["rollout-1"]["node_id"] == survivor
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == list(range(8)) and lines[-1]["restarts"] == {"rollout": 1}


@pytest.mark.slow  # ~3 min: as above, then the run resumed on a new node
def test_a_lost_node_without_room_left_is_one_line_and_resume_goes_on(cluster, tmp_path):
    nodes = {n.node_id: n for n in (add(cluster, 1, "rollout_node"), add(cluster, 1, "rollout_node"))}
    add(cluster, 2, "trainer_node")
    proc = job(cluster, tmp_path, *LOSS, "resources.rollout.strategy=STRICT_SPREAD")
    remove_a_rollout_node_after(cluster, nodes, tmp_path, 3, proc)
    out = proc.communicate(timeout=400)[0]
    assert proc.returncode == 4, out[-3000:]
    last = [line for line in out.splitlines() if line.startswith("error: ")][-1]
    assert "rollout-0 is not answering" in last and "'rollout_node': 0.001" in last and "run.resume=auto" in last
    add(cluster, 1, "rollout_node")  # a node comes back: the run goes on from its newest checkpoint
    proc = job(cluster, tmp_path, *LOSS, "resources.rollout.strategy=STRICT_SPREAD", "run.resume=auto")
    out = proc.communicate(timeout=400)[0]
    assert proc.returncode == 0 and "resumed from" in out, out[-3000:]
    assert [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == list(range(8))
