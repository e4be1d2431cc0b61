"""launch/sweep.py: the statistics over seeds by hand, finished cells skipped and interrupted ones resumed,
and a real two-seed sweep of the `random` control on the toy world."""
import json
import math

import pytest

from driver import aggregate
from launch import sweep

T975_2 = 4.302652729911275  # Student t, 97.5% quantile, 2 degrees of freedom (tables)


def test_summary_mean_std_and_interval_by_hand():
    s = aggregate.summary([0.5, 0.6, 0.7])
    assert s["mean"] == pytest.approx(0.6) and s["std"] == pytest.approx(0.1)  # sqrt((.01 + 0 + .01) / 2)
    assert s["ci95"] == pytest.approx(T975_2 * 0.1 / math.sqrt(3))  # 0.2484
    assert (s["n"], s["min"], s["max"]) == (3, 0.5, 0.7)
    one = aggregate.summary([0.4])
    assert one["mean"] == 0.4 and one["std"] is None and one["ci95"] is None
    with pytest.raises(ValueError, match="no values"):
        aggregate.summary([])
    a, b = aggregate.summary([0.5, 0.6, 0.7]), aggregate.summary([0.1, 0.1, 0.1])  # b: no spread
    assert aggregate.margin(a, b) == {"difference": pytest.approx(0.5), "intervals_overlap": False}
    assert aggregate.margin(a, aggregate.summary([0.3, 0.4, 0.5]))["intervals_overlap"] is True
    assert aggregate.margin(a, one)["intervals_overlap"] is None


def cell(seed, before, after, held_before, held_after, corr=0.5):
    table = lambda overall: {"overall": overall, "per_tag": {"colors": overall, "counting": overall / 2}}
    return {"seed": seed, "test": table(after), "before": table(before), "heldout": table(held_after),
            "heldout_before": table(held_before), "correlation": corr, "wall_s": 10.0 * (seed + 1)}


def test_method_summary_gains_per_seed_and_vanilla_from_the_befores():
    cells = [cell(0, 0.5, 0.7, 0.3, 0.3), cell(1, 0.6, 0.7, 0.3, 0.2), cell(2, 0.4, 0.7, 0.3, 0.4)]
    row = aggregate.method_summary(cells)
    assert row["seeds"] == [0, 1, 2]
    assert row["test"]["overall"]["mean"] == pytest.approx(0.7) and row["test"]["overall"]["std"] == pytest.approx(0)
    assert row["test"]["gain"]["values"] == pytest.approx([0.2, 0.1, 0.3])  # each seed against its own before
    assert row["test"]["gain"]["std"] == pytest.approx(0.1)
    assert row["heldout"]["gain"]["mean"] == pytest.approx(0.0)
    assert row["test"]["gain_per_tag"]["counting"]["mean"] == pytest.approx(0.1)
    assert row["test"]["per_tag"]["counting"]["mean"] == pytest.approx(0.35)
    assert row["correlation"]["mean"] == pytest.approx(0.5)
    vanilla = aggregate.method_summary(aggregate.vanilla_cells(cells + [cell(0, 0.9, 0.9, 0.9, 0.9)]))
    assert vanilla["test"]["overall"]["values"] == pytest.approx([0.5, 0.6, 0.4])  # the first cell of each seed
    assert "gain" not in vanilla["test"]


