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


def _full_forward_answers(adapter, monkeypatch, *args):
    """answer_probs with the image prefix's sharing turned off: every row's whole text through the model."""
    with monkeypatch.context() as m:
        m.setattr(adapter, "_image_prefix", lambda rows: 0)
        return adapter.answer_probs(*args)


def test_answers_on_a_shared_image_prefix_equal_the_full_forward(tiny_adapter, monkeypatch):
    images = np.stack([render([Obj("circle", "red", 20, 20, 16)]), render([Obj("square", "blue", 40, 40, 16)]),
                       render([Obj("triangle", "green", 30, 30, 20)])])
    qs = ["is there a circle ?", "are there two squares ?", "is the circle left of the square ?", "is there a red x ?"]
    questions, index = qs * 3, [2, 0, 1, 0, 1, 2, 0, 0, 2, 1, 1, 2]  # out of order, unequal counts per image
    rows = [tiny_adapter.tok(tiny_adapter._fill("answer", question=q), add_special_tokens=False).input_ids
            for q in questions]
    n = tiny_adapter._image_prefix(rows)
    assert n == 1 + tiny_adapter.n_image_tokens + 1  # shared: <bos>, the image's tokens and <q>
    with torch.no_grad():
        shared = tiny_adapter.answer_probs(images, questions, index)
        full = _full_forward_answers(tiny_adapter, monkeypatch, images, questions, index)
        # a cache budget of two rows: six chunks, each re-running only the prefixes it needs
        feats = tiny_adapter.image_features(images)
        chunked = tiny_adapter._answers_after_prefix(rows, n, feats, index, kv_budget=2 * n * 2 * 2 * 2 * 16 * 4)
    assert torch.allclose(shared, full, atol=1e-6), (shared - full).abs().max()
    hidden = torch.softmax(tiny_adapter.model.lm_head(chunked).float(), -1)
    assert torch.allclose(hidden[:, tiny_adapter.yes_ids].sum(-1), shared[:, 0], atol=1e-6)


def test_no_prefix_is_shared_when_the_question_comes_before_the_image(tiny_adapter, monkeypatch):
    monkeypatch.setitem(tiny_adapter.templates, "answer", "<bos> <q> {question} {image} <a>")
    rows = [tiny_adapter.tok(tiny_adapter._fill("answer", question=q), add_special_tokens=False).input_ids
            for q in ("is there a circle ?", "is there a square ?")]
    assert tiny_adapter._image_prefix(rows) == 0


def test_decoding_in_chunks_gives_the_whole_batch_pixels(tiny_adapter):
    tokens = torch.randint(0, 64, (11, 64), generator=torch.Generator().manual_seed(1))  # one chunk of 8, one of 3
    with torch.no_grad():
        whole = tiny_adapter.model.decode_image_tokens(tokens)
    whole = ((whole.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    chunked = tiny_adapter.decode(tokens)
    assert chunked.shape == whole.shape and np.abs(chunked.astype(int) - whole).max() <= 1
