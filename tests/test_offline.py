"""SRUM's offline regime (driver/offline.py): the chunking and the seeded chunk order by hand, the stage-1 set's
round trip through disk, and (slow) the job end to end: stage 1 once, T steps on it, a resume that reuses it."""
import json

import numpy as np
import pytest
import torch

from driver.offline import OfflineData, chunk_for, chunks_of
from rollout.batch import Judgement, RolloutBatch


def test_chunks_are_full_and_the_order_is_a_seeded_permutation_per_epoch():
    assert chunks_of(list("abcde"), 2) == [["a", "b"], ["c", "d"], ["e", "a"]]  # the last completed by wrapping
    assert chunks_of(list("abcd"), 2) == [["a", "b"], ["c", "d"]]
    for epoch in range(3):
        assert sorted(chunk_for(epoch * 5 + i, 5, seed=7) for i in range(5)) == list(range(5))
    assert [chunk_for(i, 5, 7) for i in range(10)] == [chunk_for(i, 5, 7) for i in range(10)]  # no state
    assert [chunk_for(i, 5, 7) for i in range(5)] != [chunk_for(i, 5, 8) for i in range(5)] or \
        [chunk_for(i, 5, 7) for i in range(5, 10)] != [chunk_for(i, 5, 8) for i in range(5, 10)]


def test_a_chunk_round_trips_through_disk_bitwise(tmp_path):
    g = torch.Generator().manual_seed(0)
    images = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    batch = RolloutBatch(["a", "a", "b", "b"], torch.randint(0, 64, (4, 16), generator=g),
                         torch.randn(4, 16, generator=g), images, 0, 2)
    judged = Judgement(torch.rand(4, generator=g), torch.randn(4, 16, generator=g), 1.5, {"written": 2},
                       {"groups": 2}, torch.rand(4, 16, generator=g))
    data = OfflineData(tmp_path)
    assert data.saved() == set()
    data.save(3, batch, judged)
    assert data.saved() == {3} and not list(tmp_path.glob(".*tmp"))
    b, j = data.load(3)
    assert b.prompts == batch.prompts and torch.equal(b.tokens, batch.tokens) and np.array_equal(b.images, batch.images)
    assert torch.equal(b.logprobs, batch.logprobs) and (b.version, b.group_size) == (0, 2)
    assert torch.equal(j.rewards, judged.rewards) and torch.equal(j.reward_maps, judged.reward_maps)
    assert torch.equal(j.ref_logprobs, judged.ref_logprobs) and j.rubric == {"written": 2} and j.health == {"groups": 2}


def test_offline_needs_srum():
    from driver.cli import UserError, parse_config
    from launch.configs.meta_ttrl import MetaTTRLConfig
    with pytest.raises(UserError, match="trainer.regime=offline trains on samples judged once"):
        parse_config(MetaTTRLConfig, ["trainer.regime=offline"], "x")


@pytest.mark.slow  # two short jobs (~40 s)
def test_offline_srum_samples_once_trains_on_the_set_and_a_resume_reuses_it(ray_local, tmp_path):
    from launch import meta_ttrl
    from toyworld.prompts import load_split

    prompts = tmp_path / "three.jsonl"
    prompts.write_text("".join(json.dumps(m) + "\n" for m in load_split("test")[:3]))
    argv = [f"data.split={prompts}", "reward.judge=srum", "trainer.algorithm=srum", "trainer.regime=offline",
            "data.prompts_per_step=2", "rollout.group_size=2", "data.eval_max_prompts=1", "data.eval_samples=1",
            "data.heldout=", "run.grid_prompts=0", "run.wandb=disabled", f"run.dir={tmp_path / 'run'}"]
    meta_ttrl.main(argv + ["trainer.steps=3"])
    parts = sorted((tmp_path / "run" / "offline").glob("part_*.safetensors"))
    assert len(parts) == 2  # 3 prompts in chunks of 2, the last wrapped
    stamps = [p.stat().st_mtime_ns for p in parts]
    metrics = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [0, 1, 2] and all(m["updates"] >= 1 for m in metrics)
    assert [m["staleness_max"] for m in metrics] == [0, 1, 2] and metrics[-1]["stale_dropped"] == 0
    meta_ttrl.main(argv + ["trainer.steps=5", "run.resume=auto"])
    metrics = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [0, 1, 2, 3, 4]
    assert [p.stat().st_mtime_ns for p in parts] == stamps  # stage 1 was not run again
