"""The judges beside Meta-TTRL's rubric: GvU's prompt likelihood (by hand, then on the actor) and the oracle
reward of the RL-leakage upper bound."""
import json
import math

import numpy as np
import pytest
import torch

from rewards.scoring import gvu_rewards


def test_gvu_reward_is_the_geometric_mean_of_prompt_token_probabilities():
    lp = [torch.tensor([math.log(0.5), math.log(0.125)]), torch.tensor([math.log(0.8)])]
    # sqrt(0.5 * 0.125) = 0.25; one token: its probability
    assert torch.allclose(gvu_rewards(lp), torch.tensor([0.25, 0.8]))
    with pytest.raises(ValueError, match="at least one prompt token"):
        gvu_rewards([torch.tensor([])])


def test_gvu_and_oracle_judges_on_real_actors(ray_local):
    from omegaconf import OmegaConf

    from actors.introspector import IntrospectorActor
    from actors.rollout import RolloutActor
    from launch.configs.meta_ttrl import ROOT, RubricConfig
    from toyworld.oracle import evaluate
    from toyworld.prompts import load_split

    path, metas = str(ROOT / "models" / "toy_umm"), load_split("test")[:2]
    metadata = {m["prompt"]: m for m in metas}
    rubric = OmegaConf.structured(RubricConfig)
    rollout = RolloutActor.remote(path, 1, 0)
    gvu, oracle = (IntrospectorActor.remote(path, 1, rubric, metadata, 0, judge) for judge in ("gvu", "oracle"))
    batch = rollout.sample.remote([m["prompt"] for m in metas], 2, 3.0, 1.0)
    by_gvu, by_oracle, images = ray_local.get([gvu.judge.remote(batch, 3.0, 1.0), oracle.judge.remote(batch, 3.0, 1.0),
                                               batch])
    assert by_gvu.rewards.shape == (4,) and ((by_gvu.rewards > 0) & (by_gvu.rewards < 1)).all()
    expected = [float(evaluate(img, metadata[p]).correct) for img, p in zip(images.images, images.prompts)]
    assert by_oracle.rewards.tolist() == expected
    assert by_gvu.rubric == {} and by_gvu.health["samples"] == 4  # no rubric written for these judges
    for actor in (rollout, gvu, oracle):
        ray_local.kill(actor)


def test_pick_best_by_hand():
    from launch.best_of_n import pick_best

    rewards = torch.tensor([0.1, 0.7, 0.3, 0.9, 0.9, 0.2])  # two prompts, n = 3; a tie keeps the first
    assert pick_best(rewards, 3).tolist() == [1, 3]


def test_best_of_n_keeps_the_judges_favourite_and_scores_it(ray_local, capsys):
    from launch import best_of_n

    best_of_n.main(["n=3", "data.eval_max_prompts=2", "reward.judge=oracle", "data.heldout="])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] == 3 and result["n_images"] == 2 and 0 <= result["overall"] <= 1
