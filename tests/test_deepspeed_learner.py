"""The DeepSpeed learner strategy (issue 4): ZeRO-1/2 over two learner ranks inside Ray actors on CPU (gloo),
sharing the job's process group with the rollout actors. ZeRO-2 must give the update the torch strategy gives
(same AdamW, clipping and gradient average); its checkpoint restores exactly. (The main job with the ZeRO-1
learner: tests/test_janus_pro_layout.py, through launch/gpu_smoke.py.)"""

import pytest
import torch

from test_meta_ttrl import started_job

pytest.importorskip("deepspeed", reason="make install installs the deepspeed extra")


def one_update(ray_local, overrides: list[str]) -> dict:
    with started_job(["trainer.learners=2"] + overrides, 2) as (job, metas):
        parts = job.rollout([m["prompt"] for m in metas])
        stats = job.update(parts, job.judge(parts))
        first, second, rollout = ray_local.get([job.learners[0].weights.remote(), job.learners[1].weights.remote(),
                                                job.rollouts[0].weights.remote()])
    assert stats["updates"] >= 1
    assert all(torch.equal(first[n], second[n]) and torch.equal(first[n], rollout[n]) for n in first)
    return first


def test_zero2_over_two_ranks_matches_the_torch_strategy(ray_local):
    plain = one_update(ray_local, ["trainer.strategy=torch"])
    zero2 = one_update(ray_local, ["trainer.strategy=deepspeed", "trainer.zero_stage=2"])
    from models.janus import JanusAdapter
    from launch.configs.meta_ttrl import ModelConfig
    initial = JanusAdapter.from_pretrained(ModelConfig().path).weights()
    moved = max(float((plain[n] - initial[n]).abs().max()) for n in plain)
    gap = max(float((plain[n] - zero2[n]).abs().max()) for n in plain)
    print(f"\nlargest weight change {moved:.3e}; largest ZeRO-2 vs torch difference {gap:.3e}")
    assert moved > 1e-4 and gap < 1e-3 * moved, (moved, gap)  # same samples, same update, up to float rounding


def test_zero2_trainer_state_round_trips_through_a_checkpoint(tmp_path):
    """A DeepSpeed learner's checkpoint (weights, this rank's AdamW shard, scheduler) restores exactly: one rank,
    gloo, in this process."""
    import torch.distributed as dist
    from conftest import make_tiny_adapter
    from omegaconf import OmegaConf

    from actors.weight_sync import Groups, free_port
    from launch.configs.meta_ttrl import GRPOConfig
    from learners import checkpoint
    from learners.grpo_trainer import GRPOTrainer

    def adapter():
        return make_tiny_adapter(layers=1)

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        groups = Groups(0, dist.new_group([0]), dist.new_group([0]), dist.new_group([0]), "gloo")
        cfg = OmegaConf.structured(GRPOConfig(warmup_steps=3, lr=1e-2))
        first = GRPOTrainer(adapter(), cfg, 3.0, 1.0, seed=0, strategy="deepspeed", zero_stage=2)
        first.optim.attach(groups, first.a.module)
        first.optim.step(sum(p.square().sum() for p in first.params))
        checkpoint.save(tmp_path, 1, {"learner-0": first.state()}, keep=1)
        second = GRPOTrainer(adapter(), cfg, 3.0, 1.0, seed=0, strategy="deepspeed", zero_stage=2)
        second.optim.attach(groups, second.a.module)
        second.load_state(checkpoint.load(tmp_path / "step_000001")[1]["learner-0"])
        assert all(torch.equal(a, b) for a, b in zip(first.params, second.params))
        assert second.optim.lr() == first.optim.lr() == pytest.approx(1e-2 * 2 / 4)
        # the same next step from both: the AdamW moments and fp32 shards came back too
        for trainer in (first, second):
            trainer.optim.step(sum(p.square().sum() for p in trainer.params))
        assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(first.params, second.params))
    finally:
        dist.destroy_process_group()
