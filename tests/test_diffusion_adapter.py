"""The flow-model SDE (Flow-GRPO's per-step Gaussian log-probs) by hand, and the diffusion adapter on tiny SD3,
Qwen-Image and FLUX transformers + tiny VAEs, conditioned on a tiny Qwen2.5-VL's text states (Qwen-Image's design)
or on a published pipeline's own CLIP/T5 encoders (SD3, FLUX; their rubrics from a separate tiny Qwen2.5-VL)."""
import math

import pytest
import torch

from models.diffusion import DiffusionAdapter, FlowSettings, flow_schedule
from models.flow_sde import gaussian_logprob, guided_velocity, noise_scale, sde_mean_std


def test_sde_step_mean_std_and_logprob_by_hand():
    # x = 1, v = 0.5, t = 0.5 -> 0.25, level 0.7: s = 0.7 sqrt(0.5 / 0.5) = 0.7, dt = -0.25
    # mean = 1 + (0.5 + 0.49 / 1.0 * (1 + 0.5 * 0.5)) * -0.25 = 0.721875; std = 0.7 * sqrt(0.25) = 0.35
    mean, std = sde_mean_std(torch.ones(1, 2), torch.full((1, 2), 0.5), 0.5, 0.25, 0.9, 0.7)
    assert torch.allclose(mean, torch.full((1, 2), 0.721875)) and std == pytest.approx(0.35)
    # at the mean: -log 0.35 - log sqrt(2 pi) = 0.1308836; one std away: 0.5 less
    assert float(gaussian_logprob(mean, mean, std)) == pytest.approx(0.1308836, abs=1e-6)
    assert float(gaussian_logprob(mean + 0.35, mean, std)) == pytest.approx(0.1308836 - 0.5, abs=1e-6)
    assert noise_scale(1.0, 0.75, 0.7) == pytest.approx(0.7 * math.sqrt(1 / 0.25))  # t = 1 capped
    assert torch.equal(guided_velocity(torch.tensor([2.0]), torch.tensor([1.0]), 3.0), torch.tensor([4.0]))


def test_flow_schedule_is_diffusers_shifted_schedule():
    assert flow_schedule(2, 3.0) == pytest.approx([1.0, 0.75, 0.0])  # 3 * 0.5 / (1 + 2 * 0.5) = 0.75
    assert flow_schedule(4, 1.0) == pytest.approx([1.0, 0.75, 0.5, 0.25, 0.0])


def tiny_qwen_text_encoder():
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from toyworld.vocabulary import build_tokenizer
    tok = build_tokenizer()
    cfg = Qwen2_5_VLConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                         num_key_value_heads=1, vocab_size=len(tok), max_position_embeddings=256,
                         rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}, bos_token_id=1, eos_token_id=2),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32,
                           fullatt_block_indexes=[0]), image_token_id=4, video_token_id=3, vision_start_token_id=5)
    vlm = Qwen2_5_VLForConditionalGeneration(cfg).eval().requires_grad_(False)

    def encode(prompts):
        from models.flow_text import TextCondition
        enc = tok(["<bos> " + p for p in prompts], padding=True, return_tensors="pt", add_special_tokens=False)
        states = vlm.model(input_ids=enc.input_ids, attention_mask=enc.attention_mask).last_hidden_state
        return TextCondition(states, enc.attention_mask, states.mean(1))
    return encode


@pytest.fixture(scope="module")
def flow_adapter():
    from diffusers import AutoencoderKL, SD3Transformer2DModel
    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=4, num_layers=1, attention_head_dim=8,
                                        num_attention_heads=2, joint_attention_dim=32, caption_projection_dim=16,
                                        pooled_projection_dim=32, out_channels=4, pos_embed_max_size=8)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32),
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        layers_per_block=1, sample_size=16).eval().requires_grad_(False)
    return DiffusionAdapter(transformer.eval(), vae, tiny_qwen_text_encoder(), FlowSettings(steps=4, trained_steps=(0, 2)),
                            latent_channels=4, latent_size=8)


