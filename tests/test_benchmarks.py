"""The benchmark interface (benchmarks/): every vendored prompt file loads with its published counts, each format's
malformed lines are one-line errors naming file and line, and the evaluators' pure parts (T2I-CompBench's phrase,
spatial and count rules, DPG-Bench's dependencies, GenEval's crops and results file) against hand-computed values."""
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import benchmarks
from benchmarks import formats, results
from benchmarks.base import DATA, BenchmarkError, Scored
from benchmarks.geneval import crop_on_grey
from benchmarks.t2i_compbench import (counted_objects, noun_phrases, numeracy_score, spatial_relation,
                                      spatial_score)
from benchmarks.vlm_judged import checklist, dependency_scores, read_dpg_questions
from models.evaluators import Found
from rewards.rubric import plural, rubric_from_metadata, with_article

SHARED = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
# (benchmark, split) -> records and, for GenEval-format sets, records per tag (from the files' provenance notes)
COUNTS = {
    ("geneval", "all"): (553, {"single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100,
                               "color_attr": 100}),
    ("geneval", "long"): (553, None),
    ("geneval_plus_plus", "all"): (280, {t: 40 for t in benchmarks.registry.GENEVAL_PP_TAGS}),
    ("dpg_bench", "all"): (1065, {"dpg": 1065}),
    ("toyworld", "test"): (145, None), ("toyworld", "train"): (366, None), ("toyworld", "heldout"): (126, None),
}


@pytest.mark.parametrize("name, split", list(COUNTS))
def test_each_benchmark_split_loads_with_its_counts(name, split):
    records = benchmarks.get(name).load(split)
    n, per_tag = COUNTS[name, split]
    assert len(records) == n and all(r["prompt"] and r["tag"] for r in records)
    if per_tag:
        assert Counter(r["tag"] for r in records) == per_tag


def test_every_t2i_compbench_file_is_a_split_of_its_category():
    bench = benchmarks.get("t2i_compbench")
    files = sorted(p.stem for p in (DATA / "t2i_compbench/dataset").glob("*.txt"))
    assert sorted(bench.splits) == [f for f in files if f != "new_objects"]  # a word list, not prompts
    sizes = {s: len(bench.load(s)) for s in bench.splits}
    assert sizes["color_val"] == 300 and sizes["color_train"] == 700 and sizes["spatial_val"] == 300
    assert sum(sizes.values()) == 17760  # `grep -c .` over the 36 prompt files: every non-blank line
    assert {r["tag"] for r in bench.load("3d_spatial_val")} == {"3d_spatial"}
    assert {r["tag"] for r in bench.load("complex_val_spatialaction")} == {"complex"}


def test_plain_prompt_lists_load_as_the_prompts_benchmark():
    for path, n in ((DATA / "geneval/generation_prompts.txt", 553), (DATA / "geneval_plus_plus/Geneval++.txt", 280)):
        records = benchmarks.get("prompts").load(str(path))
        assert len(records) == n and records[0]["tag"] == "prompt"


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared benchmark folder is not on this host")
def test_the_vendored_prompt_files_equal_the_shared_ones():
    for shared in SHARED.rglob("*"):
        if shared.suffix in (".jsonl", ".txt"):
            assert (DATA / shared.relative_to(SHARED)).read_bytes() == shared.read_bytes(), shared


GOOD = {"tag": "colors", "include": [{"class": "dog", "count": 1, "color": "red"}], "prompt": "a photo of a red dog"}


@pytest.mark.parametrize("line, needle", [
    ("{oops", "line 2 is not valid JSON"),
    (json.dumps({"tag": "colors", "prompt": "x"}), "line 2: expected a GenEval record"),
    (json.dumps({**GOOD, "include": [{"class": "dog", "count": 0}]}), "line 2: clause"),
    (json.dumps({**GOOD, "include": [{"class": "dog", "position": ["left of", 0]}]}), "line 2: clause"),
    (json.dumps({**GOOD, "include": [{"class": "unicorn"}]}), "line 2: clause {'class': 'unicorn'} names 'unicorn'"),
    (json.dumps({**GOOD, "include": [{"class": "dog", "color": "teal"}]}), "line 2: clause"),
    (json.dumps({**GOOD, "tag": "vibes"}), "line 2: unknown tag 'vibes'"),
    (json.dumps({**GOOD, "prompt": " "}), "line 2: the prompt must be a non-empty string"),
])
def test_malformed_geneval_lines_name_file_and_line(tmp_path, line, needle):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + line + "\n")
    with pytest.raises(BenchmarkError) as e:
        benchmarks.get("geneval").load(str(path))
    assert str(path) in str(e.value) and needle in str(e.value) and "\n" not in str(e.value)


