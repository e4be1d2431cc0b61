"""toyworld/monitoring.py: concordance by hand, the oracle's answers on a clean render, the measurement on the
committed model, and launch/monitoring.py's correlation with a sweep's gains."""
import json
import math

import numpy as np
import pytest

from toyworld import monitoring


def test_group_concordance_by_hand():
    # group 0: correct 0.9 and 0.4 against wrong 0.5 -> 1 + 0 = 1 of 2 pairs; group 1: a tie -> 0.5 of 1
    value, pairs = monitoring.group_concordance([0.9, 0.4, 0.5, 0.7, 0.7], [True, True, False, True, False],
                                                [0, 0, 0, 1, 1])
    assert pairs == 3 and value == pytest.approx(1.5 / 3)
    assert math.isnan(monitoring.group_concordance([0.1, 0.2], [True, True], [0, 0])[0])  # no wrong image


def test_truth_on_a_clean_render_follows_the_scene():
    from toyworld.render import render
    from toyworld.scene import Obj

    image = render([Obj("circle", "red", 16, 32, 14), Obj("square", "blue", 48, 32, 14)])
    assert monitoring.truth(image, "is there a red circle ?") == "yes"
    assert monitoring.truth(image, "is there a blue circle ?") == "no"
    assert monitoring.truth(image, "is the circle left of the square ?") == "yes"
    assert monitoring.truth(image, "a sentence of another grammar ?") is None


def test_monitoring_of_the_committed_model_on_two_prompts_per_tag():
    from launch.configs.meta_ttrl import ROOT
    from models.janus import JanusAdapter
    from toyworld.prompts import load_split

    metas = load_split("test")
    picked = [m for tag in ("single_object", "counting") for m in [x for x in metas if x["tag"] == tag][:2]]
    table = monitoring.monitoring(JanusAdapter.from_pretrained(ROOT / "models" / "toy_umm"), picked, samples=4)
    assert set(table) == {"single_object", "counting"}
    for row in table.values():
        assert row["images"] == 8 and 0 <= row["oracle"] <= 1
        assert math.isnan(row["reward_auc"]) or 0 <= row["reward_auc"] <= 1
        assert row["questions"] and all(q["answered"] + q["skipped"] > 0 for q in row["questions"].values())


def test_correlation_with_the_sweeps_gains(tmp_path):
    from driver.cli import UserError
    from launch import monitoring as entry

    sweep = {"methods": {"meta_ttrl": {"test": {"gain_per_tag": {t: {"mean": g} for t, g in
                                                                  (("a", 0.1), ("b", 0.2), ("c", 0.3))}}}}}
    (tmp_path / "sweep.json").write_text(json.dumps(sweep))
    gain = entry.gains(tmp_path / "sweep.json", "meta_ttrl", "test")
    table = {t: {"reward_auc": auc, "group_concordance": np.nan} for t, auc in (("a", 0.5), ("b", 0.6), ("c", 0.9))}
    corr = entry.correlations(table, gain)
    assert corr["reward_auc"]["spearman"] == pytest.approx(1.0) and corr["reward_auc"]["tags"] == 3
    assert corr["reward_auc"]["pearson"] == pytest.approx(np.corrcoef([0.5, 0.6, 0.9], [0.1, 0.2, 0.3])[0, 1])
    assert "group_concordance" not in corr  # no values: no made-up correlation
    with pytest.raises(UserError, match="no per-tag gains of gvu"):
        entry.gains(tmp_path / "sweep.json", "gvu", "test")
    with pytest.raises(UserError, match="run launch/sweep.py first"):
        entry.gains(tmp_path / "none.json", "meta_ttrl", "test")


def test_monitoring_json_is_strict():
    from launch.monitoring import strict

    assert strict({"a": float("nan"), "b": {"c": 0.5}}) == {"a": None, "b": {"c": 0.5}}
