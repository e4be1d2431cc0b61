"""The main job on real benchmark prompts end to end, on a real local Ray cluster: a tiny Janus-Pro-layout policy
(random weights, 64 px images, its own introspector-written rubrics) trains on GenEval prompts (one per tag), is measured before and after by GenEval's
evaluator on the cluster (tiny Mask2Former + CLIP actors) and on a T2I-CompBench transfer split (tiny BLIP-VQA),
and the run directory holds each benchmark's own results files. Scores from random models are noise: what is
checked is that every file is there, in its benchmark's format, for every prompt."""

import json

import pytest

import benchmarks
from launch import meta_ttrl


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    from fixtures import evaluator_like, janus_pro_like
    root = tmp_path_factory.mktemp("e2e_models")
    model, tok = janus_pro_like.build(seed=0, image_size=64)
    model.save_pretrained(root / "janus_pro")
    tok.save_pretrained(root / "janus_pro")
    return {"policy": root / "janus_pro", "clip": evaluator_like.clip(root / "clip"),
            "detector": evaluator_like.mask2former(root / "m2f", benchmarks.coco_classes()),
            "vqa": evaluator_like.blip_vqa(root / "blip")}


def one_prompt_per_tag(tmp_path):
    seen, lines = set(), []
    for rec in benchmarks.get("geneval").load("all"):
        if rec["tag"] not in seen:
            seen.add(rec["tag"])
            lines.append(json.dumps({k: v for k, v in rec.items()}))
    path = tmp_path / "geneval_six.jsonl"
    path.write_text("\n".join(lines) + "\n")
    color = tmp_path / "color_two.txt"  # named <category>_... : a T2I-CompBench file of the color category
    color.write_text("\n".join(r["prompt"] for r in benchmarks.get("t2i_compbench").load("color_val")[:2]) + "\n")
    return path, color


def test_the_job_trains_on_geneval_and_writes_each_benchmarks_results(ray_local, model_dirs, tmp_path):
    six, color = one_prompt_per_tag(tmp_path)
    run = tmp_path / "run"
    meta_ttrl.main([f"model.path={model_dirs['policy']}", "data.benchmark=geneval", f"data.split={six}",
                    f"data.transfer=[t2i_compbench:{color}]", "trainer.steps=2", "data.prompts_per_step=2",
                    "rollout.group_size=2", "data.eval_samples=1", "rubric.max_new_tokens=24", f"eval.detector={model_dirs['detector']}",
                    f"eval.clip={model_dirs['clip']}", f"eval.vqa={model_dirs['vqa']}",
                    "resources.evaluator.num_cpus=0.5", "resources.rollout.num_cpus=0.5", f"run.dir={run}"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["benchmark"] == "geneval" and set(summary["after"]["per_tag"]) == set(benchmarks.GENEVAL_TAGS)
    transfer_key = f"t2i_compbench:{color}"
    assert set(summary["transfer"]) == {transfer_key}
    assert set(summary["transfer"][transfer_key]["after"]["per_tag"]) == {"color"}
    for phase in ("before", "after"):
        geneval = [json.loads(x) for x in (run / "eval" / phase / "test" / "results.jsonl").read_text().splitlines()]
        assert sorted(x["tag"] for x in geneval) == sorted(benchmarks.GENEVAL_TAGS)
        assert all(isinstance(x["correct"], bool) and json.loads(x["metadata"])["prompt"] == x["prompt"]
                   for x in geneval)
        folder = run / "eval" / phase / transfer_key.replace(":", "_").replace("/", "_")
        rows = json.loads((folder / "color_vqa_result.json").read_text())
        assert [r["question_id"] for r in rows] == [0, 1] and all(0 <= float(r["answer"]) <= 1 for r in rows)
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 2 and all(0 <= m["eval"] <= 1 for m in metrics)  # the per-step GenEval score


def test_the_job_trains_on_a_t2i_compbench_category_scored_by_blip_vqa(ray_local, model_dirs, tmp_path):
    _, color = one_prompt_per_tag(tmp_path)
    run = tmp_path / "run"
    meta_ttrl.main([f"model.path={model_dirs['policy']}", "data.benchmark=t2i_compbench", f"data.split={color}",
                    "trainer.steps=1", "data.prompts_per_step=2", "rollout.group_size=2", "data.eval_samples=1",
                    "rubric.max_new_tokens=24", f"eval.vqa={model_dirs['vqa']}", "resources.evaluator.num_cpus=0.5",
                    f"run.dir={run}"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["benchmark"] == "t2i_compbench" and set(summary["after"]["per_tag"]) == {"color"}
    rows = json.loads((run / "eval" / "after" / "test" / "color_vqa_result.json").read_text())
    assert len(rows) == 2 and all(0 <= float(r["answer"]) <= 1 for r in rows)
    scores = [json.loads(x) for x in (run / "eval" / "after" / "test" / "scores.jsonl").read_text().splitlines()]
    assert all(len(s["details"]) == 2 for s in scores)  # "a green bench and a blue bowl": a P(yes) per phrase
