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


@pytest.fixture(scope="module")
def toy_batch():
    """The committed toy model and a rollout batch of 2 test prompts x 2 samples from it."""
    from launch.configs.meta_ttrl import ROOT
    from models.janus import JanusAdapter
    from rollout.batch import RolloutBatch
    from toyworld.prompts import load_split

    adapter, metas = JanusAdapter.from_pretrained(ROOT / "models" / "toy_umm"), load_split("test")[:2]
    out = adapter.sample([m["prompt"] for m in metas], 2, 3.0, 1.0, torch.Generator().manual_seed(0))
    batch = RolloutBatch([m["prompt"] for m in metas for _ in range(2)], out.tokens, out.logprobs, out.images, 0, 2)
    return adapter, {m["prompt"]: m for m in metas}, batch


def test_gvu_oracle_and_srum_judges_on_the_toy_model(toy_batch):
    from rewards.introspection import RubricBook
    from rewards.judges import GvUJudge, OracleJudge, SRUMJudge, model_writer
    from benchmarks import oracle
    from rewards.regions import isolate, segment
    from toyworld.oracle import evaluate

    adapter, metadata, batch = toy_batch
    toy_oracle = oracle("toyworld", None)
    by_gvu, by_oracle = GvUJudge(adapter)(batch), OracleJudge(metadata, toy_oracle)(batch)
    assert by_gvu.rewards.shape == (4,) and ((by_gvu.rewards > 0) & (by_gvu.rewards < 1)).all()
    expected = [float(evaluate(img, metadata[p]).correct) for img, p in zip(batch.images, batch.prompts)]
    assert by_oracle.rewards.tolist() == expected and by_oracle.reward_maps is None
    with pytest.raises(KeyError, match="needs GenEval metadata"):
        OracleJudge({}, toy_oracle)(batch)
    # SRUM: a map per image on the 8 x 8 token grid; cells outside every region hold the global score 2 r - 1
    book = RubricBook(model_writer(adapter, 96, torch.Generator().manual_seed(0)))
    by_srum_judge = SRUMJudge(book, adapter, adapter.token_grid)
    by_srum = by_srum_judge(batch)
    assert by_srum.reward_maps.shape == (4, 64) and by_srum.reward_maps.abs().max() <= 1
    centres, with_regions = (torch.arange(8) + 0.5) / 8, 0
    for i, (image, reward, cells) in enumerate(zip(batch.images, by_srum.rewards, by_srum.reward_maps.view(4, 8, 8))):
        questions = [it.question for it in book.get([batch.prompts[i]])[0]
                     if it.target == "yes" and it.dimension in ("object", "attribute")]
        inside = []
        for box in segment(image):  # each region alone, asked the prompt's object questions: 2 max s - 1
            alone = isolate(image, box)[None]
            local = 2 * float(by_srum_judge.scores(alone, questions, [0] * len(questions),
                                                   [True] * len(questions)).max()) - 1
            x0, y0, x1, y1 = box.tolist()
            inside.append((((centres >= y0) & (centres <= y1))[:, None] & ((centres >= x0) & (centres <= x1))[None],
                           local))
        count = sum((m.int() for m, _ in inside), torch.zeros(8, 8, dtype=torch.int))  # an empty image: no regions
        with_regions += bool((count > 0).any())
        assert torch.allclose(cells[count == 0], 2 * reward - 1)
        for m, local in inside:
            assert torch.allclose(cells[m & (count == 1)], torch.tensor(local), atol=1e-5)
    assert with_regions >= 2  # the local scores were checked, not only the global fill


def test_groups_swapped_by_hand():
    from rewards.scoring import groups_swapped

    rewards = torch.tensor([0.1, 0.2, 0.5, 0.6, 0.8, 0.9])  # three groups of two
    out = groups_swapped(rewards, 2, torch.Generator().manual_seed(3))
    assert sorted(out.tolist()) == sorted(rewards.tolist())  # the batch's multiset kept
    groups = [set(rewards[2 * g: 2 * g + 2].tolist()) for g in range(3)]
    given = [set(out[2 * g: 2 * g + 2].tolist()) for g in range(3)]
    # each group received a whole other group's rewards: a derangement of the groups
    assert sorted(map(sorted, given)) == sorted(map(sorted, groups))
    assert all(given[g] != groups[g] for g in range(3))
    one = groups_swapped(torch.tensor([0.3, 0.7]), 2, torch.Generator().manual_seed(0))  # one group: inside it
    assert sorted(one.tolist()) == pytest.approx([0.3, 0.7])
    with pytest.raises(ValueError, match="not whole groups"):
        groups_swapped(torch.ones(5), 2, torch.Generator())


