"""The BAGEL adapter (models/bagel.py, models/bagel_net.py, models/bagel_layout.py) on a tiny random BAGEL-7B-MoT
layout (tests/fixtures/bagel_like.py): the pieces against hand-computed numbers (routing, sin-cos tables, patch
order, CFG with renorm), SDE sampling log-probs equal to teacher forcing, batch independence, Yes/No answers,
gradients only into the generation expert, a save/reload round trip in the published layout (the FLUX autoencoder
under BFL names, read back by diffusers' converter), the published tensor-name map, the directory checks, and
(slow) a two-step Meta-TTRL job."""
import json
import math
import re
import shutil

import numpy as np
import pytest
import torch

from fixtures import bagel_like
from fixtures.adapter_checks import trainable_grads, two_step_job
from models.bagel import BagelAdapter
from models.bagel_layout import PUBLISHED_NAMES, BagelDirectoryError
from models.bagel_net import patchify, route, sincos_2d, unpatchify

PROMPTS = ["a red circle", "a photo of two blue squares to the left of a green triangle"]  # lengths differ: padding


@pytest.fixture(scope="module")
def bagel(tmp_path_factory):
    path = bagel_like.save(tmp_path_factory.mktemp("bagel") / "model")
    from models.loading import load_adapter
    adapter = load_adapter(path)
    assert isinstance(adapter, BagelAdapter)
    return adapter, path


def test_route_sends_each_token_to_its_expert():
    x = torch.tensor([[[1.0], [2.0], [3.0]]])
    gen = torch.tensor([[False, True, True]])
    out = route(x, gen, lambda y: y + 1, lambda y: y * 10)
    assert out.flatten().tolist() == [2.0, 20.0, 30.0]
    assert route(x, None, lambda y: y + 1, lambda y: y * 10).flatten().tolist() == [2.0, 3.0, 4.0]


def test_sincos_table_and_patch_order_by_hand():
    table = sincos_2d(4, 2)  # dim 4: one frequency (1.0); [sin col, cos col, sin row, cos row]
    assert torch.allclose(table[2], torch.tensor([0.0, 1.0, math.sin(1), math.cos(1)]))  # row 1, column 0
    assert torch.allclose(table[1], torch.tensor([math.sin(1), math.cos(1), 0.0, 1.0]))  # row 0, column 1
    x = torch.arange(2 * 4 * 4, dtype=torch.float32).view(1, 2, 4, 4)  # C=2, 4 x 4
    tokens = patchify(x, 2)
    # token 1 = patch (row 0, column 1): pixels (0, 2), (0, 3), (1, 2), (1, 3), each [channel 0, channel 1]
    assert tokens[0, 1].tolist() == [2, 18, 3, 19, 6, 22, 7, 23]
    assert torch.equal(unpatchify(tokens, 2, 2, 2), x)


def test_cfg_with_global_renorm_by_hand(bagel):
    a, _ = bagel
    cond, uncond = torch.tensor([3.0, 4.0]).view(1, 2, 1, 1), torch.zeros(1, 2, 1, 1)
    calls = []

    def fake(x, t, past, mask):
        calls.append(len(x))
        return torch.cat([cond, uncond])[:len(x)]
    real = a._block_velocity
    a._block_velocity = fake
    try:
        past = [(torch.zeros(2, 1, 1, 1), torch.zeros(2, 1, 1, 1))]
        mask = torch.ones(2, 1, dtype=torch.long)
        # guided = 0 + 2 (3, 4) = (6, 8), norm 10 > 5: rescaled by 5 / 10 to (3, 4)
        assert torch.allclose(a.velocity(torch.zeros(1, 2, 1, 1), 0.9, past, mask, 2.0).flatten(),
                              torch.tensor([3.0, 4.0]), atol=1e-6)
        # t = 0.3 is outside cfg_interval (0.4, 1]: the conditional velocity alone, one forward of the cond rows
        assert torch.equal(a.velocity(torch.zeros(1, 2, 1, 1), 0.3, past, mask, 2.0), cond) and calls == [2, 1]
    finally:
        a._block_velocity = real