def test_sampled_step_logprobs_equal_teacher_forced_ones(flow_adapter):
    prompts = ["a photo of a red circle", "a photo of two squares"]
    out = flow_adapter.sample(prompts, n=2, guidance=4.0, generator=flow_adapter.generator(0))
    assert out.tokens.shape == (4, 5, 4, 8, 8) and out.logprobs.shape == (4, 2) and out.images.shape == (4, 16, 16, 3)
    rows = [p for p in prompts for _ in range(2)]
    with torch.no_grad():
        forced = flow_adapter.image_logprobs(rows, out.tokens, 4.0)
    assert (forced - out.logprobs).abs().max() <= 1e-4
    other = flow_adapter.image_logprobs(rows, out.tokens, 1.0)  # another guidance scale: another distribution
    assert (other - out.logprobs).abs().max() > 1e-3
    other.sum().backward()  # the transformer gets the gradient of the trained steps' log-probs
    grads = [p.grad for p in flow_adapter.transformer.parameters() if p.grad is not None]
    assert grads and any(float(g.abs().sum()) > 0 for g in grads)
    flow_adapter.transformer.zero_grad()


def test_trained_steps_outside_the_schedule_are_refused(flow_adapter):
    with pytest.raises(ValueError, match=r"trained steps \[7\] are outside 0..3"):
        DiffusionAdapter(flow_adapter.transformer, flow_adapter.vae, flow_adapter.encode_text,
                         FlowSettings(steps=4, trained_steps=(7,)), 4, 8)


@pytest.fixture(scope="module")
def flow_dir(tmp_path_factory):
    from fixtures import flow_like
    return flow_like.build(tmp_path_factory.mktemp("flow") / "model", trained_steps=(0, 2))


def test_qwen_image_latents_pack_into_2x2_patch_tokens_and_back():
    from models.flow_families import pack, unpack
    x = torch.arange(2 * 3 * 4 * 6, dtype=torch.float32).view(2, 3, 4, 6)
    tokens = pack(x)
    assert tokens.shape == (2, 6, 12) and torch.equal(unpack(tokens, 4, 6), x)
    # token 0 holds the top-left 2 x 2 patch of every channel, channel-major: x[0, c, 0:2, 0:2]
    assert torch.equal(tokens[0, 0], torch.cat([x[0, c, :2, :2].reshape(-1) for c in range(3)]))


@pytest.mark.parametrize("family", ["sd3", "qwen_image"])
def test_flow_model_directory_round_trip_and_vlm_answers(tmp_path, family):
    from fixtures import flow_like
    from models.loading import load_adapter
    a = load_adapter(flow_like.build(tmp_path / family, trained_steps=(0, 2), family=family))
    assert isinstance(a, DiffusionAdapter) and a.s.trained_steps == [0, 2] and a.device.type == "cpu"
    assert a.family.name == family
    prompts = ["a photo of a red circle", "a photo of two blue squares to the left of a green triangle"]
    out = a.sample(prompts, 1, 4.0, generator=a.generator(1))
    assert out.images.shape == (2, 64, 64, 3)
    with torch.no_grad():
        assert (a.image_logprobs(prompts, out.tokens, 4.0) - out.logprobs).abs().max() <= 1e-4
        # a row's log-probs do not depend on the other prompts of its batch (fixed-length prompt encoding)
        alone = a.image_logprobs(prompts[:1], out.tokens[:1], 4.0)
        assert (alone - out.logprobs[:1]).abs().max() <= 1e-4
        yes_no = a.answer_probs(out.images, ["is there a circle?", "is there a square?"], [0, 1])
        alone = a.answer_probs(out.images[1:], ["is there a square?"])
    assert (yes_no > 0).all() and (yes_no.sum(-1) <= 1 + 1e-6).all() and torch.allclose(alone, yes_no[1:], atol=1e-5)
    from rewards.scoring import question_scores
    both = question_scores(yes_no, torch.tensor([True, True])) + question_scores(yes_no, torch.tensor([False, False]))
    assert torch.allclose(both, torch.ones(2))  # Eq. 5 normalises over {Yes, No}


@pytest.mark.parametrize("model", ["qwen_vl_conditioned", pytest.param("flux", marks=pytest.mark.slow)])
def test_two_step_meta_ttrl_job_on_the_flow_backend(ray_local, flow_dir, vlm_dir, tmp_path, model):
    """Rollouts sample SDE trajectories, the tiny Qwen2.5-VL writes and answers the rubric (the flow model's own
    text encoder, or FLUX's separate `model.understanding_path`), GRPO trains the trained steps, the weight sync
    (checksummed every step) carries the transformer."""
    import json

    from driver.cli import UserError
    from fixtures import flow_like
    from launch import meta_ttrl
    if model == "flux":
        with pytest.raises(UserError, match="has no VLM .* set model.understanding_path="):
            meta_ttrl.main([f"model.path={flow_like.published_pipeline(tmp_path / 'flux', 'flux')}",
                            f"run.dir={tmp_path / 'refused'}"])
    path = flow_dir if model != "flux" else f"{tmp_path / 'flux'} model.understanding_path={vlm_dir}"
    meta_ttrl.main([*f"model.path={path}".split(), "trainer.steps=2", "data.prompts_per_step=2", "rollout.group_size=2",
                    "rollout.guidance=4.0", "grpo.lr=1e-2", "rubric.max_new_tokens=8", "data.heldout=",
                    "data.eval_max_prompts=1", "data.eval_samples=1", "run.grid_prompts=0", "run.wandb=disabled",
                    f"run.dir={tmp_path}"])
    metrics = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [0, 1] and all(m["updates"] >= 1 for m in metrics)
    assert metrics[1]["kl"] > 0  # the first update moved the transformer away from the frozen reference


