"""Janus-Pro's structure through the one Janus adapter (issue 4): a tiny random model with Janus-Pro's token layout
(DeepSeek chat format, byte-level BPE, <begin_of_image> + 576 image tokens at 384 px), saved in Hugging Face
layout with no meta_ttrl.json (as a converted Janus-Pro checkpoint is) and loaded with `model.path=`."""
import json

import pytest
import torch

from fixtures import janus_pro_like
from models.janus import JanusAdapter
from rewards.scoring import question_scores

PROMPTS = ["a photo of a red circle", "a photo of two blue squares"]


@pytest.fixture(scope="module")
def janus_pro_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("janus_pro_tiny")
    model, tok = janus_pro_like.build(seed=0)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def adapter(janus_pro_dir):
    return JanusAdapter.from_pretrained(janus_pro_dir)


def test_loads_with_janus_pro_chat_format_and_layout(adapter):
    assert adapter.n_image_tokens == 576 and adapter.image_joiner == ""
    assert adapter.model.dtype == torch.float32 and adapter.device.type == "cpu"  # auto on a CPU machine
    ids, uncond, mask = adapter.generation_prompts(PROMPTS[:1])
    words = adapter.tok.convert_ids_to_tokens(ids[0][mask[0].bool()])
    assert words[:2] == [janus_pro_like.BOS, "<|User|>"] and words[-3:] == ["<|Assistant|>", ":", janus_pro_like.BOI]
    kept = adapter.tok.convert_ids_to_tokens(uncond[0][mask[0].bool()])
    assert kept[0] == janus_pro_like.BOS and kept[-1] == janus_pro_like.BOI
    assert set(kept[1:-1]) == {janus_pro_like.PAD}  # CFG's unconditional row, as Janus builds it
    assert adapter.tok.convert_ids_to_tokens(ids[0][mask[0].bool()][adapter.prompt_offset].item()) == "Ġa"


def test_sampling_576_tokens_matches_teacher_forcing_and_answers_are_normalised(adapter):
    out = adapter.sample(PROMPTS, n=1, guidance=5.0, temperature=1.0, generator=adapter.generator(0))
    assert out.tokens.shape == (2, 576) and out.images.shape == (2, 384, 384, 3)
    with torch.no_grad():
        forced = adapter.image_logprobs(PROMPTS, out.tokens, 5.0, 1.0)
    assert (forced - out.logprobs).abs().max() <= 1e-4
    with torch.no_grad():
        yes_no = adapter.answer_probs(out.images, ["is there a circle?", "is there a square?"])
    assert (yes_no > 0).all() and (yes_no.sum(-1) <= 1 + 1e-6).all()
    with torch.no_grad(), pytest.MonkeyPatch.context() as m:  # the chat format puts the image first: shared
        m.setattr(adapter, "_image_prefix", lambda rows: 0)
        full = adapter.answer_probs(out.images, ["is there a circle?", "is there a square?"])
    assert torch.allclose(yes_no, full, atol=1e-5), (yes_no - full).abs().max()
    s_yes = question_scores(yes_no, torch.tensor([True, True]))
    s_no = question_scores(yes_no, torch.tensor([False, False]))
    assert torch.allclose(s_yes + s_no, torch.ones(2))  # Eq. 5 normalises over {Yes, No}
    caption = adapter.prompt_logprobs(out.images[:1], PROMPTS[:1])[0]
    assert len(caption) == len(adapter.tok(" " + PROMPTS[0], add_special_tokens=False).input_ids)


def test_gpu_smoke_runs_two_meta_ttrl_steps_on_the_janus_pro_layout_with_a_zero1_learner(ray_local, capsys):
    """tests/gpu_smoke.py at tiny widths on the CPU: Janus-Pro's layout, model built and loaded from a local
    directory, two GRPO steps of the main job with the DeepSpeed ZeRO-1 learner on two ranks (the job checks
    after every sync that each rollout actor holds the learner's weights, by checksum), stage timings printed."""
    pytest.importorskip("deepspeed", reason="make install installs the deepspeed extra")
    import gpu_smoke
    result = gpu_smoke.main(["width=tiny", "layers=1", "grpo.lr=1e-2", "rollout.group_size=2", "data.prompts_per_step=1",
                             "trainer.strategy=deepspeed", "trainer.zero_stage=1", "trainer.learners=2"])
    steps = result["steps"]
    assert result["gpus"] == 0 and [s["step"] for s in steps] == [0, 1] and all(s["updates"] >= 1 for s in steps)
    assert steps[1]["kl"] > 0  # step 0's update moved the policy away from the frozen reference
    assert all(s[k] is not None and s[k] >= 0 for s in steps for k in gpu_smoke.STAGES)
    out = capsys.readouterr().out
    assert "gpu smoke: tiny widths, 1 layers, 576 image tokens at 384 px, 0 GPU(s) (CPU)" in out
    assert "rollout_s" in out and "sync_s" in out


def test_bad_model_directories_say_what_is_wrong(tmp_path, janus_pro_dir, tiny_adapter):
    with pytest.raises(FileNotFoundError, match="no model at .*config.json"):
        JanusAdapter.from_pretrained(tmp_path / "missing")
    llama = tmp_path / "llama"
    llama.mkdir()
    (llama / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ValueError, match="holds a 'llama' model; the janus adapter loads model_type 'janus'"):
        JanusAdapter.from_pretrained(llama)
    toy = tmp_path / "toy"
    tiny_adapter.save_pretrained(toy)
    (toy / "meta_ttrl.json").write_text("{not json")
    with pytest.raises(ValueError, match="meta_ttrl.json is not a prompt format"):
        JanusAdapter.from_pretrained(toy)
    (toy / "meta_ttrl.json").unlink()  # the toy tokenizer has none of Janus-Pro's chat tokens
    with pytest.raises(ValueError, match="it is not Janus-Pro's; put a meta_ttrl.json"):
        JanusAdapter.from_pretrained(toy)
    (toy / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no safetensors weights"):
        JanusAdapter.from_pretrained(toy)
