"""SRUM's reward map and losses and MILR's update, against numbers computed by hand (issue 5)."""
import math

import numpy as np
import pytest
import torch

from learners.srum import flow_loss, global_weight, token_loss
from rewards.srum import region_scores, reward_map, to_score
from rollout.milr import MILRSettings, active, l2_penalty, optimised_positions, reinforce_surrogate, should_stop


def test_srum_reward_map_by_hand():
    # 4x4 grid, cell centres at 0.125, 0.375, 0.625, 0.875; box A (score 1) holds centres <= 0.5, box B (score
    # -1) centres >= 0.25; their overlap is cell (1, 1): mean 0; cells in neither take the global score 0.2
    got = reward_map(0.2, torch.tensor([[0, 0, 0.5, 0.5], [0.25, 0.25, 1, 1]]), torch.tensor([1.0, -1.0]), 4, 4)
    expected = torch.tensor([[1, 1, 0.2, 0.2], [1, 0, -1, -1], [0.2, -1, -1, -1], [0.2, -1, -1, -1]])
    assert torch.allclose(got, expected)
    assert torch.allclose(reward_map(-0.5, torch.zeros(0, 4), torch.zeros(0), 2, 3), torch.full((2, 3), -0.5))
    with pytest.raises(ValueError, match="local scores must lie in \\[-1, 1\\]"):
        reward_map(0.0, torch.tensor([[0, 0, 1, 1]]), torch.tensor([1.5]), 2, 2)
    assert torch.allclose(global_weight(torch.tensor([-1.0, 0.0, 0.6])), torch.tensor([0.0, 0.5, 0.8]))


def test_srum_flow_loss_by_hand():
    v = torch.tensor([1.0, 2.0]).view(1, 1, 1, 2)
    eps, x0 = torch.tensor([0.5, 0.5]).view(1, 1, 1, 2), torch.tensor([0.0, 1.0]).view(1, 1, 1, 2)
    # target eps - x0 = (0.5, -0.5); squared errors 0.25, 6.25; weighted mean (0.5*0.25 - 0.5*6.25)/2 = -1.5;
    # reference mean 3.25 * lambda_c 0.5 = 1.625
    loss = flow_loss(v, eps, x0, torch.tensor([0.5]), torch.tensor([[[1.0, -1.0]]]))
    assert loss.item() == pytest.approx(0.125)


def test_srum_token_loss_by_hand():
    logp = torch.log(torch.tensor([[0.5, 0.25]]))
    # nll (0.6931, 1.3863); weighted (1 * 0.6931 + 0.5 * 1.3863) / 2 = 0.6931; reference 0.5 * 2.0794 / 2 = 0.5199
    assert token_loss(logp, torch.tensor([1.0]), torch.tensor([[1.0, 0.5]])).item() == pytest.approx(
        math.log(2) + 0.25 * 3 * math.log(2))
    masked = token_loss(logp, torch.tensor([1.0]), torch.tensor([[1.0, 0.5]]), mask=torch.tensor([[1, 0]]))
    assert masked.item() == pytest.approx(1.5 * math.log(2))


def test_milr_positions_and_strategies():
    assert optimised_positions(10, 576) == (2, 12)  # ceil(0.2 * 10), ceil(0.02 * 576)
    assert optimised_positions(3, 10) == (1, 1) and optimised_positions(0, 0) == (0, 0)
    assert [active("alternating", s, 4) for s in range(2)] == [(True, False), (False, True)]
    assert active("text_then_image", 9, 20) == (True, False) and active("text_then_image", 10, 20) == (False, True)
    assert active("joint", 7, 20) == (True, True)
    with pytest.raises(ValueError, match="unknown MILR strategy"):
        active("random", 0, 1)
    assert should_stop(0.91, 0.9, 3, 20) and should_stop(0.5, 0.9, 20, 20) and not should_stop(0.5, 0.9, 3, 20)