def test_a_sweep_skips_finished_cells_and_resumes_started_ones(tmp_path):
    from driver.cli import UserError

    argv = [f"out={tmp_path}", "methods=meta_ttrl,random", "seeds=0,1", "steps=2"]
    spec = {"steps": 2, "overrides": []}
    sweep.Cell(tmp_path, "meta_ttrl", 0, spec).finish(cell(0, 0.5, 0.7, 0.3, 0.3))  # measured before
    sweep.Cell(tmp_path, "random", 1, spec).start()  # started and killed: no cell.json
    calls = []

    def fake(c, resume):
        calls.append((c.method, c.seed, resume))
        return cell(c.seed, 0.5, {"meta_ttrl": 0.8, "random": 0.6}[c.method], 0.3, 0.3)

    result = sweep.sweep(argv, fake)
    assert calls == [("random", 0, False), ("meta_ttrl", 1, False), ("random", 1, True)]  # seed by seed
    assert result["methods"]["meta_ttrl"]["test"]["overall"]["values"] == pytest.approx([0.7, 0.8])
    assert result["methods"]["random"]["test"]["gain"]["mean"] == pytest.approx(0.1)
    assert result["judge_contribution"]["random"]["test"]["difference"] == pytest.approx(0.15)
    assert result["cells"]["meta_ttrl"]["1"]["wall_s"] == 20.0
    assert list(result["methods"]) == ["vanilla", "meta_ttrl", "random"]
    md = (tmp_path / "sweep.md").read_text()
    assert "| meta_ttrl | 2 | 0.750 ± 0.071 [" in md and "meta_ttrl - random = +15.0 points" in md
    assert json.loads((tmp_path / "sweep.json").read_text())["seeds"] == [0, 1]
    calls.clear()
    assert sweep.sweep(argv, fake) == result and calls == []  # everything finished: nothing runs again
    with pytest.raises(UserError, match="measured with other settings"):
        sweep.sweep(argv[:-1] + ["steps=3"], fake)
    for bad, match in ((["methods=meta_ttrl,nope"], "nope not among"), (["seeds=0,0"], "distinct"),
                       (["seeds=a"], "integers"), (["run.seed=3"], "leave")):
        with pytest.raises(UserError, match=match):
            sweep.sweep([f"out={tmp_path / 'x'}"] + bad, fake)


def test_a_real_two_seed_sweep_of_the_random_control(ray_local, tmp_path):
    argv = [f"out={tmp_path}", "methods=random", "seeds=0,1", "steps=2", "data.prompts_per_step=2",
            "rollout.group_size=2", "data.eval_max_prompts=2", "data.eval_samples=1", "run.grid_prompts=0",
            "run.checkpoint_every=0"]
    result = sweep.sweep(argv)
    row = result["methods"]["random"]
    assert row["seeds"] == [0, 1] and row["test"]["overall"]["n"] == 2
    rewards = [[m["reward_mean"] for m in sweep.read_metrics(tmp_path / "random" / f"seed{s}" / "metrics.jsonl")]
               for s in (0, 1)]
    assert len(rewards[0]) == 2 and rewards[0] != rewards[1]  # the seed reaches the control's random stream
    assert (tmp_path / "sweep.png").stat().st_size > 1000 and "| vanilla | 2 |" in (tmp_path / "sweep.md").read_text()


def test_the_default_job_prints_its_gain_beside_the_documented_range(tmp_path):
    from driver.report import documented_range
    from launch.meta_ttrl import is_default_job, load_config

    assert is_default_job(load_config([])) and is_default_job(load_config(["run.seed=4", f"run.dir={tmp_path}"]))
    assert not is_default_job(load_config(["trainer.steps=5"]))  # another job: the range says nothing of it
    done = {("meta_ttrl", s): cell(s, 0.5, 0.5 + g, 0.3, 0.3 + h) for s, g, h in ((0, 0.10, 0.0), (1, 0.14, 0.02),
                                                                                   (2, 0.12, -0.02))}
    result = sweep.table(done, ["meta_ttrl"], [0, 1, 2], {}, {"steps": 100, "overrides": [],
                                                              "samples_per_method": 6400})
    (tmp_path / "sweep.json").write_text(json.dumps(result))
    summary = {"before": {"overall": 0.5}, "after": {"overall": 0.61}, "heldout_before": {"overall": 0.3},
               "heldout_after": {"overall": 0.2}}
    text = documented_range(summary, tmp_path / "sweep.json").splitlines()
    assert text[1] == ("test     gain +11.0 points; documented over 3 seeds: +12.0 ± 2.0 (seeds ranged +10.0 to "
                       "+14.0): inside that range")
    assert text[2].startswith("heldout  gain -10.0 points;") and text[2].endswith("below that range")
    assert documented_range(summary, tmp_path / "absent.json") == ""