def test_malformed_text_and_dpg_files(tmp_path):
    binary = tmp_path / "color_x.txt"
    binary.write_bytes(b"a red dog\n\xff\xfe\n")
    with pytest.raises(BenchmarkError, match="not UTF-8"):
        benchmarks.get("t2i_compbench").load(str(binary))
    with pytest.raises(BenchmarkError, match="starts with no category"):
        benchmarks.get("t2i_compbench").load(str(tmp_path.joinpath("mine.txt").write_text("x") and tmp_path / "mine.txt"))
    dpg = tmp_path / "dpg.jsonl"
    dpg.write_text('{"id": "a", "prompt": "p"}\n{"id": "b"}\n')
    with pytest.raises(BenchmarkError, match=r"dpg.jsonl: line 2: expected"):
        benchmarks.get("dpg_bench").load(str(dpg))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(BenchmarkError, match="no prompts"):
        benchmarks.get("prompts").load(str(empty))


def test_unknown_benchmark_and_split():
    with pytest.raises(BenchmarkError, match="unknown benchmark 'genevel'; valid: toyworld, geneval"):
        benchmarks.get("genevel")
    with pytest.raises(BenchmarkError, match=r"split 'colour_val' is neither one of its splits \(3d_spatial"):
        benchmarks.get("t2i_compbench").load("colour_val")


def test_evaluation_needs_an_evaluator_and_its_models():
    cfg = type("Eval", (), {"detector": "", "clip": "", "vqa": "", "vlm": "", "dpg_questions": ""})()
    with pytest.raises(BenchmarkError, match="prompts cannot evaluate images"):
        benchmarks.get("prompts").check_evaluator(cfg, [])
    with pytest.raises(BenchmarkError, match="needs eval.detector=<dir> eval.clip=<dir>"):
        benchmarks.get("geneval").check_evaluator(cfg, [])
    with pytest.raises(BenchmarkError, match="needs eval.vqa=<dir>"):
        benchmarks.get("t2i_compbench").check_evaluator(cfg, [{"tag": "color"}])
    with pytest.raises(BenchmarkError, match="3d_spatial needs a monocular depth model"):
        benchmarks.get("t2i_compbench").check_evaluator(cfg, [{"tag": "3d_spatial"}])
    with pytest.raises(BenchmarkError, match="eval.vlm=<dir> eval.dpg_questions=<csv>"):
        benchmarks.get("dpg_bench").check_evaluator(cfg, [])


def test_english_rubrics_have_articles_and_plurals():
    assert [plural(w) for w in ("toothbrush", "bus", "wine glass", "person", "teddy bear", "sandwich", "skis")] == [
        "toothbrushes", "buses", "wine glasses", "people", "teddy bears", "sandwiches", "skis"]
    assert with_article("apple") == "an apple" and with_article("orange dog") == "an orange dog"
    counting = {"tag": "counting", "include": [{"class": "toothbrush", "count": 2}], "prompt": "two toothbrushes"}
    assert [i.question for i in rubric_from_metadata(counting, "english")] == [
        "Is there a toothbrush in the image?", "Are there exactly two toothbrushes in the image?"]
    position = {"tag": "position", "prompt": "a photo of an apple left of a dog",
                "include": [{"class": "dog", "count": 1}, {"class": "apple", "count": 1, "position": ["left of", 0]}]}
    assert [(i.question, i.target) for i in rubric_from_metadata(position, "english")] == [
        ("Is there a dog in the image?", "yes"), ("Is there an apple in the image?", "yes"),
        ("Is the apple to the left of the dog?", "yes"), ("Is the apple to the right of the dog?", "no")]
    assert rubric_from_metadata(counting)[1].question == "are there two toothbrushs ?"  # the toy model's words


