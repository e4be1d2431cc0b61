"""launch/pretrain_toy.py (toyworld/pretrain_stages.py) is deterministic by seed (tiny sizes, a few steps)."""
import pytest
import torch
from safetensors.torch import load_file

from launch import pretrain_toy
from launch.configs.pretrain import PretrainConfig
from toyworld import pretrain_stages

TINY = ["hidden=32", "layers=1", "vision_hidden=32", "vision_layers=1", "codebook=64", "vq_steps=3", "vq_batch=2",
        "symbolic_steps=2", "joint_steps=3", "gen_batch=2", "und_batch=2", "rubric_batch=2", "warmup=1",
        "measure_after=false", "tail_steps=2", "tail_gen_batch=2", "tail_retarget_codes=true", "tail_gen_only_steps=1",
        "tail_shape_first=0.5", "compose_steps=2", "compose_gen_only_steps=1"]
NO_TAILS = [a for a in TINY if not a.startswith(("tail_", "compose_"))] + ["tail_steps=0", "compose_steps=0"]


@pytest.mark.slow  # three pretraining runs (25 s); the default suite checks a full-size step's bitwise gradients
def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        pretrain_toy.main(TINY + [f"out={tmp_path / name}", f"seed={seed}"])
    a, b, c = (load_file(tmp_path / n / "model.safetensors") for n in "abc")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert any(not (a[k] == c[k]).all() for k in a)


def test_full_size_step_gives_bitwise_equal_gradients_twice():
    """At the default sizes (not the tiny ones above), CPU threads accumulate the token-embedding gradient in a
    varying order (measured: 3e-8 apart) unless `deterministic` is on; reruns then drift apart."""
    import torch
    from transformers import JanusForConditionalGeneration

    from models.janus import JanusAdapter
    from models.toy import TEMPLATES, toy_config
    from toyworld.vocabulary import build_tokenizer
    from toyworld.pretrain import JointData, text_loss

    cfg, tok = PretrainConfig(), build_tokenizer()

    def gradients():
        torch.manual_seed(0)
        model_cfg = toy_config(len(tok), tok.convert_tokens_to_ids("<image>"), hidden=cfg.hidden, layers=cfg.layers,
                               vision_hidden=cfg.vision_hidden, vision_layers=cfg.vision_layers, codebook=64)
        adapter = JanusAdapter(JanusForConditionalGeneration(model_cfg), tok, TEMPLATES)
        adapter.model.train()
        data = JointData(adapter, seed=1)
        losses = pretrain_stages.understanding_losses(adapter, data, cfg, symbolic=True)
        (sum(losses.values()) + text_loss(adapter, *data.rubric(cfg.rubric_batch))).backward()
        return {n: p.grad.clone() for n, p in adapter.model.named_parameters() if p.grad is not None}

    with pretrain_stages.deterministic(cfg.threads):
        first, second = gradients(), gradients()
    assert not torch.are_deterministic_algorithms_enabled()  # restored for the rest of the session
    assert first.keys() == second.keys() and "model.language_model.embed_tokens.weight" in first
    assert all(torch.equal(first[n], second[n]) for n in first)


def test_a_codebook_smaller_than_the_patch_types_is_refused_before_training():
    from driver.cli import UserError

    with pytest.raises(UserError, match="codebook must be >= 61 .got 32.*consolidate_codes=false"):
        pretrain_toy.main(["codebook=32", "consolidate_codes=true"])
    with pytest.raises(UserError, match="codebook must be >= 61 .got 32.*tail_retarget_codes=false"):
        pretrain_toy.main(["codebook=32", "tail_retarget_codes=true"])
    with pytest.raises(UserError, match="composition tail .* codebook must be >= 61 .got 32.*compose_steps=0"):
        pretrain_toy.main(["codebook=32"])


def test_a_bad_tail_kind_list_is_refused_before_training():
    from driver.cli import UserError

    with pytest.raises(UserError, match="tail_kinds 'object,colour'.*object, attribute, count, spatial, relation"):
        pretrain_toy.main(["tail_kinds=object,colour"])
    with pytest.raises(UserError, match="compose_kinds .count,colour.*object, attribute"):
        pretrain_toy.main(["compose_kinds=count,colour"])


def test_the_default_stages_run_and_log_their_losses(tmp_path, capsys):
    """Every stage of the defaults at tiny sizes, one pretraining run: the retargeted codes are checked, every
    tail step logs its understanding, rubric and generation losses, the model is saved."""
    pretrain_toy.main(TINY + ["log_every=1", f"out={tmp_path}"])
    out = capsys.readouterr().out
    assert "codes retargeted to patch types: oracle passes" in out
    assert "tail 2/2 und" in out and " rubric " in out.split("tail 2/2")[1] and " gen " in out.split("tail 2/2")[1]
    assert (tmp_path / "model.safetensors").is_file()