def test_milr_l2_term_and_its_gradient_by_hand():
    # beta ||dz||^2 with beta 0.05: dz_t = (1, 2), dz_v = (3,) -> 0.05 * (1 + 4 + 9) = 0.7; gradient 2 beta dz = 0.1 dz
    text, image = torch.tensor([[1.0, 2.0]], requires_grad=True), torch.tensor([3.0], requires_grad=True)
    loss = l2_penalty([text, image], 0.05)
    assert loss.item() == pytest.approx(0.7)
    loss.backward()
    assert text.grad[0].tolist() == pytest.approx([0.1, 0.2]) and image.grad.tolist() == pytest.approx([0.3])
    # the paper's one-sample objective: -(r - 0) log p + l2; r = 0.8, log p = 2z at z = 1, beta 0.05:
    # value -1.6 + 0.05, gradient -1.6 + 0.1 = -1.5
    z = torch.ones((), requires_grad=True)
    loss = reinforce_surrogate((2 * z)[None], torch.tensor([0.8])) + l2_penalty([z], 0.05)
    loss.backward()
    assert loss.item() == pytest.approx(-1.55) and z.grad.item() == pytest.approx(-1.5)


def test_milr_variants_fill_what_is_unset():
    paper = MILRSettings(variant="paper").resolved()
    assert (paper.samples, paper.l2) == (1, 0.05)
    assert (MILRSettings().resolved().samples, MILRSettings().resolved().l2) == (2, 0.0)
    assert MILRSettings(variant="paper", samples=3, l2=0.0).resolved().samples == 3  # explicit values stay
    assert active("text_only", 3, 20) == (True, False) and active("image_only", 3, 20) == (False, True)
    with pytest.raises(ValueError, match="unknown MILR variant"):
        MILRSettings(variant="preprint").resolved()


def test_milr_reinforce_step_with_adam_by_hand():
    # two samples with log p = 2z and -z, rewards 1 and 0: baseline 0.5, advantages +-0.5;
    # surrogate = -(0.5 * 2z + 0.5 * z) / 2 = -0.75 z, gradient -0.75; Adam's first step is lr * sign:
    # z moves from 0 to +0.03 (towards the rewarded sample)
    z = torch.zeros((), requires_grad=True)
    opt = torch.optim.Adam([z], lr=0.03)
    loss = reinforce_surrogate(torch.stack([2 * z, -z]), torch.tensor([1.0, 0.0]))
    loss.backward()
    assert z.grad.item() == pytest.approx(-0.75)
    opt.step()
    assert z.item() == pytest.approx(0.03)


