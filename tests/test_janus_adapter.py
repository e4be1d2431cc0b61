import numpy as np
import torch

from models.adapter import answer_token_ids
from models.janus import JanusAdapter
from toyworld.vocabulary import RUBRIC_INSTRUCTION
from toyworld.render import render
from toyworld.scene import Obj

PROMPTS = ["a photo of a red circle", "a photo of two squares and"]


def test_sampling_logprobs_equal_teacher_forced_guided_logprobs(tiny_adapter):
    gen = torch.Generator().manual_seed(0)
    out = tiny_adapter.sample(PROMPTS, n=2, guidance=3.0, temperature=0.9, generator=gen)
    assert out.tokens.shape == (4, 64) and out.images.shape == (4, 64, 64, 3) and out.images.dtype == np.uint8
    with torch.no_grad():
        forced = tiny_adapter.image_logprobs([p for p in PROMPTS for _ in range(2)], out.tokens, 3.0, 0.9)
    assert torch.allclose(forced, out.logprobs, atol=1e-5), (forced - out.logprobs).abs().max()


def test_teacher_forced_logprobs_carry_gradient(tiny_adapter):
    tokens = torch.randint(0, 64, (1, 64))
    lp = tiny_adapter.image_logprobs(PROMPTS[:1], tokens, 2.0, 1.0)
    lp.sum().backward()
    grad = tiny_adapter.model.model.generation_head.vision_head.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    tiny_adapter.model.zero_grad()


def test_unconditional_row_keeps_bos_and_boi_only(tiny_adapter):
    ids, uncond, mask = tiny_adapter.generation_prompts(PROMPTS)
    tok = tiny_adapter.tok
    for row, urow, m in zip(ids, uncond, mask):
        real = row[m.bool()].tolist()
        ureal = urow[m.bool()].tolist()
        assert real[0] == ureal[0] == tok.bos_token_id and real[-1] == ureal[-1] == tok.convert_tokens_to_ids("<boi>")
        assert set(ureal[1:-1]) == {tok.pad_token_id}


def test_answer_probs_one_encoding_per_image_and_padding_invariance(tiny_adapter):
    images = np.stack([render([Obj("circle", "red", 20, 20, 16)]), render([Obj("square", "blue", 40, 40, 16)])])
    qs = ["is there a circle ?", "are the circle and the square the same color ?", "is there a square ?"]
    probs = tiny_adapter.answer_probs(images, qs, image_index=[0, 0, 1])
    assert probs.shape == (3, 2) and (probs > 0).all() and (probs.sum(-1) <= 1 + 1e-6).all()
    # The short question alone (no right padding) gives the same probabilities as inside the batch.
    alone = tiny_adapter.answer_probs(images[:1], qs[:1])
    assert torch.allclose(alone, probs[:1], atol=1e-5)


def test_answer_token_ids_resolve_variants(tiny_adapter):
    assert answer_token_ids(tiny_adapter.tok, "yes") == [tiny_adapter.tok.convert_tokens_to_ids("yes")]


def test_write_and_prompt_logprobs(tiny_adapter):
    texts = tiny_adapter.write(PROMPTS, RUBRIC_INSTRUCTION, max_new_tokens=5)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    images = np.stack([render([Obj("circle", "red", 20, 20, 16)])] * 2)
    lps = tiny_adapter.prompt_logprobs(images, ["a photo of a red circle", "a photo of a circle"])
    assert [len(x) for x in lps] == [6, 5] and all((x <= 0).all() for x in lps)


def test_save_and_load_round_trip(tiny_adapter, tmp_path):
    tiny_adapter.save_pretrained(tmp_path)
    loaded = JanusAdapter.from_pretrained(tmp_path)
    for (k, v), (k2, v2) in zip(tiny_adapter.model.state_dict().items(), loaded.model.state_dict().items()):
        assert k == k2 and torch.equal(v, v2), k
    assert loaded.templates == tiny_adapter.templates
