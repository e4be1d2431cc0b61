"""The README's bad-input table, row by row: each bad input to the Meta-TTRL job is one line naming what is wrong
and what is valid (exit code 2, no traceback), raised before any cluster starts."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from launch import meta_ttrl
from driver.cli import UserError
from learners import checkpoint

ROOT = Path(__file__).resolve().parents[1]
GOOD = {"tag": "colors", "include": [{"class": "circle", "count": 1, "color": "red"}],
        "prompt": "a photo of a red circle"}


def files(tmp: Path) -> dict[str, str]:
    """Bad inputs on disk, by name."""
    (tmp / "empty.jsonl").write_text("\n\n")
    (tmp / "plain.txt").write_text("a photo of a red circle\n")
    (tmp / "bad.jsonl").write_text(json.dumps(GOOD) + "\n{oops\n")
    (tmp / "long.jsonl").write_text(json.dumps({**GOOD, "prompt": "a photo of a red circle " * 120}) + "\n")
    (tmp / "alien.jsonl").write_text(json.dumps({**GOOD, "include": [{"class": "dog", "count": 1}]}) + "\n")
    broken = tmp / "broken_model"
    broken.mkdir()
    shutil.copy(ROOT / "models" / "toy_umm" / "config.json", broken)
    (broken / "model.safetensors").write_bytes(b"\x00garbage")
    return {"tmp": str(tmp), "broken": str(broken)}


ROWS = [  # (overrides, message)
    (["foo=1"], "unknown config key 'foo'; valid keys: model.path"),
    (["trainer.steps=many"], "bad config value: Value 'many' of type 'str' could not be converted to Integer"),
    (["trainer.steps"], "override 'trainer.steps' is not key=value"),
    (["model.path=/nope"], "checkpoint '/nope' not found: expected a directory with config.json"),
    (["model.path={broken}"], "could not be loaded (ValueError: {broken}/model.safetensors is not a readable "
                              "safetensors file"),
    (["model.dtype=int8"], "unknown model dtype 'int8'; valid: auto, float32, bfloat16, float16"),
    (["data.split=/nope.jsonl"], "toyworld: split '/nope.jsonl' is neither one of its splits (train, test, heldout) nor a file"),
    (["data.split={tmp}/empty.jsonl"], "empty.jsonl: no prompts"),
    (["data.split={tmp}/bad.jsonl"], "bad.jsonl: line 2 is not valid JSON"),
    (["data.split={tmp}/alien.jsonl"], "alien.jsonl: line 1: clause {'class': 'dog', 'count': 1} names a class"),
    (["data.split={tmp}/long.jsonl"], "needs 841 sequence positions, the model has 512: shorten it"),
    (["rollout.group_size=1"], "rollout.group_size must be >= 2 (GRPO compares candidates), got 1"),
    (["trainer.learners=0"], "trainer.learners must be >= 1, got 0"),
    (["guard.max_flat_groups=2"], "guard.max_flat_groups is a fraction in [0, 1], got 2.0"),
    (["run.wandb=off"], "run.wandb 'False' is not one of: auto, online, offline, disabled"),
    (["run.resume=auto"], "run.resume needs run.dir: the directory of the run to continue"),
    (["reward.judge=clip"], "reward.judge 'clip' is not one of: rubric, vqa_rubric, srum, gvu, reward_model, oracle, "
                            "server, random, shuffled"),
    (["trainer.algorithm=ppo"], "trainer.algorithm 'ppo' is not one of: grpo, srum"),
    (["sync.timeout_s=700"], "trainer.restart_timeout_s (600) must exceed sync.timeout_s (700)"),
    (["resources.rollout.strategy=TIGHT"], "resources.rollout.strategy 'TIGHT' is not one of"),
    (["resources.learner.node_resource=CPU"], "resources.learner.node_resource must be a custom resource name"),
    (["trainer.algorithm=srum"], "trainer.algorithm=srum trains on reward maps: it needs reward.judge=srum"),
    (["reward.model_path=/nope"], "checkpoint '/nope' not found: expected a directory with config.json"),
    (["reward.judge=vqa_rubric"], "reward.judge=vqa_rubric needs reward.vqa_path: a GIT model directory"),
    (["reward.judge=reward_model"], "reward.judge=reward_model needs reward.model_path: the external reward model"),
    (["reward.judge=srum", "reward.srum_scores=text"], "reward.srum_scores=text asks the judge model SRUM's scoring"),
    (["reward.srum_scores=likert"], "reward.srum_scores 'likert' is not one of: yes_no, text"),
    (["reward.judge=vqa_rubric", "reward.vqa_path={broken}"], "reward.vqa_path '{broken}' could not be loaded as a "
                                                              "GIT model"),
    (["reward.judge=server", "reward.server=localhost:5555"], "reward.judge=server needs reward.server=tcp://"),
    (["config=/nope.yaml"], "config file '/nope.yaml' not found"),
    (["config={tmp}/bad.jsonl"], "is not valid YAML"),
    (["trainer.strategy=fsdp"], "trainer.strategy 'fsdp' is not one of: torch, deepspeed"),
    (["trainer.strategy=deepspeed", "trainer.zero_stage=4"], "trainer.zero_stage must be one of (1, 2, 3)"),
    (["trainer.strategy=deepspeed", "trainer.deepspeed.gradient_clipping=5"],
     "trainer.deepspeed may not set ['gradient_clipping']: they come from grpo.*"),
    (["reward.backend=tgi"], "reward.backend 'tgi' is not one of: transformers, vllm"),
    (["reward.backend=vllm"], "reward.backend=vllm needs reward.model_path: a VLM directory vLLM serves"),
    (["reward.backend=vllm", "reward.judge=gvu"], "reward.backend=vllm writes and answers rubrics: it serves "
                                                  "reward.judge=rubric or srum, not gvu"),
    (["reward.backend=vllm", "reward.model_path={tmp}"], "reward.backend=vllm needs the vllm extra"),
    # each choice against the registry that implements it, each count and fraction against its range
    (["grpo.aggregation=sum"], "grpo.aggregation 'sum' is not one of: token-mean, seq-mean-token-mean, "
                               "seq-mean-token-sum"),
    (["sync.backend=mpi"], "sync.backend 'mpi' is not one of: auto, gloo, nccl"),
    (["resources.strategy=RANDOM"], "resources.strategy 'RANDOM' is not one of: PACK, SPREAD, STRICT_PACK, "
                                    "STRICT_SPREAD"),
    (["rubric.source=oracle"], "rubric.source 'oracle' is not one of: introspector, metadata"),
    (["sync.bucket_mb=0"], "sync.bucket_mb must be > 0.0, got 0.0"),
    (["rollout.temperature=0"], "rollout.temperature must be > 0.0, got 0.0"),
    (["grpo.lr=0"], "grpo.lr must be > 0.0, got 0.0"),
    (["grpo.adam_eps=-1"], "grpo.adam_eps must be > 0.0, got -1.0"),
    (["resources.learner.num_gpus=-1"], "resources.learner.num_gpus must be >= 0.0, got -1.0"),
    (["reward.vllm_gpu_memory=0"], "reward.vllm_gpu_memory is a fraction in (0, 1], got 0.0"),
    (["data.prompts_per_step=3", "trainer.learners=5"], "prompts_per_step x group_size must divide evenly over "
                                                        "trainer.learners"),
    # benchmarks (benchmarks/registry.py) and their evaluators
    (["data.benchmark=nope"], "data.benchmark 'nope' is not one of: toyworld, geneval, t2i_compbench"),
    (["data.benchmark=t2i_compbench", "data.split=colour_val"], "t2i_compbench: split 'colour_val' is neither one "
                                                                 "of its splits (3d_spatial, "),
    (["data.benchmark=geneval"], "the geneval evaluator needs eval.detector=<dir> eval.clip=<dir> (or set "
                                 "eval.every=0 eval.final=false to train without measuring)"),
    (["data.benchmark=geneval", "eval.detector={tmp}", "eval.clip={tmp}"], "eval.detector '{tmp}': no config.json"),
    (["data.benchmark=geneval", "eval.detector={broken}", "eval.clip={broken}"], "the detector must be one of: "
                                                                                 "mask2former, owlv2"),
    (["data.benchmark=prompts", "data.split={tmp}/plain.txt"], "benchmark prompts cannot evaluate images (a plain "
                                                               "prompt list carries nothing to check images"),
    (["data.benchmark=prompts", "data.split={tmp}/plain.txt", "eval.every=0", "eval.final=false",
      "rubric.source=metadata"], "rubric.source=metadata builds rubrics from GenEval-format metadata"),
    (["data.benchmark=dpg_bench", "eval.vlm={tmp}"], "the dpg_bench evaluator needs eval.dpg_questions=<csv>"),
    (["data.benchmark=t2i_compbench", "data.split=3d_spatial_val"], "3d_spatial needs a monocular depth model"),
    (["data.transfer=[nope]"], "data.transfer 'nope' is not one of"),
    (["data.transfer=[geneval]", "eval.final=false"], "data.transfer benchmarks are measured before and after "
                                                      "training: it needs eval.final=true"),
]


@pytest.mark.parametrize("overrides, message", ROWS, ids=[r[0][0].split("=")[0] for r in ROWS])
def test_bad_input_is_one_clear_line(overrides, message, tmp_path, monkeypatch):
    def no_cluster(*args):
        raise AssertionError("a cluster and actors were started before the mistake was seen")

    monkeypatch.setattr(meta_ttrl.Session, "__init__", no_cluster)
    paths = files(tmp_path)
    argv = [o.format(**paths) for o in overrides]
    if not any(a.startswith("run.resume=") for a in argv):
        argv.append(f"run.dir={tmp_path / 'run'}")
    with pytest.raises(UserError) as e:
        meta_ttrl.main(argv)
    for name, path in paths.items():  # not str.format: messages quote dicts
        message = message.replace("{" + name + "}", path)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_milr_settings_are_checked_in_one_line():
    from launch import milr

    for argv, message in [(["milr.strategy=sideways"], "milr.strategy 'sideways' is not one of: joint, alternating"),
                          (["milr.steps=0"], "milr.steps, milr.samples, milr.reason_tokens and prompts_per_call must "
                                             "be >= 1"),
                          (["milr.lambda_v=0"], "milr.lambda_t and milr.lambda_v are fractions in (0, 1]"),
                          (["milr.variant=preprint"], "milr.variant 'preprint' is not one of: paper, ours"),
                          (["milr.l2=-1"], "milr.l2 is a penalty weight >= 0, got -1"),
                          (["milr.variant=paper"], "MILR as published (milr.variant=paper) needs a model that "
                                                   "writes reasoning before the image")]:
        with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")):
            milr.run(argv)


def test_a_reused_run_dir_and_a_corrupted_checkpoint_to_resume(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 0}\n')
    with pytest.raises(UserError, match="already holds a run .* pass run.resume=auto to continue it"):
        meta_ttrl.main([f"run.dir={tmp_path}"])
    ckpt = checkpoint.save(tmp_path / "checkpoints", 2, {"driver": ({"x": torch.ones(3)}, {"step": 2})}, keep=1)
    (ckpt / "driver.json").write_text('{"step": 3}')  # tampered
    with pytest.raises(UserError, match="driver.json: checksum mismatch"):
        meta_ttrl.main([f"run.dir={tmp_path}", f"run.resume={ckpt}"])


def test_the_job_script_prints_the_line_without_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "launch/meta_ttrl.py", "data.split=/nope.jsonl", f"run.dir={tmp_path}"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: toyworld: split '/nope.jsonl' is neither")


def test_a_submitted_job_needs_an_absolute_run_root(monkeypatch):
    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")  # what Ray sets in a submitted job's driver
    with pytest.raises(UserError, match="give an absolute run.root"):
        meta_ttrl.main(["run.root=runs"])


def test_resources_the_cluster_lacks_fail_in_one_line_and_free_the_group(ray_local):
    from omegaconf import OmegaConf

    from actors.placement import PlacementError, place_role

    before = ray_local.util.placement_group_table()
    with pytest.raises(PlacementError, match=r"the learner role's 1 x \{'CPU': 1.0, 'GPU': 1.0\} \(PACK\) could "
                                             r"not be placed in 1 s; the cluster has"):
        place_role(object, "learner", 1, OmegaConf.create({"num_cpus": 1.0, "num_gpus": 1.0}), "PACK",
                   lambda i: (), timeout_s=1)
    created = set(ray_local.util.placement_group_table()) - set(before)
    assert all(ray_local.util.placement_group_table()[g]["state"] == "REMOVED" for g in created)
