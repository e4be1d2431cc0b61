"""launch/compare.py end to end with a tiny budget: every method, one table, one figure."""
import json

import pytest

from launch import compare
from test_methods_e2e import make_tiny_git  # pytest puts tests/ on sys.path (no __init__.py: rootdir-relative)


@pytest.mark.slow  # eight method runs (~3-4 min here): `make test-slow`; each method also has its own fast test
def test_compare_runs_every_method_and_writes_the_table(ray_local, tmp_path, tiny_adapter):
    tiny_adapter.save_pretrained(tmp_path / "external")
    table = compare.compare([f"out={tmp_path}", "steps=1", "data.prompts_per_step=2", "rollout.group_size=2",
                             "data.eval_max_prompts=2", "data.eval_samples=1", "run.grid_prompts=0",
                             "run.checkpoint_every=0", f"vqa_path={make_tiny_git(tmp_path / 'git')}",
                             f"external={tmp_path / 'external'}"])
    assert list(table["methods"]) == ["best_of_n", "milr", "meta_ttrl", "vanilla", "gvu", "srum", "vqa_rubric",
                                      "e_ttrl", "oracle_grpo"]
    assert table["samples_per_method"] == 4 and table["methods"]["best_of_n"]["n"] == 2
    assert table["methods"]["milr"]["k"] == 1 and table["not_run"] == {}
    for row in table["methods"].values():
        assert 0 <= row["test"]["overall"] <= 1 and 0 <= row["heldout"]["overall"] <= 1
    md = (tmp_path / "compare.md").read_text()
    assert md.splitlines()[2].startswith("| vanilla |") and "| srum |" in md and "| milr |" in md
    assert "heldout counting" in md
    assert json.loads((tmp_path / "compare.json").read_text())["methods"].keys() == table["methods"].keys()
    assert (tmp_path / "compare.png").stat().st_size > 1000


def test_methods_that_need_a_model_are_listed_not_dropped(tmp_path):
    table = {"methods": {"vanilla": {"test": {"overall": 0.5, "per_tag": {"colors": 0.5}},
                                     "heldout": {"overall": 0.25, "per_tag": {"counting": 0.25}}}},
             "not_run": {"vqa_rubric": "needs vqa_path=<dir>"}, "samples_per_method": 4}
    compare.write(tmp_path, table)
    md = (tmp_path / "compare.md").read_text().splitlines()
    assert md[0] == "| method | test | heldout | samples (test) | test colors | heldout counting |"
    assert md[2] == "| vanilla | 0.500 | 0.250 | 0 | 0.500 | 0.250 |"
    assert md[3].startswith("| vqa_rubric | not run: needs vqa_path=<dir> |")


def test_a_second_compare_into_the_same_out_keeps_what_was_measured(tmp_path):
    from driver.cli import UserError

    assert compare.resumed(tmp_path, 50, []) is None  # nothing there: a fresh table
    (tmp_path / "compare.json").write_text(json.dumps({"steps": 50, "overrides": [], "methods": {"milr": {}}}))
    assert compare.resumed(tmp_path, 50, [])["methods"] == {"milr": {}}
    with pytest.raises(UserError, match="holds a comparison with other settings"):
        compare.resumed(tmp_path, 100, [])
