"""SRUM's scoring prompts: the parser against answers in the shapes chat VLMs give, and the text-scored SRUM judge
with a model whose answers are known (maps by hand)."""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rewards.srum_prompts import BACKGROUND, GLOBAL, LOCAL, ScoreParseError, parse_score

ANSWERS = [
    ("Score: 0.8\nReason: both apples are there, left of the cup.", 0.8, "both apples are there, left of the cup."),
    ("**Score:** -0.5\n**Reason:** the cup is missing.", -0.5, "the cup is missing."),
    ("score = 1\nreason = exact match", 1.0, "exact match"),
    ("Score: +0.25 Reason: mostly right", 0.25, "mostly right"),
    ("Score: \u22120.3\nReason: wrong colour", -0.3, "wrong colour"),
    ("0.6\nThe layout is close to the prompt.", 0.6, ""),
    ("Score: 0.7/1\nReason: fine", 0.7, "fine"),
    ("Score: 8/10\nReason: good", 0.6, "good"),
    ("Score: 0/10. Reason: nothing matches", -1.0, "nothing matches"),
    ("Sure! Score: .5 - Reason: the object is a bit small", 0.5, "the object is a bit small"),
    ("`Score: -1` Reason: it shows a dog, not a cat", -1.0, "it shows a dog, not a cat"),
    ("Score:0\nReason: the prompt states no layout", 0.0, "the prompt states no layout"),
]
REFUSED = [
    ("Score: 7\nReason: good", "outside \\[-1, 1\\]"),
    ("Score: 12/10", "not on its own scale"),
    ("The image matches the prompt well.", "no score"),
    ("", "no score"),
    ("Reason: the apple is red", "no score"),
    ("Score: -3/10", "not on its own scale"),
]


@pytest.mark.parametrize("text, score, reason", ANSWERS)
def test_scores_are_read_from_real_style_answers(text, score, reason):
    assert parse_score(text) == (pytest.approx(score), reason)


@pytest.mark.parametrize("text, why", REFUSED)
def test_unreadable_scores_are_refused_with_a_reason(text, why):
    with pytest.raises(ScoreParseError, match=why):
        parse_score(text)


def test_the_prompts_ask_for_the_format_and_the_neutral_band():
    for prompt in (GLOBAL, LOCAL, BACKGROUND):
        assert "{prompt}" in prompt and '"Score: <a number from -1 to 1>"' in prompt and "Reason:" in prompt
    assert "between -0.2 and 0.2" in GLOBAL


def test_text_scored_srum_judge_maps_by_hand():
    """One 16x16 image with one red square (foreground, top-left quarter) on white: the global answer 0.5, the
    region's 1.0, the background's -0.5; on a 2x2 grid the top-left cell takes the region's score, the others the
    background's, and the reward is (0.5 + 1) / 2. A second image whose global answer is unreadable falls back to
    the rubric's yes/no reward."""
    from rewards.judges import SRUMJudge
    from rewards.rubric import RubricItem

    image = np.full((16, 16, 3), 255, np.uint8)
    image[0:8, 0:8] = (255, 0, 0)

    class Scorer:
        rubric_dialect = "toy"
        asked = []

        def ask(self, images, questions, image_index, max_new_tokens):
            self.asked = list(zip(image_index, questions))
            answers = []
            for i, q in zip(image_index, questions):
                if q.startswith("This image was"):  # the global prompt; image 1 answers it unreadably
                    answers.append("Score: 0.5\nReason: fine" if i == 0 else "no idea")
                elif "one region" in q:
                    answers.append("Score: 1\nReason: right")
                else:
                    answers.append("Score: -0.5\nReason: stray marks")
            return answers

        def image_features(self, images):
            return None

        def answer_probs(self, images, questions, image_index=None, features=None):
            return torch.tensor([[0.8, 0.2]] * len(questions))  # every rubric question: score 0.8

    book = SimpleNamespace(get=lambda prompts: [[RubricItem("object", "is there a square ?", "yes")] for _ in prompts])
    judge = SRUMJudge(book, Scorer(), (2, 2), scoring="text")
    batch = SimpleNamespace(prompts=["a red square", "a red square"], images=np.stack([image, image]))
    scored = judge(batch)
    assert scored.rewards.tolist() == pytest.approx([0.75, 0.8])  # (0.5 + 1) / 2; the fallback: rubric r = 0.8
    assert scored.reward_maps[0].tolist() == pytest.approx([1.0, -0.5, -0.5, -0.5])
    assert judge.fallbacks == {"global": 1, "local": 0, "background": 0}
    assert [q.split(" ")[2] for _, q in judge.answerer.asked] == ["was", "shows", "shows"] * 2  # global, region, bg


def test_janus_pro_answers_in_text_about_each_image_and_a_row_alone_equals_the_batch():
    from models.janus import JanusAdapter
    from models.janus_formats import janus_pro_format
    from tests.fixtures.janus_pro_like import build

    model, tok = build(seed=0, image_size=64)
    pro = JanusAdapter(model, tok, **janus_pro_format(tok))
    assert pro.capabilities.describes
    images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    questions = [GLOBAL.format(prompt="a red apple"), LOCAL.format(prompt="two cups"), "Is it red?"]
    both = pro.ask(images, questions, [0, 1, 1], max_new_tokens=6)
    alone = pro.ask(images[1:], questions[1:2], [0], max_new_tokens=6)
    assert len(both) == 3 and all(isinstance(t, str) for t in both) and alone == both[1:2]


def test_the_flow_models_vlm_answers_in_text_and_a_row_alone_equals_the_batch():
    from fixtures import qwen_vl_like
    from models.qwen_vl import QwenVLUnderstanding

    vlm = QwenVLUnderstanding(*qwen_vl_like.build())
    images = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    questions = [GLOBAL.format(prompt="a red apple"), BACKGROUND.format(prompt="two cups"), "Is it red?"]
    both = vlm.ask(images, questions, [0, 1, 1], max_new_tokens=5)
    alone = vlm.ask(images[1:], questions[1:2], [0], max_new_tokens=5)
    assert len(both) == 3 and all(isinstance(t, str) for t in both) and alone == both[1:2]
