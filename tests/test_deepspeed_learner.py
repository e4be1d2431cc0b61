"""The DeepSpeed learner strategy (issue 4): ZeRO-2 and ZeRO-3 over two learner ranks inside Ray actors on CPU
(gloo), sharing the job's process group with the rollout actors. Both must give the update the torch strategy
gives (same AdamW, clipping and gradient average); under ZeRO-3 each rank holds half of every parameter and the
broadcast gathers them bucket by bucket; checkpoints restore exactly. (The main job with the ZeRO-1 learner:
tests/test_janus_pro_layout.py, through tests/gpu_smoke.py.)"""

import pytest
import torch

from test_meta_ttrl import started_job

pytest.importorskip("deepspeed", reason="make install installs the deepspeed extra")


ZERO3_ALL_PARTITIONED = ["trainer.strategy=deepspeed", "trainer.zero_stage=3",
                         # tiny parameters stay whole below DeepSpeed's default threshold (1e5 elements)
                         "trainer.deepspeed.zero_optimization.stage3_param_persistence_threshold=0"]
# Like with like. On AdamW's first step an element moves by lr g / (|g| + eps). With torch's eps (1e-8) that is
# lr sign(g) wherever |g| >> eps, and an element whose gradient is near eps turns a last-bit difference of the
# reduction order into a move of up to lr (measured with eps 1e-8: a largest gap of 5.65e-5 = 0.057 of the largest
# move on one host, the closing note of issue 21 has this host's). With eps above every gradient the move is
# ~lr g / eps, smooth in g: the strategies are compared on the gradient they reduce, where fp32 order differences
# are relative ~1e-7, and a scale error (a sum for a mean) would double every move, which the sign-like update
# hides. Measured gaps here (issue 21's note): 1.6e-5 (ZeRO-2) and 3.2e-5 (ZeRO-3) of the largest move, from
# elements whose gradient nearly cancels (an absolute order difference is large beside a small sum); a scale error
# would be ~1 of it.
SMOOTH_ADAM = ["grpo.adam_eps=1e-2"]
BOUND = 1e-3  # of the largest move: 30x the ZeRO-3 gap measured


def one_update(ray_local, overrides: list[str]) -> tuple[dict, dict]:
    """Weights after one GRPO step and one sync (equal on both learner ranks and the rollout actor), and the
    sizes of what learner rank 0's checkpoint holds."""
    with started_job(["trainer.learners=2"] + SMOOTH_ADAM + overrides, 2) as (job, metas):
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
    from launch.configs.meta_ttrl import ModelConfig
    from models.janus import JanusAdapter
    return plain, JanusAdapter.from_pretrained(ModelConfig().path).weights()


def compare(plain: dict, initial: dict, other: dict, label: str) -> tuple[float, float]:
    """(largest move of the torch strategy's update, largest difference of `other` from it)."""
    moved = max(float((plain[n] - initial[n]).abs().max()) for n in plain)
    gap = max(float((plain[n] - other[n]).abs().max()) for n in plain)
    print(f"\nlargest weight change {moved:.3e}; largest {label} vs torch difference {gap:.3e} ({gap / moved:.1e} of "
          f"it; bound {BOUND:.0e})")
    return moved, gap


@pytest.mark.slow  # the default suite runs ZeRO-3 (the harder case)
def test_zero2_over_two_ranks_matches_the_torch_strategy(ray_local, torch_update):
    zero2, _ = one_update(ray_local, ["trainer.strategy=deepspeed", "trainer.zero_stage=2"])
    moved, gap = compare(*torch_update, zero2, "ZeRO-2")
    assert moved > 1e-4 and gap < BOUND * moved, (moved, gap)


def test_zero3_over_two_ranks_matches_the_torch_strategy(ray_local, torch_update):
    zero3, held = one_update(ray_local, ZERO3_ALL_PARTITIONED)
    moved, gap = compare(*torch_update, zero3, "ZeRO-3")
    plain = torch_update[0]
    whole = sum(t.numel() for t in plain.values())
    shard = sum(v for k, v in held.items() if k.startswith("param_shard."))
    print(f"ZeRO-3 rank 0 holds {shard} of {whole} trained elements")
    assert moved > 1e-4 and gap < BOUND * moved, (moved, gap)
    assert not any(k.startswith("param.") for k in held)  # rank 0 never held the whole weights at rest
    assert whole / 2 <= shard <= whole / 2 + 2 * len(plain)  # half of each parameter (each rounded up)


@pytest.mark.parametrize("stage, lora_rank", [(2, 0), (3, 0), (2, 4), (3, 4)])
def test_deepspeed_trainer_state_round_trips_through_a_checkpoint(tmp_path, stage, lora_rank):
    """A DeepSpeed learner's checkpoint (weights or this rank's weight shard, AdamW shard, fp32 masters,
    scheduler) restores exactly: one rank, gloo, in this process; also when it trains LoRA adapters only."""
    import torch.distributed as dist
    from conftest import make_tiny_adapter
    from omegaconf import OmegaConf

    from actors.weight_sync import Groups, free_port
    from launch.configs.meta_ttrl import GRPOConfig
    from learners import checkpoint
    from learners.grpo_trainer import GRPOTrainer

    def adapter():
        from models import lora
        return lora.with_lora(make_tiny_adapter(layers=1), lora.LoraSettings(rank=lora_rank, alpha=8), "")

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
