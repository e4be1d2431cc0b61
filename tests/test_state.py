"""Checkpointed state restores exactly: RNGs, optimizer + scheduler, the prompt stream, the driver's progress."""
import random

import numpy as np
import pytest
import torch

from learners.state import load_optimizer_state, load_rng_state, optimizer_state, rng_state


def draws(gen):
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random(), torch.rand(3, generator=gen).tolist()


def test_rng_states_restore_every_generator():
    gen = torch.Generator().manual_seed(7)
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    draws(gen)
    saved = rng_state(gen)
    expected = draws(gen)
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    other = torch.Generator().manual_seed(99)
    load_rng_state(saved, other)
    assert draws(other) == expected


def train(model, opt, sched, steps, seed):
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        loss = model(torch.randn(4, 3, generator=g)).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()


def make(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    return model, opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda n: min(1.0, (n + 1) / 4))


def test_optimizer_and_scheduler_resume_bitwise():
    model, opt, sched = make()
    train(model, opt, sched, 2, seed=1)
    tensors, rest = optimizer_state(opt)  # views of live tensors (written to disk at once in a checkpoint)
    saved = ({k: v.clone() for k, v in tensors.items()}, rest), sched.state_dict(), \
        {k: v.clone() for k, v in model.state_dict().items()}
    train(model, opt, sched, 3, seed=2)
    uninterrupted = model.state_dict()

    model2, opt2, sched2 = make(seed=5)  # different init: everything must come from the checkpoint
    model2.load_state_dict(saved[2])
    load_optimizer_state(opt2, saved[0])
    sched2.load_state_dict(saved[1])
    assert int(opt2.state_dict()["state"][0]["step"]) == 2 and sched2.last_epoch == 2
    train(model2, opt2, sched2, 3, seed=2)
    assert all(torch.equal(uninterrupted[k], model2.state_dict()[k]) for k in uninterrupted)
    # and without the optimizer state the continuation differs: the test can tell
    model3, opt3, sched3 = make(seed=5)
    model3.load_state_dict(saved[2])
    train(model3, opt3, sched3, 3, seed=2)
    assert not all(torch.equal(uninterrupted[k], model3.state_dict()[k]) for k in uninterrupted)


def test_trainer_state_round_trips_through_a_checkpoint(tiny_adapter, tmp_path):
    from omegaconf import OmegaConf

    from launch.configs.meta_ttrl import GRPOConfig
    from learners import checkpoint
    from learners.grpo_trainer import GRPOTrainer

    cfg = OmegaConf.structured(GRPOConfig(warmup_steps=3))
    trainer = GRPOTrainer(tiny_adapter, cfg, 3.0, 1.0, seed=0)
    p0 = trainer.params[0]
    p0.grad = torch.ones_like(p0)
    trainer.optim.opt.step(), trainer.optim.sched.step()
    torch.randperm(5, generator=trainer.gen)
    checkpoint.save(tmp_path, 1, {"learner-0": trainer.state()}, keep=1)
    expected = {"lr": trainer.optim.sched.get_last_lr(), "perm": torch.randperm(9, generator=trainer.gen),
                "avg": trainer.optim.opt.state[p0]["exp_avg"].clone(), "w": p0.detach().clone()}
    with torch.no_grad():
        p0.add_(1.0)
    trainer2 = GRPOTrainer(tiny_adapter, cfg, 3.0, 1.0, seed=123)
    trainer2.load_state(checkpoint.load(tmp_path / "step_000001")[1]["learner-0"])
    assert torch.equal(trainer2.params[0], expected["w"]) and trainer2.optim.sched.get_last_lr() == expected["lr"]
    assert torch.equal(trainer2.optim.opt.state[trainer2.params[0]]["exp_avg"], expected["avg"])
    assert torch.equal(torch.randperm(9, generator=trainer2.gen), expected["perm"])
    assert expected["lr"][0] == pytest.approx(cfg.lr * 2 / 4)  # one step into a 3-step warm-up


def test_prompt_stream_continues_where_it_stopped():
    from driver.progress import PromptStream

    a = PromptStream([f"p{i}" for i in range(5)], seed=3)
    a.next(7)  # into the second epoch
    b = PromptStream([f"p{i}" for i in range(5)], seed=0)
    b.load_state(a.state())
    assert b.next(9) == a.next(9) and b.position == a.position == 16


def test_adamw_takes_the_configured_betas_and_eps():
    from launch.configs.meta_ttrl import GRPOConfig
    from learners.optim import adamw_with_warmup
    from driver.cli import UserError

    w = torch.nn.Parameter(torch.zeros(2))
    opt, _ = adamw_with_warmup([w], GRPOConfig(lr=2.5e-5, adam_beta1=0.9, adam_beta2=0.95, adam_eps=1e-15))
    assert opt.defaults["betas"] == (0.9, 0.95) and opt.defaults["eps"] == 1e-15
    # by hand, one step from zero moments: m = 0.1 g, v = 0.05 g^2, bias-corrected m/sqrt(v) = g/|g| -> w -= lr
    w.grad = torch.tensor([2.0, -3.0])
    opt.step()
    assert w.tolist() == pytest.approx([-2.5e-5, 2.5e-5])
    with pytest.raises(UserError, match="grpo.adam_beta1 and grpo.adam_beta2 lie in"):
        GRPOConfig(adam_beta2=1.0)
