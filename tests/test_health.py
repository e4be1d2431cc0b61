"""Integrity checks: health counts by hand, the guard's stop rule, NaN-safe advantages, sync checksums."""
import numpy as np
import pytest
import torch

from actors.weight_sync import SyncError, check_sync, fingerprint
from learners.grpo import group_advantages
from rollout.health import Guard, RunUnhealthy, batch_health, violations


def images(colours_per_image):
    """One 4x4 image per entry: a list of colours painted in rows (one colour = a degenerate image)."""
    out = np.zeros((len(colours_per_image), 4, 4, 3), np.uint8)
    for i, colours in enumerate(colours_per_image):
        for r in range(4):
            out[i, r] = colours[r % len(colours)]
    return out


def test_batch_health_counts_by_hand():
    rewards = torch.tensor([0.5, 0.5, 0.2, float("nan"), 0.1, 0.9])  # groups of 2: flat, broken, fine
    imgs = images([[(255, 255, 255)], [(255, 0, 0), (255, 255, 255)], [(0, 0, 0)], [(1, 2, 3), (1, 2, 4)],
                   [(9, 9, 9)], [(9, 9, 9), (0, 0, 0)]])
    h = batch_health(rewards, 2, imgs, [True, True, False, False, False, False])
    assert h == {"samples": 6, "groups": 3, "nonfinite_rewards": 1, "flat_groups": 1, "degenerate_images": 3,
                 "fallback_rubrics": 2}


def test_violations_are_fractions_over_the_window():
    window = [{"samples": 8, "groups": 4, "degenerate_images": 2, "flat_groups": 4},
              {"samples": 8, "groups": 4, "degenerate_images": 7, "flat_groups": 0}]
    # degenerate 9/16 = 56% > 50%; flat 4/8 = 50% is not > 50%
    found = violations(window, {"degenerate_images": 0.5, "flat_groups": 0.5})
    assert len(found) == 1 and found[0].startswith("56% of images were a single colour over the last 2 steps")


def test_guard_stops_only_once_a_full_window_is_over_the_limit():
    guard = Guard({"nonfinite_rewards": 0.1}, window=2)
    guard.check({"samples": 4, "nonfinite_rewards": 4})  # 100%, but one step is not a window yet
    with pytest.raises(RunUnhealthy, match="20% of rewards were NaN or inf over the last 2 steps"):
        guard.check({"samples": 16, "nonfinite_rewards": 0})  # 4/20 = 20% > 10%
    lenient = Guard({"nonfinite_rewards": 0.25}, window=2)
    for h in ({"samples": 4, "nonfinite_rewards": 4}, {"samples": 16}, {"samples": 16}):
        lenient.check(h)  # 20% <= 25%, then the window slides past the bad step
    with pytest.raises(ValueError, match="unknown health counts"):
        Guard({"nan": 0.1}, window=1)


def test_a_group_with_a_nan_reward_gets_no_advantage():
    adv, flat = group_advantages(torch.tensor([1.0, float("nan"), 0.0, 2.0]), 2)
    # group 1 is dropped; group 2: mean 1, sample std sqrt(2) -> -1/sqrt(2), +1/sqrt(2)
    assert torch.allclose(adv, torch.tensor([0.0, 0.0, -2 ** -0.5, 2 ** -0.5])) and flat == 1


def test_fingerprint_sees_any_changed_bit_and_the_sync_check_names_the_actor():
    params = [torch.randn(3, 4), torch.randn(5).to(torch.bfloat16)]
    same = [p.clone() for p in params]
    assert fingerprint(params) == fingerprint(same)
    flipped = [p.clone() for p in params]
    flipped[1].view(torch.int16)[2] ^= 1  # the lowest mantissa bit of one bf16 weight
    assert fingerprint(flipped) != fingerprint(params)
    assert fingerprint(params[::-1]) != fingerprint(params)  # position matters, of tensors and of elements
    assert fingerprint([params[0].t().contiguous(), params[1]]) != fingerprint(params)
    assert fingerprint([params[0].flip(0), params[1]]) != fingerprint(params)
    # added up bucket by bucket (a ZeRO-3 sender sees one whole bucket at a time): the same checksum
    from actors.weight_sync import _MODULUS, fingerprint_of
    three = params + [torch.randn(7)]
    by_bucket = (fingerprint_of([(0, three[0]), (2, three[2])]) + fingerprint_of([(1, three[1])])) % _MODULUS
    assert by_bucket == fingerprint(three)
    check_sync((3, 7), {"rollout-0": (3, 7), "rollout-1": (3, 7)})
    with pytest.raises(SyncError, match="rollout-1 holds version 2"):
        check_sync((3, 7), {"rollout-0": (3, 7), "rollout-1": (2, 7)})
    with pytest.raises(SyncError, match="rollout-0 holds version 3 \\(checksum 0x8\\)"):
        check_sync((3, 7), {"rollout-0": (3, 8)})


def test_a_run_stopped_by_its_guard_is_one_line_and_exit_code_3(capsys):
    from driver.cli import run_main

    def unhealthy(argv):
        Guard({"degenerate_images": 0.5}, window=1).check({"samples": 4, "degenerate_images": 3})

    with pytest.raises(SystemExit) as exc:
        run_main(unhealthy, [])
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 3 and len(err) == 1
    assert "run stopped by its health guard: 75% of images were a single colour" in err[0]


def test_fingerprint_is_the_position_weighted_sum_of_the_bits_by_hand():
    """One tensor longer than the weights' period (65521): s = sum_i bits_i * ((i mod 65521) + 1), then mixed with
    the tensor's position (1) and size: (1 * (s mod (2^61 - 1) + n)) mod (2^61 - 1)."""
    from actors.weight_sync import _MODULUS, fingerprint_of
    n = 65521 + 7
    bits = torch.arange(n, dtype=torch.int32) * 3 - 5
    s = sum(int(b) * (i % 65521 + 1) for i, b in enumerate(bits.tolist()))
    assert fingerprint_of([(0, bits.view(torch.float32))]) == (s % _MODULUS + n) % _MODULUS


def test_a_sampled_check_sees_a_changed_element_at_exactly_one_offset_of_its_stride():
    """check_stride 16: each sync checks one of 16 contiguous blocks of a big tensor (70000 elements: blocks of
    4375), the version's; a single changed element is seen by the one offset in 16 whose block holds it, so 16
    successive syncs check everything."""
    from actors.weight_sync import fingerprint_of
    x = torch.randn(70_000)
    y = x.clone()
    y[12_345] += 1.0  # 12345 // 4375 = 2: block 2
    seen = [off for off in range(16) if fingerprint_of([(0, x)], 16, off) != fingerprint_of([(0, y)], 16, off)]
    assert seen == [2]
    assert fingerprint_of([(0, x)], 16, 2 + 16 * 3) != fingerprint_of([(0, y)], 16, 2 + 16 * 3)  # version 50