def test_a_token_based_judge_is_refused_for_a_flow_model(flow_dir, tmp_path):
    from launch import meta_ttrl
    from driver.cli import UserError
    with pytest.raises(UserError, match="reward.judge=gvu needs a token-based generator"):
        meta_ttrl.main([f"model.path={flow_dir}", "reward.judge=gvu", f"run.dir={tmp_path}"])


@pytest.mark.slow  # ~20 s each; the flow form of the update is tested by hand in test_method_equations.py
@pytest.mark.parametrize("scores", ["yes_no", "text"])
def test_srum_two_steps_on_a_tiny_flow_model(ray_local, flow_dir, tmp_path, scores):
    """SRUM Eq. 1-3 on a flow model: the judge paints its maps on the latent grid (scores from yes/no answers, or
    from the scoring prompts answered in text by the pipeline's Qwen2.5-VL), the learner's flow-matching loss trains
    the transformer on its own latents."""
    import json

    from launch import meta_ttrl
    meta_ttrl.main([f"model.path={flow_dir}", "reward.judge=srum", f"reward.srum_scores={scores}",
                    "trainer.algorithm=srum", "trainer.steps=2",
                    "data.prompts_per_step=2", "rollout.group_size=2", "rubric.max_new_tokens=8", "data.heldout=",
                    "data.eval_max_prompts=1", "data.eval_samples=1", "run.grid_prompts=0", "run.wandb=disabled",
                    f"run.dir={tmp_path}"])
    metrics = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [0, 1] and all(m["updates"] >= 1 for m in metrics)
    assert all(m["flow_error"] > 0 and -1 <= m["reward_map_mean"] <= 1 for m in metrics)


def test_broken_flow_directories_say_what_is_wrong(flow_dir, tmp_path):
    import json
    import shutil
    from models.diffusion import check_flow_dir
    copy = shutil.copytree(flow_dir, tmp_path / "copy")
    index = json.loads((copy / "model_index.json").read_text())
    (copy / "model_index.json").write_text(json.dumps({**index, "transformer": ["diffusers", "CogView4Transformer2DModel"]}))
    with pytest.raises(ValueError, match="transformer class 'CogView4Transformer2DModel' is not supported; supported: "
                                         "SD3Transformer2DModel, QwenImageTransformer2DModel, FluxTransformer2DModel"):
        check_flow_dir(copy)
    (copy / "model_index.json").write_text(json.dumps({**index, "text_encoder": ["transformers", "CLIPTextModel"]}))
    with pytest.raises(ValueError, match="its text encoder 'CLIPTextModel' is not a Qwen2.5-VL and its pipeline "
                                         "'MetaTTRLFlowPipeline' is not one whose text encoders are wired"):
        check_flow_dir(copy)
    shutil.rmtree(copy / "vae")
    with pytest.raises(FileNotFoundError, match=r"is not a flow model: it lacks \['vae'\]"):
        check_flow_dir(copy)


