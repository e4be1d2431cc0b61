"""The vLLM introspector backend (issue 4) on CPU: request building and output parsing with a fake engine that
has vLLM's `generate` / `get_tokenizer` shapes; the real engine's absence gives one clear error."""
import importlib.util
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from toyworld.vocabulary import build_tokenizer
from models.vllm_introspector import (QWEN2_5_VL, Unanswered, VLLMIntrospector, VLLMUnavailable, answer_requests,
                                      require_vllm, yes_no_from_logprobs)
from rewards.introspection import RubricBook
from rewards.judges import RubricJudge, model_writer
from rewards.scoring import question_scores


class FakeEngine:
    """Answers every question with fixed top-k logprobs (as vLLM's Logprob objects) and echoes write requests."""

    def __init__(self, top: dict[int, float]):
        self.top, self.calls, self.tok = top, [], build_tokenizer()

    def get_tokenizer(self):
        return self.tok

    def generate(self, requests, params):
        self.calls.append((requests, params))
        def out(req):
            if params["max_tokens"] == 1:
                return SimpleNamespace(outputs=[SimpleNamespace(text="", logprobs=[
                    {t: SimpleNamespace(logprob=lp) for t, lp in self.top.items()}])])
            return SimpleNamespace(outputs=[SimpleNamespace(text="object : is there a circle ? yes",
                                                            logprobs=None)])
        return [out(r) for r in requests]


def ids(tok, word):
    return tok.convert_tokens_to_ids(word)


def test_answer_probabilities_from_top_logprobs_by_hand():
    tok = build_tokenizer()
    yes, no, other = ids(tok, "yes"), ids(tok, "no"), ids(tok, "circle")
    engine = FakeEngine({yes: math.log(0.6), no: math.log(0.2), other: math.log(0.15)})
    vlm = VLLMIntrospector(engine, sampling_params=dict)
    images = np.zeros((2, 8, 8, 3), np.uint8)
    images[1] = 255
    probs = vlm.answer_probs(images, ["is there a circle ?", "is it red ?", "is it blue ?"], [0, 1, 1])
    assert torch.allclose(probs, torch.tensor([[0.6, 0.2]] * 3))
    # Eq. 5 by hand: 0.6 / (0.6 + 0.2) = 0.75 for a yes target, 0.25 for a no target
    assert torch.allclose(question_scores(probs, torch.tensor([True, False, True])), torch.tensor([0.75, 0.25, 0.75]))
    requests, params = engine.calls[0]
    assert params == {"max_tokens": 1, "temperature": 0.0, "logprobs": 20}
    assert [np.asarray(r["multi_modal_data"]["image"]).max() for r in requests] == [0, 255, 255]
    assert requests[1]["prompt"] == QWEN2_5_VL["answer"].format(question="is it red ?")
    assert requests[1]["multi_modal_data"]["image"] is requests[2]["multi_modal_data"]["image"]  # converted once


def test_answers_outside_the_top_k_score_one_half_and_are_counted():
    unanswered = Unanswered()
    assert yes_no_from_logprobs({5: -0.1}, [1], [2], unanswered) == (1e-12, 1e-12)
    assert unanswered.count == 1
    assert yes_no_from_logprobs({1: math.log(0.3), 7: math.log(0.1)}, [1, 7], [2], unanswered) == pytest.approx((0.4, 0))
    assert float(question_scores(torch.tensor([[1e-12, 1e-12]]), torch.tensor([True]))) == pytest.approx(0.5)


def test_rubric_judge_writes_and_scores_through_the_vllm_backend():
    tok = build_tokenizer()
    engine = FakeEngine({ids(tok, "yes"): math.log(0.9), ids(tok, "no"): math.log(0.05)})
    vlm = VLLMIntrospector(engine, sampling_params=dict)
    book = RubricBook(model_writer(vlm, 32, torch.Generator().manual_seed(0)), retries=1)
    judge = RubricJudge(book, vlm)
    batch = SimpleNamespace(prompts=["a photo of a red circle"] * 2, images=np.zeros((2, 8, 8, 3), np.uint8))
    rewards = judge(batch).rewards
    assert torch.allclose(rewards, torch.full((2,), 0.9 / 0.95), atol=1e-4)  # one yes-target question each
    write_requests, write_params = engine.calls[0]
    assert write_params["max_tokens"] == 32 and write_params["temperature"] == 0.0
    assert "a photo of a red circle" in write_requests[0]["prompt"]


def test_requests_convert_each_image_once():
    images = np.zeros((3, 4, 4, 3), np.uint8)
    reqs = answer_requests(QWEN2_5_VL, images, ["a ?", "b ?"], [2, 2])
    assert reqs[0]["multi_modal_data"]["image"].size == (4, 4) and len(reqs) == 2


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None and torch.cuda.is_available(),
                    reason="vLLM can run here")
def test_without_vllm_or_a_gpu_the_backend_says_why():
    with pytest.raises(VLLMUnavailable, match="vllm"):
        require_vllm()
