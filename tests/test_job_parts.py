"""Pure parts of the Meta-TTRL job: bucketing, rubric book fallback and cache, prompt stream, convergence."""
import pytest
import torch

from actors.weight_sync import buckets_of, flatten, plan_buckets, unflatten
from driver.progress import PromptStream, converged
from rewards.introspection import RubricBook, fallback_rubric
from rewards.rubric import RubricItem


def test_buckets_respect_the_size_and_keep_order():
    assert plan_buckets([40, 40, 40, 100, 10], bucket_bytes=100) == [[0, 1], [2], [3], [4]]
    assert plan_buckets([300], bucket_bytes=100) == [[0]]  # one oversized tensor travels alone
    # a tensor of alone_bytes or more travels alone (in place, no flatten copy), small ones around it share buckets
    assert plan_buckets([10, 2000, 10, 10, 999], bucket_bytes=10_000, alone_bytes=1000) == [[0], [1], [2, 3, 4]]
    with pytest.raises(ValueError, match="positive"):
        plan_buckets([1], 0)


def test_buckets_never_mix_dtypes_and_round_trip():
    ts = [torch.ones(3), torch.zeros(2, dtype=torch.float64), torch.arange(4.0).view(2, 2)]
    buckets = buckets_of(ts, bucket_bytes=1 << 20)
    assert buckets == [[0, 2], [1]]
    group = [ts[i] for i in buckets[0]]
    back = unflatten(flatten(group), group)
    assert all(torch.equal(a, b) for a, b in zip(back, group))
    with pytest.raises(ValueError, match="flat buffer"):
        unflatten(torch.zeros(5), group)


def test_a_partitioned_sender_plans_the_buckets_of_the_whole_receiver():
    """A ZeRO-3 parameter is an empty placeholder outside a gather; its plan must use its whole size."""
    whole = [torch.ones(30), torch.ones(30), torch.ones(50)]
    placeholders = []
    for t in whole:
        p = torch.nn.Parameter(torch.empty(0))
        p.ds_numel = t.numel()
        placeholders.append(p)
    assert buckets_of(placeholders, bucket_bytes=240) == buckets_of(whole, bucket_bytes=240) == [[0, 1], [2]]


def test_rubric_book_retries_then_falls_back_and_caches():
    calls = []

    def writer(prompts, attempt):
        calls.append((list(prompts), attempt))
        return ["object : is there a circle ? yes" if p == "good" or (p == "late" and attempt) else "garbage"
                for p in prompts]

    book = RubricBook(writer, retries=1)
    got = book.get(["good", "late", "bad", "good"])
    assert got[0] == got[3] == [RubricItem("object", "is there a circle ?", "yes")]
    assert got[1] == got[0] and got[2] == fallback_rubric("bad")
    assert calls == [(["good", "late", "bad"], 0), (["late", "bad"], 1)]
    assert dict(book.counts) == {"written": 3, "retried": 2, "fallback": 1}
    book.get(["bad", "good"])
    assert len(calls) == 2  # cached: the frozen introspector never writes a prompt's rubric twice
    restored = RubricBook(writer)
    restored.load_state(book.state())
    assert restored.cache == book.cache and restored.counts == book.counts


def test_rubric_book_rejects_rubrics_without_an_object_question():
    book = RubricBook(lambda ps, a: ["count : are there two circles ? yes"] * len(ps), retries=0)
    assert book.get(["x"]) == [fallback_rubric("x")]


def test_prompt_stream_is_seeded_and_covers_every_prompt_each_epoch():
    a, b = PromptStream(list("abcde"), 3), PromptStream(list("abcde"), 3)
    first = a.next(5)
    assert sorted(first) == list("abcde") and first == b.next(5)
    assert sorted(a.next(5)) == list("abcde") and a.position == 10


def test_converged_compares_the_last_two_windows():
    assert not converged([0.1, 0.2, 0.3], window=2, tol=0.01)  # not enough history
    assert converged([0.5, 0.5, 0.5, 0.5], window=2, tol=0.01)
    assert not converged([0.1, 0.1, 0.5, 0.5], window=2, tol=0.01)
    assert not converged([0.5] * 10, window=0, tol=0.01)


