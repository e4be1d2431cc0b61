"""The job on a simulated cluster of three worker nodes (ray.cluster_utils.Cluster, loopback only): roles pinned
to nodes by custom resources, the weight sync across nodes. (A node removed mid-run is not tested yet: the job
stalled after `remove_node` in the one attempt here, undiagnosed; see the issue's note.) The job runs as its own process (`launch/meta_ttrl.py run.ray_address=...`), as `ray job submit`
would start it, so the test session's shared local cluster is left alone."""
import json
import os
import subprocess
import sys
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
