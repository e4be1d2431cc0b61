"""The job's weight versions on a real local Ray cluster: after a sync every rollout actor holds the learner's
weights, samples record the version that drew them, and the learner drops samples older than max_staleness."""
import pytest
import torch

from test_meta_ttrl import started_job


@pytest.fixture(scope="module")
def two_rollout_job(ray_local):
    """One job for the tests of the sync and of staleness (a job's start costs ~10 s): 2 rollout actors, samples
    at most one version old. Its own module: a cluster holds one job's named actors at a time, and a
    module-scoped job lives until its module ends."""
    with started_job(["rollout.actors=2", "trainer.async_mode=true", "trainer.max_staleness=1"], 4) as job:
        yield job


def test_after_a_sync_every_rollout_actor_holds_the_learner_weights(ray_local, two_rollout_job):
    job, metas = two_rollout_job
    start = ray_local.get(job.learners[0].state.remote())[1]["version"]
    before = ray_local.get(job.rollouts[1].weights.remote())
    parts = job.rollout([m["prompt"] for m in metas[:2]])
    stats = job.update(parts, job.judge(parts))
    learner = ray_local.get(job.learners[0].weights.remote())
    assert stats["version"] == start + 1 and stats["updates"] == 1
    assert any(not torch.equal(before[n], learner[n]) for n in learner)  # the step changed the weights
    for rollout in job.rollouts:
        held = ray_local.get(rollout.weights.remote())
        assert held.keys() == learner.keys() and all(torch.equal(held[n], learner[n]) for n in learner)
    batch = ray_local.get(job.rollout([metas[0]["prompt"]])[0])
    assert batch.version == start + 1  # samples record the weights that produced them


def test_learner_drops_samples_older_than_max_staleness(ray_local, two_rollout_job):
    job, metas = two_rollout_job
    prompts = [m["prompt"] for m in metas[:2]]
    old = job.rollout(prompts)  # the current version v
    for _ in range(2):
        parts = job.rollout(prompts)
        assert job.update(parts, job.judge(parts))["updates"] == 1
    v = ray_local.get(old[0]).version
    stats = job.update(old, job.judge(old))  # the learner is at version v + 2: these are 2 versions old
    assert stats["updates"] == 0 and stats["stale_dropped"] == 2 * 2 and stats["staleness_max"] == 2
    assert stats["version"] == v + 2  # nothing trained, nothing new to publish