def test_contradictory_questions_are_dropped_and_repeats_kept_once():
    text = ("object : is there a circle ? yes ; object : is there a circle ? yes ; "
            "spatial : is the circle above the square ? yes ; spatial : is the circle above the square ? no")
    book = RubricBook(lambda ps, a: [text] * len(ps), retries=0)
    assert book.get(["p"]) == [[RubricItem("object", "is there a circle ?", "yes")]]
    assert book.counts["repaired"] == 1 and book.counts["fallback"] == 0


def test_split_stale_keeps_parts_within_the_bound():
    from rollout.batch import split_stale
    # learner at version 5: parts from versions 5, 4, 3, 2 are 0, 1, 2, 3 updates old
    assert split_stale([5, 4, 3, 2], 5, 1) == ([0, 1], [2, 3])
    assert split_stale([5, 4, 3, 2], 5, 0) == ([0], [1, 2, 3])
    assert split_stale([3, 3], 5, 2) == ([0, 1], [])


def test_flatten_keeps_numbers_and_names_nested_keys():
    from driver.tracking import flatten
    record = {"step": 3, "rubric": {"written": 2, "fallback": 1}, "note": "x", "ok": True, "kl": 0.5}
    assert flatten(record) == {"step": 3, "rubric/written": 2, "rubric/fallback": 1, "kl": 0.5}


def test_wandb_mode_is_offline_without_credentials(monkeypatch):
    from driver.cli import UserError
    from driver.tracking import wandb_mode
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert wandb_mode("auto") == "offline" and wandb_mode("disabled") == "disabled"
    monkeypatch.setenv("WANDB_API_KEY", "k")
    assert wandb_mode("auto") == "online"
    with pytest.raises(UserError, match="run.wandb 'yes' is not one of"):
        wandb_mode("yes")


def test_grid_places_prompts_in_rows_and_report_survives_a_torn_metrics_line(tmp_path):
    import numpy as np
    from PIL import Image

    from driver.report import read_metrics, save_grid, write_report
    images = np.zeros((6, 8, 8, 3), np.uint8)
    images[3:] = 200  # second prompt's samples
    save_grid(images, 2, tmp_path / "grids" / "g.png")
    grid = np.array(Image.open(tmp_path / "grids" / "g.png"))
    assert grid.shape == (2 * 2 * 10, 2 * 3 * 10, 3)  # 2 rows x 3 columns of (8 + 2 gutter) px, upscaled x2
    assert grid[0, 0, 0] == 0 and grid[20, 0, 0] == 200
    (tmp_path / "metrics.jsonl").write_text('{"step": 0, "reward_mean": 0.2, "eval": 0.1}\n{"step": 1, "rew')
    assert read_metrics(tmp_path / "metrics.jsonl") == [{"step": 0, "reward_mean": 0.2, "eval": 0.1}]
    table = {"overall": 0.25, "per_tag": {"colors": 0.25}}
    page = write_report(tmp_path, {"before": table, "after": {"overall": 0.5, "per_tag": {"colors": 0.5}},
                                   "steps": 1, "wall_s": 3.0}, [("before", "grids/g.png")], ["a", "b"]).read_text()
    assert "+0.250" in page and "grids/g.png" in page and (tmp_path / "curves.png").is_file()


def test_grid_prompts_take_one_prompt_per_tag_first():
    from driver.grids import grid_prompts
    metas = [{"tag": "a", "prompt": "a1"}, {"tag": "a", "prompt": "a2"}, {"tag": "b", "prompt": "b1"}]
    assert grid_prompts(metas, 2) == ["a1", "b1"] and grid_prompts(metas, 5) == ["a1", "b1", "a2"]


def test_moving_average_and_reward_eval_correlation_by_hand():
    import numpy as np

    from driver.report import moving_average, reward_eval_correlation
    assert np.allclose(moving_average(np.array([1.0, 3.0, 5.0, 7.0]), 2), [1.0, 2.0, 4.0, 6.0])
    rows = [{"reward_mean": r, "eval": o} for r, o in ((0.1, 0.2), (0.2, 0.4), (0.3, 0.6))]
    assert reward_eval_correlation(rows) == pytest.approx(1.0)
    assert np.isnan(reward_eval_correlation(rows[:2]))
