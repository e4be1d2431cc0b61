"""The DeepSpeed learner strategy (issue 4): ZeRO-2 and ZeRO-3 over two learner ranks inside Ray actors on CPU
(gloo), sharing the job's process group with the rollout actors. Both must give the update the torch strategy
gives (same AdamW, clipping and gradient average); under ZeRO-3 each rank holds half of every parameter and the
broadcast gathers them bucket by bucket; checkpoints restore exactly. (The main job with the ZeRO-1 learner:
tests/test_janus_pro_layout.py, through launch/gpu_smoke.py.)"""

import pytest
import torch

from test_meta_ttrl import started_job

pytest.importorskip("deepspeed", reason="make install installs the deepspeed extra")


ZERO3_ALL_PARTITIONED = ["trainer.strategy=deepspeed", "trainer.zero_stage=3",
                         # tiny parameters stay whole below DeepSpeed's default threshold (1e5 elements)
                         "trainer.deepspeed.zero_optimization.stage3_param_persistence_threshold=0"]


def one_update(ray_local, overrides: list[str]) -> tuple[dict, dict]:
    """Weights after one GRPO step and one sync (equal on both learner ranks and the rollout actor), and the
    sizes of what learner rank 0's checkpoint holds."""
    with started_job(["trainer.learners=2"] + overrides, 2) as (job, metas):
        parts = job.rollout([m["prompt"] for m in metas])
        stats = job.update(parts, job.judge(parts))
        first, second, rollout = ray_local.get([job.learners[0].weights.remote(), job.learners[1].weights.remote(),
                                                job.rollouts[0].weights.remote()])
        tensors, _ = ray_local.get(job.learners[0].state.remote())
    assert stats["updates"] >= 1
    assert all(torch.equal(first[n], second[n]) and torch.equal(first[n], rollout[n]) for n in first)
    return first, {k: v.numel() for k, v in tensors.items()}


@pytest.fixture(scope="module")
def torch_update(ray_local):
    plain, _ = one_update(ray_local, ["trainer.strategy=torch"])
    from models.janus import JanusAdapter
    from launch.configs.meta_ttrl import ModelConfig
    initial = JanusAdapter.from_pretrained(ModelConfig().path).weights()
    return plain, max(float((plain[n] - initial[n]).abs().max()) for n in plain)


@pytest.mark.slow  # measured 1.5e-8 on a change of 1.0e-3; the default suite runs ZeRO-3 (the harder case)
def test_zero2_over_two_ranks_matches_the_torch_strategy(ray_local, torch_update):
    plain, moved = torch_update
    zero2, _ = one_update(ray_local, ["trainer.strategy=deepspeed", "trainer.zero_stage=2"])
    gap2 = max(float((plain[n] - zero2[n]).abs().max()) for n in plain)
    print(f"\nlargest weight change {moved:.3e}; largest ZeRO-2 vs torch difference {gap2:.3e}")
    assert moved > 1e-4 and gap2 < 1e-3 * moved, (moved, gap2)


def test_zero3_over_two_ranks_matches_the_torch_strategy(ray_local, torch_update):
    plain, moved = torch_update
    zero3, held = one_update(ray_local, ZERO3_ALL_PARTITIONED)
    gap3 = max(float((plain[n] - zero3[n]).abs().max()) for n in plain)
    diff3 = torch.cat([(plain[n] - zero3[n]).abs().flatten() for n in plain])
    off3 = float((diff3 > 1e-3 * moved).float().mean())
    whole = sum(t.numel() for t in plain.values())
    shard = sum(v for k, v in held.items() if k.startswith("param_shard."))
    print(f"\nlargest weight change {moved:.3e}; largest ZeRO-3 vs torch difference {gap3:.3e}; ZeRO-3 rank 0 holds "
          f"{shard} of {whole} trained elements; {off3:.1e} of them differ by > 1e-3 of it")
    # ZeRO-3 reduces gradients in another order (reduce-scatter of partitions); on AdamW's first step an element's
    # update is lr g / (|g| + eps), so elements whose gradient is near eps amplify those last-bit differences:
    # measured 75 of 1.5M elements above 1e-6, the rest within 7.5e-9
    assert moved > 1e-4 and off3 < 1e-4 and gap3 < 0.05 * moved, (moved, off3, gap3)
    assert not any(k.startswith("param.") for k in held)  # rank 0 never held the whole weights at rest
    assert whole / 2 <= shard <= whole / 2 + 2 * len(plain)  # half of each parameter (each rounded up)


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_trainer_state_round_trips_through_a_checkpoint(tmp_path, stage):
    """A DeepSpeed learner's checkpoint (weights or this rank's weight shard, AdamW shard, fp32 masters,
    scheduler) restores exactly: one rank, gloo, in this process."""
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
        overrides = {"zero_optimization": {"stage3_param_persistence_threshold": 0}} if stage == 3 else None
        first = GRPOTrainer(adapter(), cfg, 3.0, 1.0, seed=0, strategy="deepspeed", zero_stage=stage,
                            ds_overrides=overrides)
        first.optim.attach(groups, first.a.module)
        tokens = torch.randint(0, 16, (2, first.a.n_image_tokens), generator=torch.Generator().manual_seed(0))

        def loss(trainer):  # through the model's forward, as GRPO's loss is (ZeRO-3 fetches weights in its hooks)
            return -trainer.a.image_logprobs(["a red circle", "two blue squares"], tokens, 3.0, 1.0).mean()

        def weights(trainer):
            with trainer.optim.gathered(trainer.params):
                return [p.detach().clone() for p in trainer.params]

        first.optim.step(loss(first))
        checkpoint.save(tmp_path, 1, {"learner-0": first.state()}, keep=1)
        second = GRPOTrainer(adapter(), cfg, 3.0, 1.0, seed=0, strategy="deepspeed", zero_stage=stage,
                            ds_overrides=overrides)
        second.optim.attach(groups, second.a.module)
        second.load_state(checkpoint.load(tmp_path / "step_000001")[1]["learner-0"])
        assert all(torch.equal(a, b) for a, b in zip(weights(first), weights(second)))
        assert second.optim.lr() == first.optim.lr() == pytest.approx(1e-2 * 2 / 4)
        # the same next step from both: the AdamW moments and fp32 shards came back too
        for trainer in (first, second):
            trainer.optim.step(loss(trainer))
        assert all(torch.allclose(a, b, atol=1e-7) for a, b in zip(weights(first), weights(second)))
    finally:
        dist.destroy_process_group()
