"""The Emu3 adapter (models/emu3.py) on a tiny random Emu3 (tests/fixtures/emu3_like.py): CFG sampling over the
visual vocabulary with its per-token log-probs equal to teacher forcing, batch independence, Yes/No answers,
gradients, a save/reload round trip, the directory checks, and (slow) a two-step Meta-TTRL job."""
import json

import numpy as np
import pytest
import torch

from fixtures import emu3_like
from fixtures.adapter_checks import trainable_grads, two_step_job
from models.emu3 import Emu3Adapter, Emu3DirectoryError

PROMPTS = ["a photo of a red circle", "a photo of two blue squares"]


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    path = emu3_like.save(tmp_path_factory.mktemp("emu3") / "model")
    from models.loading import load_adapter
    adapter = load_adapter(path)
    assert isinstance(adapter, Emu3Adapter)
    return adapter, path


def test_sampling_over_the_visual_vocabulary_matches_teacher_forcing_and_rows_are_independent(emu):
    a, _ = emu
    out = a.sample(PROMPTS, 2, 3.0, 1.0, torch.Generator().manual_seed(0))
    assert out.tokens.shape == (4, 64) and out.images.shape == (4, 32, 32, 3)
    assert torch.isin(out.tokens, a.visual).all()  # only visual tokens are ever drawn
    rows = [p for p in PROMPTS for _ in range(2)]
    with torch.no_grad():
        assert (a.image_logprobs(rows, out.tokens, 3.0, 1.0) - out.logprobs).abs().max() <= 1e-4
        alone = a.image_logprobs(rows[2:3], out.tokens[2:3], 3.0, 1.0)
    assert (alone - out.logprobs[2:3]).abs().max() <= 1e-4  # a prompt alone = in a batch


def test_answers_are_probabilities_and_a_question_alone_equals_the_batch(emu):
    a, _ = emu
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    both = a.answer_probs(images, ["is there a circle?", "is it red?"], [0, 1])
    alone = a.answer_probs(images[1:], ["is it red?"])
    assert (both > 0).all() and (both.sum(-1) <= 1 + 1e-6).all() and torch.allclose(alone, both[1:], atol=1e-5)
    assert [lp.numel() for lp in a.prompt_logprobs(images, ["a red circle", "two squares"])] == [
        len(a.tok(" a red circle", add_special_tokens=False).input_ids),
        len(a.tok(" two squares", add_special_tokens=False).input_ids)]
    assert len(a.write(PROMPTS, "write a rubric", 4)) == 2 and len(a.ask(images, ["what is it?"], [1], 3)) == 1


def test_gradients_reach_the_language_model_and_not_the_vq_model(emu):
    a, _ = emu
    out = a.sample(PROMPTS[:1], 2, 3.0, 1.0, torch.Generator().manual_seed(1))
    grads = trainable_grads(a, PROMPTS[:1] * 2, out.tokens, 3.0)
    assert grads and all(n.startswith(("model.text_model.", "lm_head.")) for n in grads)
    assert sum(grads.values()) > 0


def test_save_and_reload_are_bitwise(emu, tmp_path):
    from models.loading import load_adapter
    a, _ = emu
    a.save_pretrained(tmp_path / "again")
    b = load_adapter(tmp_path / "again")
    assert all(torch.equal(x, y) for x, y in zip(a.weights().values(), b.weights().values()))
    assert b.image_size == a.image_size and b.templates == a.templates


def test_an_emu3_directory_without_its_image_tokenizer_is_one_line(emu, tmp_path):
    import shutil

    from safetensors.torch import load_file, save_file
    _, path = emu
    no_vocab = shutil.copytree(path, tmp_path / "no_vocab")
    config = json.loads((no_vocab / "config.json").read_text())
    config["vocabulary_map"] = {k: v for k, v in config["vocabulary_map"].items() if "visual token" not in k}
    (no_vocab / "config.json").write_text(json.dumps(config))
    with pytest.raises(Emu3DirectoryError, match="vocabulary_map has no visual tokens"):
        Emu3Adapter.from_pretrained(no_vocab)
    no_vq = shutil.copytree(path, tmp_path / "no_vq")
    weights = load_file(no_vq / "model.safetensors")
    save_file({k: v for k, v in weights.items() if "vqmodel." not in k}, no_vq / "model.safetensors")
    with pytest.raises(Emu3DirectoryError, match="has no image tokenizer weights"):
        Emu3Adapter.from_pretrained(no_vq)


@pytest.mark.slow  # ~30 s
def test_a_two_step_meta_ttrl_job_on_emu3(ray_local, tmp_path):
    metrics = two_step_job(emu3_like.save(tmp_path / "model", image_size=64), tmp_path)
    assert [m["step"] for m in metrics] == [0, 1] and all(m["updates"] >= 1 for m in metrics)
    assert metrics[1]["kl"] > 0