def test_a_published_qwen_image_layout_loads_with_default_flow_settings(tmp_path):
    """Qwen/Qwen-Image as published: no meta_ttrl.json, the tokenizer in tokenizer/, no image-processor config,
    a scheduler with resolution-dependent shift."""
    import json
    import shutil

    from fixtures import flow_like
    from models.diffusion import check_flow_dir
    from models.loading import load_adapter
    path = flow_like.build(tmp_path / "qwen_image", family="qwen_image")
    (path / "meta_ttrl.json").unlink()
    (path / "tokenizer").mkdir()
    for f in path.joinpath("text_encoder").iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "vocab", "merges", "chat_template")):
            shutil.move(str(f), path / "tokenizer" / f.name)
    (path / "text_encoder" / "preprocessor_config.json").unlink()
    (path / "scheduler").mkdir()
    (path / "scheduler" / "scheduler_config.json").write_text(json.dumps(
        {"use_dynamic_shifting": True, "base_image_seq_len": 256, "max_image_seq_len": 8192, "base_shift": 0.5,
         "max_shift": 0.9}))
    _, meta = check_flow_dir(path)
    # 512 px -> 64 x 64 latents -> 32 x 32 = 1024 tokens: mu = 0.5 + 0.4 * (1024 - 256) / (8192 - 256)
    assert meta["latent_size"] == 64 and meta["latent_channels"] == 4
    assert meta["flow"]["shift"] == pytest.approx(math.exp(0.5 + 0.4 * 768 / 7936))
    assert meta["flow"]["steps"] == 10 and meta["flow"]["noise_level"] == 0.7
    shell = load_adapter(path, device="meta")
    assert shell.family.name == "qwen_image" and shell.max_positions == 1024


@pytest.fixture(scope="module")
def vlm_dir(tmp_path_factory):
    from fixtures import qwen_vl_like
    return qwen_vl_like.save(tmp_path_factory.mktemp("vlm") / "qwen_vl")


@pytest.mark.parametrize("kind, family", [("flux", "flux"), ("sd3_pipeline", "sd3")])
def test_published_sd3_and_flux_pipelines_use_their_own_text_encoders(tmp_path, vlm_dir, kind, family):
    """FLUX (guidance-distilled: the scale is an input, one pass) and SD3 (true CFG) as diffusers saves them:
    prompts through the pipeline's CLIP/T5 `encode_prompt`; sampled = teacher-forced log-probs, a row alone = in a
    batch, another guidance scale differs, gradients reach the transformer; understanding comes from
    `understanding` (model.understanding_path) and is refused in one line without it; save and reload keep it."""
    from fixtures import flow_like
    from models.diffusion import NoUnderstanding
    from models.flow_text import PipelineText
    from models.loading import load_adapter
    path = flow_like.published_pipeline(tmp_path / kind, kind)
    bare = load_adapter(path)
    assert bare.family.name == family and isinstance(bare.encode_text, PipelineText)
    with pytest.raises(NoUnderstanding, match="set model.understanding_path="):
        bare.write(["a red circle"], "write a rubric")
    a = load_adapter(path, understanding=vlm_dir)
    prompts = ["a photo of a red circle", "a photo of two blue squares to the left of a green triangle"]
    out = a.sample(prompts, 1, 3.5, generator=a.generator(1))
    assert out.images.shape == (2, 64, 64, 3) and out.logprobs.shape == (2, 4)
    forced = a.image_logprobs(prompts, out.tokens, 3.5)
    assert (forced.detach() - out.logprobs).abs().max() <= 1e-4
    with torch.no_grad():
        alone = a.image_logprobs(prompts[:1], out.tokens[:1], 3.5)
        other = a.image_logprobs(prompts, out.tokens, 1.5)
    assert (alone - out.logprobs[:1]).abs().max() <= 1e-4 and (other - out.logprobs).abs().max() > 1e-3
    forced.sum().backward()
    assert any(float(p.grad.abs().sum()) > 0 for p in a.transformer.parameters() if p.grad is not None)
    yes_no = a.answer_probs(out.images, ["is there a circle?", "is there a square?"], [0, 1])
    assert (yes_no > 0).all() and (yes_no.sum(-1) <= 1 + 1e-6).all()
    a.save_pretrained(tmp_path / "saved")
    again = load_adapter(tmp_path / "saved", understanding=vlm_dir)
    with torch.no_grad():
        assert torch.equal(again.image_logprobs(prompts, out.tokens, 3.5), forced.detach())


@pytest.mark.slow
def test_gpu_smoke_runs_two_meta_ttrl_steps_on_the_qwen_image_layout(ray_local, capsys):
    """tests/gpu_smoke.py's flow path at tiny widths on the CPU (width=qwen_image builds the real shapes)."""
    import gpu_smoke
    result = gpu_smoke.main(["width=qwen_image_tiny", "grpo.lr=1e-2", "rollout.group_size=2",
                             "data.prompts_per_step=1", "rubric.max_new_tokens=8"])
    steps = result["steps"]
    assert [s["step"] for s in steps] == [0, 1] and all(s["updates"] >= 1 for s in steps) and steps[1]["kl"] > 0
    assert "gpu smoke: qwen_image_tiny widths, 2 layers, 256 latent tokens at 64 px, 0 GPU(s)" in capsys.readouterr().out