def test_sampled_logprobs_match_teacher_forcing_and_rows_are_independent(bagel):
    a, _ = bagel
    out = a.sample(PROMPTS, 2, 4.0, 1.0, torch.Generator().manual_seed(0))
    assert out.tokens.shape == (4, 5, 4, 8, 8) and out.logprobs.shape == (4, 4) and out.images.shape == (4, 32, 32, 3)
    rows = [p for p in PROMPTS for _ in range(2)]
    with torch.no_grad():
        assert (a.image_logprobs(rows, out.tokens, 4.0) - out.logprobs).abs().max() <= 1e-4
        alone = a.image_logprobs(rows[1:2], out.tokens[1:2], 4.0)  # the shorter prompt: padded in the batch
    assert (alone - out.logprobs[1:2]).abs().max() <= 1e-4  # a prompt alone = in a batch
    again = a.sample(PROMPTS, 2, 4.0, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(again.tokens, out.tokens)


def test_image_blocks_attend_both_ways_and_the_prompt_never_sees_the_image(bagel):
    a, _ = bagel
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    past, mask = a._prompt_context(PROMPTS[:1], uncond=False)
    moved = x.clone()
    moved[..., 6:, 6:] += 1.0  # the last latent token's patch
    with torch.no_grad():
        v, w = a._block_velocity(x, 0.5, past, mask), a._block_velocity(moved, 0.5, past, mask)
    assert (v[..., :2, :2] - w[..., :2, :2]).abs().max() > 1e-6  # the first latent token sees the last
    blocks = torch.randn(1, 16, a.llm_config.hidden_size)
    later = blocks.clone()
    later[:, -1] += 1.0
    with torch.no_grad():
        h1, h2 = a._prefill([a._turn("is it red?")], blocks)[0], a._prefill([a._turn("is it red?")], later)[0]
    assert (h1[:, 1] - h2[:, 1]).abs().max() > 1e-6  # the first ViT token sees the last one


def test_answers_are_probabilities_and_a_question_alone_equals_the_batch(bagel):
    a, _ = bagel
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    both = a.answer_probs(images, ["is there a circle?", "is it a photo of two red squares?"], [0, 1])
    alone = a.answer_probs(images[1:], ["is it a photo of two red squares?"])  # the longer question
    assert (both > 0).all() and (both.sum(-1) <= 1 + 1e-6).all() and torch.allclose(alone, both[1:], atol=1e-5)
    short = a.answer_probs(images[:1], ["is there a circle?"])  # the shorter one: padded in the batch
    assert torch.allclose(short, both[:1], atol=1e-5)
    other = a.answer_probs(images[:1], ["is it a photo of two red squares?"])
    assert not torch.allclose(other, alone, atol=1e-6)  # the answer does read the image
    texts = a.write(PROMPTS, "write a rubric", 4)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert a.write(PROMPTS[1:], "write a rubric", 4) == texts[1:]  # greedy writing: alone = batch
    assert len(a.ask(images, ["what is it?"], [1], 3)) == 1


def test_gradients_reach_the_generation_expert_only(bagel):
    a, _ = bagel
    out = a.sample(PROMPTS[:1], 2, 4.0, 1.0, torch.Generator().manual_seed(1))
    grads = trainable_grads(a, PROMPTS[:1] * 2, out.tokens, 4.0)
    assert grads and all("_moe_gen" in n or n.startswith(("time_embedder.", "vae2llm.", "llm2vae.")) for n in grads)
    assert grads["llm2vae.weight"] > 0 and grads["language_model.model.layers.0.mlp_moe_gen.up_proj.weight"] > 0


def test_save_reload_is_bitwise_in_the_published_layout(bagel, tmp_path):
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
    from safetensors.torch import load_file

    from models.loading import load_adapter
    a, _ = bagel
    a.save_pretrained(tmp_path / "again")
    b = load_adapter(tmp_path / "again")
    assert all(torch.equal(x, y) for x, y in zip(a.net.state_dict().values(), b.net.state_dict().values()))
    assert all(torch.equal(x, y) for x, y in zip(a.vae.state_dict().values(), b.vae.state_dict().values()))
    assert b.s == a.s and json.loads((tmp_path / "again" / "vit_config.json").read_text())["num_hidden_layers"] == 3
    ae = load_file(tmp_path / "again" / "ae.safetensors")  # BFL names, attention as 1x1 convs
    assert ae["encoder.mid.attn_1.q.weight"].ndim == 4 and "decoder.up.0.block.1.conv2.weight" in ae
    assert "encoder.down.0.downsample.conv.weight" in ae and "decoder.up.2.upsample.conv.weight" in ae
    back = convert_ldm_vae_checkpoint(ae, a.ae.diffusers_config())
    assert back.keys() == a.vae.state_dict().keys()


def test_every_published_tensor_name_is_mapped(bagel):
    a, _ = bagel
    names = list(a.net.state_dict())
    patterns = {p: re.compile(p.replace("L", r"\d+") + "$") for p in PUBLISHED_NAMES}
    unmapped = [n for n in names if not any(r.match(n) for r in patterns.values())]
    unused = [p for p, r in patterns.items() if not any(r.match(n) for n in names)]
    assert not unmapped and not unused


def test_bagel_directories_missing_a_part_are_one_line(bagel, tmp_path):
    from safetensors.torch import load_file, save_file
    _, path = bagel
    for part in ("ae.safetensors", "vit_config.json", "tokenizer.json"):
        broken = shutil.copytree(path, tmp_path / part)
        (broken / part).unlink()
        with pytest.raises(BagelDirectoryError, match="lacks") as e:
            BagelAdapter.from_pretrained(broken)
        assert "\n" not in str(e.value) and (part in str(e.value) or "tokenizer" in str(e.value))
    dense = shutil.copytree(path, tmp_path / "dense")  # a BAGEL without the generation expert
    weights = load_file(dense / "ema.safetensors")
    save_file({k: v for k, v in weights.items() if "_moe_gen" not in k}, dense / "ema.safetensors")
    with pytest.raises(BagelDirectoryError, match=r"lacks \d+ tensors of the BAGEL-7B-MoT layout"):
        BagelAdapter.from_pretrained(dense)
    save_file(weights | {"extra_head.weight": torch.zeros(2, 2)}, dense / "ema.safetensors")
    with pytest.raises(BagelDirectoryError, match=r"has 1 tensors the layout does not know \(e.g. extra_head"):
        BagelAdapter.from_pretrained(dense)


@pytest.mark.parametrize("file, key, value, message", [
    ("vit_config.json", "patch_size", 8, "must equal the ViT table side"),
    ("llm_config.json", "vocab_size", 10, "the tokenizer has"),
    ("meta_ttrl.json", "sampling", {"image_size": 36}, "image_size 36 must be a multiple of 8 and at most 64 px")])
def test_bagel_settings_that_cannot_fit_are_one_line(bagel, tmp_path, file, key, value, message):
    _, path = bagel
    broken = shutil.copytree(path, tmp_path / "broken")
    config = json.loads((broken / file).read_text())
    config[key] = value
    (broken / file).write_text(json.dumps(config))
    with pytest.raises(BagelDirectoryError, match=message) as e:
        BagelAdapter.from_pretrained(broken)
    assert "\n" not in str(e.value)


def test_lora_goes_into_the_generation_expert_and_its_checkpoint_reloads(bagel, tmp_path):
    from models.loading import load_adapter
    from models.lora import LoraSettings, attach
    _, base = bagel
    a = load_adapter(base)
    attach(a, LoraSettings(rank=2, alpha=4, export_merged=True), str(base))
    names = [n for n, p in a.trainable_parameters()]
    assert names and all(".lora_" in n and "_moe_gen" in n for n in names)
    with torch.no_grad():
        for _, p in a.trainable_parameters():
            p.add_(0.05)  # trained adapters (B != 0)
    a.save_pretrained(tmp_path / "final")
    again, merged = load_adapter(tmp_path / "final"), load_adapter(tmp_path / "final" / "merged")
    draws = [m.sample(PROMPTS[:1], 1, 4.0, 1.0, torch.Generator().manual_seed(0)).tokens for m in (a, again, merged)]
    assert torch.equal(draws[0], draws[1]) and (draws[0] - draws[2]).abs().max() <= 1e-4


@pytest.mark.slow  # ~40 s
def test_a_two_step_meta_ttrl_job_on_bagel(ray_local, tmp_path):
    metrics = two_step_job(bagel_like.save(tmp_path / "model"), tmp_path)
    assert [m["step"] for m in metrics] == [0, 1] and all(m["updates"] >= 1 for m in metrics)
    assert metrics[1]["kl"] > 0
