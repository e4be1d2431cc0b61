"""Each method of the family end to end on the toy world, short configs (issue 5): SRUM's reward-weighted
training, the VQA-scored rubric (tiny GIT) with E-TTRL's external judge model, MILR's latent search, and (slow
set) GRPO on the GvU and the oracle judge. (Meta-TTRL itself: tests/test_meta_ttrl.py; the judges one by one, the
reward-server judge and Best-of-N: tests/test_judges.py; every method in one run: tests/test_compare.py, slow.)"""
import json

import pytest
import torch

from launch import meta_ttrl

# one step, tiny evaluation, no heldout, no grids: what differs between methods is the judge and the update
TINY = ["trainer.steps=1", "data.prompts_per_step=2", "rollout.group_size=2", "data.eval_max_prompts=1",
        "data.eval_samples=1", "data.heldout=", "run.grid_prompts=0", "run.wandb=disabled", "grpo.lr=1e-3"]


def run_job(tmp_path, overrides: list[str]) -> tuple[dict, list[dict]]:
    meta_ttrl.main(TINY + overrides + [f"run.dir={tmp_path / 'run'}"])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    metrics = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert summary["steps"] == 1 and len(metrics) == 1 and metrics[0]["updates"] >= 1
    return summary, metrics


@pytest.mark.slow  # the judge objects are tested in test_judges.py; the job path is the one the others take
@pytest.mark.parametrize("judge", ["gvu", "oracle"])
def test_grpo_with_the_gvu_and_the_oracle_judge(ray_local, tmp_path, judge):
    summary, metrics = run_job(tmp_path, [f"reward.judge={judge}"])
    assert not any(metrics[0]["rubric"].values())  # no rubric was written
    if judge == "oracle":  # the reward is the oracle's verdict itself
        assert metrics[0]["reward_mean"] == pytest.approx(metrics[0]["eval"])
    else:
        assert 0 < metrics[0]["reward_mean"] < 1


def test_srum_trains_on_its_reward_maps(ray_local, tmp_path):
    _, metrics = run_job(tmp_path, ["reward.judge=srum", "trainer.algorithm=srum"])
    m = metrics[0]
    assert -1 <= m["reward_map_mean"] <= 1 and 0 <= m["alpha_mean"] <= 1 and m["grad_norm"] > 0
    assert "zero_variance_groups" not in m  # no group comparison in SRUM


def make_tiny_git(path):
    """A randomly initialised GIT with the toy tokenizer, saved in Hugging Face layout at `path`."""
    from transformers import GitForCausalLM

    from models.git import toy_git_config
    from toyworld.vocabulary import build_tokenizer

    tok = build_tokenizer()
    torch.manual_seed(0)
    GitForCausalLM(toy_git_config(tok)).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture
def tiny_git(tmp_path):
    return make_tiny_git(tmp_path / "git")


def test_vqa_scored_rubric_and_e_ttrl_external_model(ray_local, tmp_path, tiny_git, tiny_adapter):
    """One job, both mechanisms: an external judge model (E-TTRL: reward.model_path) writes the rubric, a tiny GIT
    answers it (reward.judge=vqa_rubric)."""
    tiny_adapter.save_pretrained(tmp_path / "external")  # random weights: it cannot write a parseable rubric
    _, metrics = run_job(tmp_path, ["reward.judge=vqa_rubric", f"reward.vqa_path={tiny_git}",
                                    f"reward.model_path={tmp_path / 'external'}"])
    m = metrics[0]
    assert m["rubric"]["written"] == 2 and m["rubric"]["fallback"] == 2  # so the external model wrote them
    assert 0 < m["reward_mean"] < 1  # the GIT's answers: random weights, probabilities strictly inside (0, 1)


@pytest.mark.slow  # the judge is tested by hand and behind the reward server in test_judges.py
def test_external_reward_model_judge_rates_alignment(ray_local, tmp_path, tiny_adapter):
    """reward.judge=reward_model: the external model (reward.model_path) rates each image with one question; no
    rubric is written."""
    tiny_adapter.save_pretrained(tmp_path / "rater")
    _, metrics = run_job(tmp_path, ["reward.judge=reward_model", f"reward.model_path={tmp_path / 'rater'}"])
    assert not any(metrics[0]["rubric"].values()) and 0 < metrics[0]["reward_mean"] < 1


def test_milr_searches_latents_and_scores_the_best_image(ray_local, capsys):
    from launch import milr

    milr.main(["data.eval_max_prompts=3", "data.heldout=", "milr.steps=2", "milr.samples=2", "milr.threshold=2",
               "milr.strategy=text_then_image", "prompts_per_call=2"])
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["n_images"] == 3 and result["samples"] == 3 * 2 * 2 and result["mean_steps"] == 2
    assert result["stopped_early"] == 0 and 0 <= result["overall"] <= 1
