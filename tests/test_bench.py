"""make bench's pieces: its arguments, the stage-cost prediction by hand, and the sync and pipeline sections on the
session's local Ray at toy sizes (they check themselves: a receiver that does not hold the sender's weights fails)."""
import pytest

from driver import bench_pipeline, bench_sync
from driver.cli import UserError
from launch import bench


@pytest.mark.parametrize("arg, message", [
    ("foo=1", "unknown argument 'foo=1'"),
    ("sections=step,speed", "unknown section"),
    ("steps=3", "steps must be an integer >= 4"),
    ("steps", "unknown argument 'steps'"),
])
def test_bench_arguments_are_one_clear_line(arg, message):
    with pytest.raises(UserError, match=message):
        bench.parse([arg])


def test_predicted_step_from_stage_costs_by_hand():
    costs = bench_pipeline.StageCosts(rollout=0.5, judge=0.2, train=0.25, sync=0.05)
    assert costs.on_policy == pytest.approx(1.0)
    assert costs.predicted_step(1, 1) == pytest.approx(0.55)  # rollout 0.5 then its sync 0.05
    assert costs.predicted_step(2, 2) == pytest.approx(0.30)  # 0.25 + 0.05 either way: the learner's bound
    assert costs.predicted_step(8, 8) == pytest.approx(0.30)


def test_sync_layers_are_big_and_small_tensors_adding_up():
    sizes = bench_sync.layer_shapes(1_000_000, n_big=4, small=100)
    assert sizes == [249_900, 100] * 4 and sum(sizes) == 1_000_000


def test_the_sync_section_moves_the_weights_every_way(ray_local):
    rows = bench_sync.measure_size(2_000_000, [1.0], strides=(1, 16), repeats=1)
    assert [r["method"] for r in rows] == ["memcpy floor (one process)", "bucketed 1 MB, check every element",
                                           "bucketed 1 MB, check 1 in 16 of big tensors", "per-tensor broadcast",
                                           "object store put/get"]
    assert all(r["s"] > 0 and r["x_floor"] > 0 for r in rows)


def test_async_overlaps_the_stages_of_the_simulated_pipeline(ray_local):
    costs = bench_pipeline.StageCosts(rollout=0.2, judge=0.08, train=0.1, sync=0.02)
    on, asy = bench_pipeline.async_rows(costs, steps=6)
    assert on["step_s"] >= costs.on_policy * 0.95  # on-policy is the sum of the stages
    assert asy["speedup"] > 1.3 and asy["predicted"] == pytest.approx(0.4 / 0.22)