def test_t2i_compbench_phrases_relations_and_counts():
    assert noun_phrases("a green bench and a blue bowl") == ["a green bench", "a blue bowl"]
    assert noun_phrases("rubber sole shoes and fluffy clouds") == ["rubber sole shoes", "fluffy clouds"]
    assert noun_phrases("The metallic pen and fluffy notebook jot down ideas on the wooden desk.") == [
        "the metallic pen", "fluffy notebook", "the wooden desk"]
    assert spatial_relation("a girl on the top of a frog") == ("girl", "top", "frog")
    assert spatial_relation("a painting on the right of a pig") == ("painting", "right", "pig")
    assert spatial_relation("a green bench and a blue bowl") is None
    assert counted_objects("two cups, three paintings, and four bananas decorated the studio") == [
        ("cup", 2), ("painting", 3), ("banana", 4)]
    assert counted_objects("three boxes, two knives and five puppies") == [("box", 3), ("knife", 2), ("puppy", 5)]
    from rewards.rubric import plural, singular
    assert [singular(plural(w)) for w in ("bus", "glass", "cherry", "person", "sheep", "dog")] == [
        "bus", "glass", "cherry", "person", "sheep", "dog"]


def test_t2i_compbench_spatial_and_numeracy_scores_by_hand():
    left, right = (0, 0, 10, 10), (20, 0, 30, 10)  # disjoint, side by side: IoU 0, position 1
    assert spatial_score(left, 0.8, right, 0.6, "left") == pytest.approx(0.25 * 0.8 + 0.25 * 0.6 + 0.5)
    assert spatial_score(left, 0.8, right, 0.6, "right") == 0.0  # 0.35 < 0.5: zeroed
    a, b = (0, 0, 10, 10), (5, 0, 15, 10)  # overlap 50 of union 150: IoU 1/3, position 0.1 / (1/3) = 0.3
    assert spatial_score(a, 1.0, b, 1.0, "left") == pytest.approx(0.25 + 0.25 + 0.5 * 0.3)
    assert numeracy_score({"cups": 2, "cats": 1}, [("cups", 2), ("cats", 3)]) == pytest.approx(0.25 + 0.25 + 0.25)
    assert numeracy_score({}, [("cups", 2)]) == 0.0


def test_dpg_dependencies_zero_a_child_whose_parent_failed(tmp_path):
    qs = [{"id": 1, "parents": []}, {"id": 2, "parents": [1]}, {"id": 3, "parents": []}, {"id": 4, "parents": [3]}]
    assert dependency_scores({1: False, 2: True, 3: True, 4: True}, qs) == [0.0, 0.0, 1.0, 1.0]
    bad = tmp_path / "q.csv"
    bad.write_text("item_id,text\n0,x\n")
    with pytest.raises(BenchmarkError, match="missing column"):
        read_dpg_questions(str(bad))
    good = tmp_path / "g.csv"
    good.write_text("item_id,proposition_id,dependency,category_broad,question_natural_language\n"
                    "0,1,0,entity,Is there a cat?\n0,2,1,attribute,Is the cat black?\n0,x,1,entity,?\n")
    with pytest.raises(BenchmarkError, match="row 4: proposition_id"):
        read_dpg_questions(str(good))


def test_geneval_plus_plus_checklist_reads_the_metadata():
    rec = {"tag": "color_spatial_attr", "prompt": "p", "include": [
        {"class": "spoon", "count": 1, "color": "blue", "region": "left"}, {"class": "boat", "count": 3}]}
    assert checklist(rec) == ["exactly one blue spoon, placed at the left of the image", "exactly three boats"]


def test_geneval_crop_pastes_the_mask_on_grey():
    image = np.full((8, 8, 3), 200, np.uint8)
    mask = np.zeros((8, 8), bool)
    mask[2:4, 2:4] = True
    crop = crop_on_grey(image, Found("dog", 0.9, (1, 1, 5, 5), mask))
    assert crop.shape == (4, 4, 3) and crop[1, 1, 0] == 200 and crop[0, 0, 0] == 128
    assert crop_on_grey(image, Found("dog", 0.9, (3, 3, 3, 9))) is None


def test_geneval_results_file_is_in_geneval_format(tmp_path):
    recs = [dict(GOOD), dict(GOOD)]
    scored = [Scored(1.0, {"correct": True, "reason": ""}), Scored(0.0, {"correct": False, "reason": "no dog"})]
    files = results.write(benchmarks.get("geneval"), tmp_path, recs, scored, samples=2)
    assert [f.name for f in files] == ["scores.jsonl", "table.json", "results.jsonl"]
    lines = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [x["filename"] for x in lines] == ["00000/samples/0000.png", "00000/samples/0001.png"]
    assert [x["correct"] for x in lines] == [True, False] and json.loads(lines[1]["metadata"]) == GOOD
    assert json.loads((tmp_path / "table.json").read_text())["per_tag"] == {"colors": 0.5}