@pytest.mark.slow  # three pretraining runs and two tails (~30 s); the run above keeps every stage in the default suite
def test_the_tails_on_a_saved_model_equal_the_tails_in_one_run(tmp_path):
    """How the committed model was made (docs/results/toy_umm.md): the tail, then the composition tail, each run
    on the saved output of the stages before, give bitwise the weights one run of the defaults gives."""
    from driver.cli import parse_config
    from models.janus import JanusAdapter
    from toyworld.pretrain_stages import compose_stage, deterministic, train_tail

    pretrain_toy.main(TINY + [f"out={tmp_path / 'one_run'}"])
    pretrain_toy.main(NO_TAILS + [f"out={tmp_path / 'no_tail'}"])
    cfg = parse_config(PretrainConfig, TINY, "test")
    for stage, base, out in ((cfg, "no_tail", "tail"), (compose_stage(cfg), "tail", "both")):
        with deterministic(cfg.threads):
            adapter = JanusAdapter.from_pretrained(tmp_path / base, device="cpu")
            train_tail(adapter, stage)
        adapter.save_pretrained(tmp_path / out)
    a, b = (load_file(tmp_path / n / "model.safetensors") for n in ("one_run", "both"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    before, tail = (load_file(tmp_path / n / "model.safetensors") for n in ("no_tail", "tail"))
    assert any(not torch.equal(a[k], before[k]) for k in a) and any(not torch.equal(a[k], tail[k]) for k in a)


@pytest.mark.slow  # options off by default (the 2026-11-27 experiment); 18 s
def test_consolidated_codes_and_tag_balanced_generation_run_end_to_end(tmp_path, capsys):
    """The options of the 2026-11-27 experiment (docs/results/toy_umm.md): after 3 VQ steps the codes are not yet
    one per type, so the run says so and takes generation targets from the encoder (the fallback)."""
    pretrain_toy.main(TINY + ["consolidate_codes=true", "gen_tag_balanced=true", f"out={tmp_path}"])
    out = capsys.readouterr().out
    assert "codes per patch type before consolidation" in out and "code == patch type for" in out
    assert "warning: some codes differ from their patch type" in out
    assert (tmp_path / "model.safetensors").is_file()


def test_shape_first_tail_draws_colourless_prompts_first_and_adds_generation_only_steps(tmp_path, monkeypatch):
    """tail_shape_first=0.5 of 4 steps with 1 generation-only step each: 2 draws per step (the replay, then the
    extra step); the first 2 steps' 4 draws come from the colourless train prompts, the last 2 steps' from all."""
    from driver.cli import parse_config
    from models.janus import JanusAdapter
    from toyworld.pretrain import JointData
    from toyworld.pretrain_stages import deterministic, train_tail
    from toyworld.prompts import load_split, names_a_color

    pretrain_toy.main(NO_TAILS + [f"out={tmp_path}"])
    pools, color_only, draw = [], [], JointData.generation_metas
    monkeypatch.setattr(JointData, "generation_metas", lambda self, n: pools.append(list(self.train_pool))
                        or color_only.append(self.color_only_p) or draw(self, n))
    cfg = parse_config(PretrainConfig, TINY + ["tail_steps=4", "tail_color_only=0.3"], "test")  # TINY: shape-first
    # 0.5, 1 extra step
    with deterministic(cfg.threads):
        train_tail(JanusAdapter.from_pretrained(tmp_path, device="cpu"), cfg)
    train = load_split("train")
    assert len(pools) == 8 and all(p == train for p in pools[4:])
    assert all(p == [m for m in train if not names_a_color(m)] for p in pools[:4]) and 0 < len(pools[0]) < len(train)
    assert color_only == [0.0] * 4 + [0.3] * 4  # colour-only rows once colour words are in the prompts


def test_the_composition_tail_is_the_tail_with_its_own_options_and_codes_retargeted():
    from driver.cli import parse_config
    from toyworld.pretrain_stages import compose_stage

    cfg = parse_config(PretrainConfig, ["compose_steps=7", "compose_color_only=0.4"], "test")
    stage = compose_stage(cfg)
    assert (stage.tail_steps, stage.tail_color_only, stage.tail_retarget_codes) == (7, 0.4, True)
    assert (stage.tail_gen_only_steps, stage.tail_shape_first, stage.tail_kinds) == (
        cfg.compose_gen_only_steps, cfg.compose_shape_first, cfg.compose_kinds)
    assert (cfg.tail_steps, cfg.tail_color_only, cfg.tail_retarget_codes) == (300, 0.0, False)  # cfg untouched


@pytest.mark.parametrize("bad, match", [("tail_shape_first=1.5", "tail_shape_first is a share.*0 to 1.*1.5"),
                                        ("tail_gen_only_steps=-1", "tail_gen_only_steps.*>= 0.*-1"),
                                        ("compose_color_only=-0.1", "compose_color_only is a share.*0 to 1.*-0.1"),
                                        ("compose_gen_only_steps=-2", "compose_gen_only_steps.*>= 0.*-2")])
def test_bad_tail_generation_options_are_refused_before_training(bad, match):
    from driver.cli import UserError

    with pytest.raises(UserError, match=match):
        pretrain_toy.main([bad])
