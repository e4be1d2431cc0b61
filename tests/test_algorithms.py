"""Meta-TTRL's equations against numbers computed by hand (DESIGN.md §2)."""
import math

import pytest
import torch

from learners.grpo import AGGREGATIONS, group_advantages, grpo_loss, k3_kl
from rewards.scoring import question_scores, rubric_rewards


def test_eq5_normalises_over_yes_and_no_and_picks_the_target():
    probs = torch.tensor([[0.6, 0.2], [0.6, 0.2], [0.05, 0.15]])
    s = question_scores(probs, torch.tensor([True, False, False]))
    # 0.6 / 0.8 = 0.75; 0.2 / 0.8 = 0.25; 0.15 / 0.2 = 0.75
    assert torch.allclose(s, torch.tensor([0.75, 0.25, 0.75]))


def test_eq6_is_the_geometric_mean_per_image():
    s = torch.tensor([0.5, 0.8, 0.2, 0.9])
    r = rubric_rewards(s, torch.tensor([0, 0, 0, 1]), 2)
    assert r[0].item() == pytest.approx((0.5 * 0.8 * 0.2) ** (1 / 3))  # 0.4309
    assert r[1].item() == pytest.approx(0.9)


def test_eq6_clamps_zero_scores_and_rejects_images_without_questions():
    r = rubric_rewards(torch.tensor([0.0, 1.0]), torch.tensor([0, 0]), 1, eps=1e-4)
    assert r.item() == pytest.approx(math.sqrt(1e-4))  # 0.01
    with pytest.raises(ValueError, match="at least one rubric question"):
        rubric_rewards(torch.tensor([0.5]), torch.tensor([0]), 2)


def test_eq8_standardises_within_groups_and_zeroes_flat_groups():
    adv, flat = group_advantages(torch.tensor([1.0, 2.0, 3.0, 0.5, 0.5, 0.5]), group_size=3)
    # group 1: mean 2, sample std 1 -> -1, 0, 1; group 2: std 0 -> 0
    assert torch.allclose(adv, torch.tensor([-1.0, 0.0, 1.0, 0.0, 0.0, 0.0]))
    assert flat == 1
    adv, _ = group_advantages(torch.tensor([0.2, 0.6]), group_size=2)
    # mean 0.4, sample std sqrt(0.08) = 0.28284 -> -/+0.70711
    assert torch.allclose(adv, torch.tensor([-0.70711, 0.70711]), atol=1e-5)
    with pytest.raises(ValueError, match="groups of 4"):
        group_advantages(torch.ones(6), group_size=4)


def test_k3_kl_by_hand():
    logp, ref = torch.tensor([math.log(0.5), math.log(0.2)]), torch.tensor([math.log(0.25), math.log(0.2)])
    # delta = ln(0.25/0.5) = -ln 2: exp(-ln2) + ln2 - 1 = 0.5 + 0.693147 - 1 = 0.193147; equal probs -> 0
    assert torch.allclose(k3_kl(logp, ref), torch.tensor([0.193147, 0.0]), atol=1e-6)


def test_eq7_clipped_ratio_kl_and_token_mean_by_hand():
    old = torch.log(torch.tensor([[0.5, 0.5], [0.4, 0.4]]))
    new = torch.log(torch.tensor([[0.75, 0.5], [0.2, 0.4]])).requires_grad_()
    ref = torch.log(torch.tensor([[0.5, 0.5], [0.4, 0.4]]))
    adv = torch.tensor([1.0, -1.0])
    loss, stats = grpo_loss(new, old, ref, adv, clip_low=0.2, clip_high=0.2, beta=0.1)
    # ratios: 1.5, 1, 0.5, 1. A=+1: max(-1.5, -1.2) = -1.2 (clipped), -1. A=-1: max(0.5, 0.8) = 0.8 (clipped), 1.
    # k3 with delta = ref - new: ln(0.5/0.75) = -0.405465 -> 0.666667 + 0.405465 - 1 = 0.072132;
    # ln(0.4/0.2) = 0.693147 -> 2 - 0.693147 - 1 = 0.306853; others 0.
    policy = (-1.2 - 1 + 0.8 + 1) / 4
    kl = (0.072132 + 0.306853) / 4
    assert loss.item() == pytest.approx(policy + 0.1 * kl, abs=1e-6)
    assert stats.kl == pytest.approx(kl, abs=1e-6) and stats.clip_fraction == pytest.approx(0.5)
    loss.backward()
    # clipped tokens carry no gradient; the unclipped ones get -A * ratio / 4 from the policy term
    assert new.grad[0, 0] == pytest.approx(0.1 * (1 - 0.5 / 0.75) / 4, abs=1e-6)  # KL term only
    assert new.grad[0, 1] == pytest.approx(-0.25, abs=1e-6)


def test_aggregations_differ_as_documented_on_ragged_masks():
    per_token = torch.tensor([[1.0, 1.0, 1.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert AGGREGATIONS["token-mean"](per_token, mask).item() == pytest.approx(7 / 4)
    assert AGGREGATIONS["seq-mean-token-mean"](per_token, mask).item() == pytest.approx((1 + 4) / 2)
    assert AGGREGATIONS["seq-mean-token-sum"](per_token, mask).item() == pytest.approx((3 + 4) / 2)
    with pytest.raises(ValueError, match="valid: token-mean"):
        grpo_loss(torch.zeros(1, 1), torch.zeros(1, 1), None, torch.zeros(1), aggregation="sum")