def test_srum_scores_by_hand():
    # region 0 answers its best question with 0.9 -> 2 * 0.9 - 1 = 0.8; region 1's best is 0.25 -> -0.5
    assert torch.allclose(region_scores(torch.tensor([[0.9, 0.2], [0.1, 0.25]])), torch.tensor([0.8, -0.5]))
    assert torch.allclose(to_score(torch.tensor([0.0, 0.5, 1.0])), torch.tensor([-1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="questions >= 1"):
        region_scores(torch.zeros(2, 0))


def test_srum_regions_are_the_foreground_blobs_by_hand():
    from rewards.regions import isolate, segment

    image = np.full((10, 20, 3), 200, np.uint8)  # grey background
    image[1:4, 2:6] = (255, 0, 0)  # a 3 x 4 red blob: 12 px
    image[5:10, 10:20] = (0, 0, 255)  # a 5 x 10 blue blob: 50 px, the larger, listed first
    image[0, 19] = (0, 255, 0)  # one stray pixel: below min_area
    boxes = segment(image, min_area=5)
    assert np.allclose(boxes, [[10 / 20, 5 / 10, 20 / 20, 10 / 10], [2 / 20, 1 / 10, 6 / 20, 4 / 10]])
    assert segment(np.full((8, 8, 3), 7, np.uint8)).shape == (0, 4)
    alone = isolate(image, boxes[1])
    assert (alone[1:4, 2:6] == (255, 0, 0)).all() and (alone[5:10, 10:20] == 200).all() and (alone[0, 19] == 200).all()


def test_srum_trainer_weights_by_the_global_score_and_drops_nan_rewards():
    from types import SimpleNamespace

    from learners.srum_trainer import SRUMTrainer
    from rollout.batch import Judgement

    judged = Judgement(torch.tensor([0.25, float("nan"), 1.0]), torch.zeros(3, 4), reward_maps=torch.zeros(3, 4))
    alpha, info = SRUMTrainer.sample_weights(SimpleNamespace(), None, judged)
    # alpha = (g + 1) / 2 with g = 2 r - 1: the rubric reward itself; a NaN reward gets no weighted term
    assert torch.allclose(alpha, torch.tensor([0.25, 0.0, 1.0])) and info["reward_map_negative"] == 0
    with pytest.raises(ValueError, match="reward.judge=srum"):
        SRUMTrainer.sample_weights(SimpleNamespace(), None, Judgement(torch.zeros(3), torch.zeros(3, 4)))


def test_ranking_auc_by_hand():
    from toyworld.evaluation import ranking_auc
    # pairs (true, false): (0.9, 0.2) win, (0.9, 0.9) tie, (0.5, 0.2) win, (0.5, 0.9) loss -> (2 + 0.5) / 4
    assert ranking_auc([0.9, 0.5], [0.2, 0.9]) == 0.625
    assert math.isnan(ranking_auc([], [0.1]))


def test_srum_on_a_flow_batch_by_hand():
    """The flow form of SRUM's update through its trainer: x_t = (1 - t) x0 + t eps from the trajectory's last
    state, the velocity of a one-weight model v = w x_t, and flow_loss with the judged map on the latent grid."""
    import numpy as np

    from launch.configs.meta_ttrl import GRPOConfig
    from learners.srum_trainer import SRUMTrainer, renoised
    from models.adapter import Capabilities
    from rollout.batch import Judgement, RolloutBatch

    x0, eps = torch.tensor([2.0]), torch.tensor([-1.0])
    x_t, drawn = renoised(torch.zeros(3, 1, 2, 2), 0.25, torch.Generator().manual_seed(0))
    assert torch.allclose(x_t, 0.25 * drawn)  # x0 = 0: x_t is t eps exactly
    assert ((1 - 0.25) * x0 + 0.25 * eps).item() == pytest.approx(1.25)

    class LinearFlow:
        capabilities = Capabilities(False, False, image_tokens=False, latent_search=False, reward_maps=True)

        def __init__(self):
            self.w = torch.nn.Parameter(torch.tensor(0.5))

        def trainable_parameters(self):
            return [("w", self.w)]

        def freeze(self):
            self.w.requires_grad_(False)

        def train(self, mode=True):
            pass

        def conditional_velocity(self, prompts, x, t):
            self.seen = (x.detach().clone(), t)
            return self.w * x

    flow = LinearFlow()
    trainer = SRUMTrainer(flow, GRPOConfig(lr=0.1, minibatch=2), 1.0, 1.0, seed=0)
    trajectory = torch.zeros(2, 3, 1, 1, 2)  # two samples, 2 SDE steps, latents (1, 1, 2)
    trajectory[:, -1] = torch.tensor([[[1.0, -1.0]]])
    batch = RolloutBatch(["a", "b"], trajectory, torch.zeros(2, 2), np.zeros((2, 8, 8, 3), np.uint8), 0, 2)
    judged = Judgement(torch.tensor([1.0, 0.5]), torch.zeros(2, 2), reward_maps=torch.tensor([[1.0, -1.0],
                                                                                              [0.5, 0.5]]))
    alpha, _ = trainer.sample_weights(batch, judged)
    assert alpha.tolist() == pytest.approx([1.0, 0.5])  # (2r - 1 + 1) / 2 = r
    v, drawn, x0 = trainer.predict(batch, torch.tensor([0, 1]))
    seen, t = flow.seen
    assert 0.02 <= t <= 0.98 and torch.allclose(seen, (1 - t) * x0 + t * drawn)
    loss, stats = trainer.loss((v, drawn, x0), torch.tensor([0, 1]), batch, judged, alpha)
    err = (0.5 * seen - (drawn - x0)) ** 2  # (2, 1, 1, 2)
    weights = torch.tensor([[1.0, -1.0], [0.25, 0.25]]).view(2, 1, 1, 2)  # alpha x map
    assert loss.item() == pytest.approx(float((weights * err).mean() + 0.5 * err.mean()), rel=1e-6)
    assert stats["flow_error"] == pytest.approx(float(err.mean()), rel=1e-6)