def test_control_judges_ignore_the_images_and_keep_the_batchs_rewards(toy_batch):
    """random: the same rewards for two batches of different images (same seed); shuffled: the rubric judge's
    rewards of the batch, each group's handed to the other group, and no more tied to the image it scored."""
    import dataclasses

    import numpy as np

    from rewards.introspection import RubricBook
    from rewards.judges import RandomJudge, RubricJudge, ShuffledJudge, model_writer

    adapter, _, batch = toy_batch
    other = dataclasses.replace(batch, images=np.ascontiguousarray(batch.images[::-1]))  # other images, same prompts
    assert not np.array_equal(other.images, batch.images)
    a = RandomJudge(torch.Generator().manual_seed(7))(batch).rewards
    b = RandomJudge(torch.Generator().manual_seed(7))(other).rewards
    assert torch.equal(a, b) and a.shape == (4,) and ((a >= 0) & (a < 1)).all() and len(set(a.tolist())) == 4
    book = RubricBook(model_writer(adapter, 96, torch.Generator().manual_seed(0)))
    real = RubricJudge(book, adapter)(batch).rewards
    shuffled = ShuffledJudge(RubricJudge(book, adapter), torch.Generator().manual_seed(1))(batch).rewards
    assert sorted(shuffled.tolist()) == pytest.approx(sorted(real.tolist()))
    assert sorted(shuffled[:2].tolist()) == pytest.approx(sorted(real[2:].tolist()))  # group 0 got group 1's
    assert sorted(shuffled[2:].tolist()) == pytest.approx(sorted(real[:2].tolist()))


def test_server_judge_scores_through_the_reward_server(toy_batch):
    """E-TTRL behind the reward server: the served rubric judge (an external model; here the toy model) gives
    the same rewards as the same judge in-process."""
    from driver.reward_methods import model_methods
    from launch.configs.meta_ttrl import ROOT
    from rewards.client import RewardClient
    from rewards.dialects import DIALECTS
    from rewards.introspection import RubricBook
    from rewards.judges import AlignmentJudge, RubricJudge, ServerJudge, model_writer
    from rewards.server import RewardServer

    adapter, _, batch = toy_batch
    path = str(ROOT / "models" / "toy_umm")
    server = RewardServer(model_methods(path, 1) | {"bad": lambda items: ["x"] * len(items)}, port=0).start()
    client = RewardClient(f"tcp://127.0.0.1:{server.port}", timeout_s=60)
    try:
        served = ServerJudge(client, "rubric")(batch)
        rated = ServerJudge(client, "reward_model")(batch)
        with pytest.raises(ValueError, match="answered non-numbers"):
            ServerJudge(client, "bad")(batch)
    finally:
        client.close()
        server.stop()
    local = RubricJudge(RubricBook(model_writer(adapter, 96, torch.Generator().manual_seed(0))), adapter)(batch)
    assert torch.allclose(served.rewards, local.rewards, atol=1e-5) and served.fallback == [False] * 4
    local = AlignmentJudge(adapter, DIALECTS["toy"].alignment_question)(batch)
    assert torch.allclose(rated.rewards, local.rewards, atol=1e-5) and not torch.allclose(rated.rewards, served.rewards)


def test_reward_model_judge_by_hand():
    """P(yes) / (P(yes) + P(no)) of one question per image, the prompt filled into the dialect's question."""
    from types import SimpleNamespace

    from rewards.judges import AlignmentJudge

    class Rater:
        asked = None

        def image_features(self, images):
            return "features"

        def answer_probs(self, images, questions, image_index, features):
            self.asked = (questions, image_index, features)
            return torch.tensor([[0.6, 0.2], [0.1, 0.3], [0.0, 0.0]])[image_index]

    rater = Rater()
    batch = SimpleNamespace(prompts=["a cat", "a dog", "a cow"], images=np.zeros((3, 4, 4, 3), np.uint8))
    scored = AlignmentJudge(rater, "Does it show {prompt}?", chunk=2)(batch)
    assert scored.rewards.tolist() == pytest.approx([0.75, 0.25, 0.0]) and scored.fallback == [False] * 3
    assert rater.asked == (["Does it show a cow?"], [2], "features")  # the second chunk of two


def test_pick_best_by_hand():
    from rollout.best_of_n import pick_best

    rewards = torch.tensor([0.1, 0.7, 0.3, 0.9, 0.9, 0.2])  # two prompts, n = 3; a tie keeps the first
    assert pick_best(rewards, 3).tolist() == [1, 3]


def test_best_of_n_keeps_the_judges_favourite_and_scores_it(ray_local, capsys):
    from launch import best_of_n

    best_of_n.main(["n=3", "data.eval_max_prompts=2", "reward.judge=oracle", "data.heldout="])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n"] == 3 and result["n_images"] == 2 and 0 <= result["overall"] <= 1
