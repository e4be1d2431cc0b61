"""Every benchmark evaluator on tiny evaluator models of the published layouts (tests/fixtures/evaluator_like.py,
random weights): each path runs, every score is a number in [0, 1] in the benchmark's own shape, and a directory
of the wrong kind is one line before any model loads. (The rules these models feed are checked by hand in
tests/test_geneval_rules.py and tests/test_benchmarks.py.)"""

import json
from types import SimpleNamespace

import numpy as np
import pytest

import benchmarks
from benchmarks import results

GENEVAL = [
    {"tag": "single_object", "include": [{"class": "dog", "count": 1}], "prompt": "a photo of a dog"},
    {"tag": "colors", "include": [{"class": "car", "count": 1, "color": "red"}], "prompt": "a photo of a red car"},
    {"tag": "position", "include": [{"class": "cat", "count": 1},
                                    {"class": "dog", "count": 1, "position": ["left of", 0]}],
     "prompt": "a photo of a dog left of a cat"},
    {"tag": "counting", "include": [{"class": "apple", "count": 2}], "exclude": [{"class": "apple", "count": 3}],
     "prompt": "a photo of two apples"},
]
T2I = [{"tag": "color", "prompt": "a red bench and a blue bowl"},
       {"tag": "spatial", "prompt": "a dog on the left of a cat"},
       {"tag": "numeracy", "prompt": "two apples and one book"},
       {"tag": "non_spatial", "prompt": "a dog watching a cat"},
       {"tag": "complex", "prompt": "a wooden table on the left of a black chair"}]


def eval_cfg(**dirs):
    keys = ("detector", "clip", "vqa", "vlm", "dpg_questions")
    return SimpleNamespace(device="cpu", **{k: str(dirs.get(k, "")) if dirs.get(k) else "" for k in keys})


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    from fixtures import evaluator_like, qwen_vl_like
    root = tmp_path_factory.mktemp("evaluators")
    return {"mask2former": evaluator_like.mask2former(root / "m2f", benchmarks.coco_classes()),
            "owlv2": evaluator_like.owlv2(root / "owl"), "clip": evaluator_like.clip(root / "clip"),
            "vqa": evaluator_like.blip_vqa(root / "blip"), "vlm": qwen_vl_like.save(root / "vlm")}


def images(n, seed=0):
    return list(np.random.default_rng(seed).integers(0, 256, (n, 48, 64, 3), dtype=np.uint8))


def in_unit(scored):
    return all(0.0 <= s.score <= 1.0 for s in scored)


@pytest.mark.parametrize("detector", ["mask2former", "owlv2"])
def test_geneval_evaluator_scores_each_tag_and_writes_geneval_results(dirs, detector, tmp_path):
    bench = benchmarks.get("geneval")
    evaluator = bench.evaluator(eval_cfg(detector=dirs[detector], clip=dirs["clip"]))
    scored = evaluator.score(images(len(GENEVAL)), GENEVAL)
    assert len(scored) == len(GENEVAL) and {s.score for s in scored} <= {0.0, 1.0}
    assert all(s.details["correct"] == bool(s.score) and (s.score or s.details["reason"]) for s in scored)
    results.write(bench, tmp_path, GENEVAL, scored, 1)
    lines = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [x["tag"] for x in lines] == [r["tag"] for r in GENEVAL]
    assert [json.loads(x["metadata"]) for x in lines] == GENEVAL


def test_t2i_compbench_evaluator_scores_every_built_category(dirs, tmp_path):
    bench = benchmarks.get("t2i_compbench")
    assert bench.evaluator_needs(T2I) == ("vqa", "detector", "clip")
    evaluator = bench.evaluator(eval_cfg(detector=dirs["owlv2"], clip=dirs["clip"], vqa=dirs["vqa"]))
    scored = evaluator.score(images(len(T2I)), T2I)
    assert in_unit(scored)
    color, spatial, numeracy, _, complex_ = (s.details for s in scored)
    assert set(color) == {"a red bench", "a blue bowl"}  # B-VQA: one question a noun phrase
    assert spatial.get("relation") == ("dog", "left", "cat") or "reason" in spatial
    assert numeracy.get("wanted") == {"apple": 2, "book": 1}
    assert {"vqa", "clip", "spatial"} <= set(complex_)
    # the VQA score of a prompt is the product of its phrases' P(yes)
    assert scored[0].score == pytest.approx(np.prod(list(color.values())))
    written = results.write(bench, tmp_path, T2I, scored, 1)
    assert {p.name for p in written} >= {"color_vqa_result.json", "complex_vqa_result.json"}
    rows = json.loads((tmp_path / "color_vqa_result.json").read_text())
    assert rows == [{"question_id": 0, "prompt_index": 0, "answer": f"{scored[0].score:.6f}"}]


def test_vlm_judged_benchmarks_answer_yes_or_no(dirs, tmp_path):
    pp = benchmarks.get("geneval_plus_plus")
    records = pp.load("all")[:3]
    scored = pp.evaluator(eval_cfg(vlm=dirs["vlm"])).score(images(3), records)
    assert {s.score for s in scored} <= {0.0, 1.0} and all(s.details["checklist"] for s in scored)
    dpg = benchmarks.get("dpg_bench")
    prompts = dpg.load("all")[:2]
    csv = tmp_path / "dpg_bench.csv"
    rows = ["item_id,proposition_id,dependency,category_broad,question_natural_language"]
    for rec in prompts:
        rows += [f"{rec['id']},1,0,entity,Is there a dog?", f"{rec['id']},2,1,attribute,Is the dog red?",
                 f"{rec['id']},3,0,relation,Is it outside?"]
    csv.write_text("\n".join(rows) + "\n")
    scored = dpg.evaluator(eval_cfg(vlm=dirs["vlm"], dpg_questions=csv)).score(images(2), prompts)
    assert all(s.score in (0.0, 1 / 3, 2 / 3, 1.0) and s.details["questions"] == 3 for s in scored)


def test_a_directory_of_the_wrong_kind_is_one_line_before_loading(dirs):
    from driver.inputs import EvalSet
    from driver.preflight import check_evaluation
    from driver.cli import UserError
    metas = benchmarks.get("geneval").load("all")[:5]
    with pytest.raises(UserError, match="eval.detector .* holds a clip; the detector must be one of: mask2former"):
        check_evaluation(eval_cfg(detector=dirs["clip"], clip=dirs["clip"]), EvalSet("all", "geneval", metas))
    with pytest.raises(UserError, match="eval.clip .*: no config.json there"):
        check_evaluation(eval_cfg(detector=dirs["owlv2"], clip=dirs["owlv2"] / "nope"),
                         EvalSet("all", "geneval", metas))
    from fixtures import evaluator_like
    few = evaluator_like.mask2former(dirs["clip"].parent / "m2f_few", ("dog", "cat"))
    with pytest.raises(UserError, match="does not detect .* \\(its config's id2label\\): use a COCO instance model"):
        check_evaluation(eval_cfg(detector=few, clip=dirs["clip"]), EvalSet("all", "geneval", metas))
    check_evaluation(eval_cfg(detector=dirs["mask2former"], clip=dirs["clip"]), EvalSet("all", "geneval", metas))
