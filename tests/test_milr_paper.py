"""MILR as published (milr.variant=paper) on the tiny Janus-Pro layout: the reasoning phase's latents
(models/janus_reasoning.py), the search (rollout/milr_reasoning.py) and the launch entry point end to end."""
import json

import pytest
import torch

from models.janus import JanusAdapter
from models.janus_formats import janus_pro_format
from rollout.milr import MILRSettings, search
from rollout.milr_reasoning import search_reasoned
from tests.fixtures.janus_pro_like import build

PROMPTS = ["a red apple", "two blue cups on a table"]


@pytest.fixture(scope="module")
def pro():
    model, tok = build(seed=0, image_size=64)
    adapter = JanusAdapter(model, tok, **janus_pro_format(tok))
    adapter.freeze()
    return adapter


def test_janus_pro_reasons_and_the_toy_format_does_not(pro, tiny_adapter):
    assert pro.capabilities.reasoning and not tiny_adapter.capabilities.reasoning
    assert pro.tok.convert_ids_to_tokens(pro.boi_id) == "<begin_of_image>"


def test_a_text_latent_is_decoded_to_its_token_and_the_reasoning_goes_on_from_it(pro):
    plain = pro.reason(PROMPTS, 6)
    head = pro.model.lm_head.weight.detach()
    norms = head.norm(dim=1)
    norms[[pro.tok.eos_token_id, pro.boi_id, plain[0][0]]] = 0
    target = int(norms.argmax())  # the longest row wins the argmax along its own direction
    shift = torch.zeros(2, 1, head.shape[1])
    shift[0, 0] = 1e3 * head[target] / head[target].norm()
    moved = pro.reason(PROMPTS, 6, shift)
    assert moved[0][0] == target != plain[0][0] and moved[1] == plain[1]  # row 1's offset is zero


def test_reasoning_logprobs_are_the_greedy_tokens_and_a_prompt_alone_equals_the_batch(pro):
    shift = 0.5 * torch.randn(2, 2, pro.latent_width, generator=torch.Generator().manual_seed(0))
    rows = pro.reason(PROMPTS, 6, shift)
    shift.requires_grad_(True)
    lp = pro.reasoning_logprobs(PROMPTS, rows, shift)
    alone = pro.reasoning_logprobs(PROMPTS[1:], rows[1:], shift[1:])
    assert torch.allclose(lp[1:], alone, atol=1e-5)
    lp.sum().backward()
    assert shift.grad.abs().sum() > 0
    one = shift.detach()[:, :1]  # n = 1: the decoded token is the argmax, so no other token is likelier
    greedy = pro.reasoning_logprobs(PROMPTS, rows, one)
    for other in (3, 17, 101):
        swapped = [[other] + r[1:] for r in rows]
        assert (pro.reasoning_logprobs(PROMPTS, swapped, one) <= greedy + 1e-6).all()


def test_reasoned_sampling_and_teacher_forcing_agree(pro):
    rows = pro.reason(PROMPTS, 5)
    image_shift = 0.5 * torch.randn(2, 2, pro.latent_width, generator=torch.Generator().manual_seed(1))
    out = pro.sample_reasoned(PROMPTS, rows, 3.0, 1.0, torch.Generator().manual_seed(2), image_shift)
    forced = pro.reasoned_image_logprobs(PROMPTS, rows, out.tokens, 3.0, 1.0, image_shift)
    assert (forced - out.logprobs).abs().max() <= 1e-4
    plain = pro.reasoned_image_logprobs(PROMPTS, rows, out.tokens, 3.0, 1.0)
    moved = (forced - plain).abs() > 1e-6
    assert moved[:, :2].all() and not moved[:, 2:].any()


def test_the_paper_search_draws_one_sample_a_step_returns_the_final_image_and_the_l2_term_holds_it(pro):
    calls = []

    def judge(rows, out):
        calls.append((list(rows), out.images.copy()))
        return torch.tensor(out.images.reshape(len(rows), -1).mean(1) / 255.0, dtype=torch.float32)

    def run(l2):
        calls.clear()
        s = MILRSettings(variant="paper", steps=3, threshold=2.0, reason_tokens=6, l2=l2, lr=0.03)
        return search_reasoned(pro, PROMPTS, judge, s, 3.0, 1.0, torch.Generator().manual_seed(3))

    found, free = run(0.0)
    assert [rows for rows, _ in calls] == [PROMPTS] * 3  # one image per prompt and step
    for i, f in enumerate(found):
        assert f.steps == 3 and not f.stopped_early and (f.image == calls[-1][1][i]).all()  # the final image
    _, held = run(1e4)
    assert held.image.abs().mean() < free.image.abs().mean() and held.text.abs().mean() < free.text.abs().mean()
    with pytest.raises(ValueError, match="search_reasoned"):
        search(pro, PROMPTS, judge, MILRSettings(variant="paper"), 3.0, 1.0, torch.Generator())


@pytest.mark.slow  # 14 s; the pieces above run in the default suite
def test_milr_paper_variant_end_to_end_on_the_janus_pro_layout(ray_local, tmp_path, capsys):
    from launch import milr

    model, tok = build(seed=0, image_size=64)
    model.save_pretrained(tmp_path / "pro")
    tok.save_pretrained(tmp_path / "pro")
    milr.main([f"model.path={tmp_path / 'pro'}", "milr.variant=paper", "milr.steps=2", "milr.threshold=2",
               "milr.reason_tokens=6", "rubric.max_new_tokens=12", "data.eval_max_prompts=2", "data.heldout=",
               "prompts_per_call=2", "data.eval_samples=1", "run.grid_prompts=0"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n_images"] == 2 and result["samples"] == 2 * 2 * 1 and result["mean_steps"] == 2
