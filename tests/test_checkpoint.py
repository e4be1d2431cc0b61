"""Checkpoint files: atomic write, newest K kept, checksums catch truncation and tampering (issue 6, item 1-2)."""
import json

import pytest
import torch

from learners import checkpoint


def _states(x: float):
    return {"learner-0": ({"w": torch.full((3,), x), "rng": torch.arange(4, dtype=torch.uint8)}, {"version": int(x)}),
            "driver": ({}, {"position": 7, "order": ["a", "b"]})}


def test_round_trip_and_only_the_newest_k_are_kept(tmp_path):
    for step in (1, 2, 3):
        checkpoint.save(tmp_path, step, _states(float(step)), keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_000002", "step_000003"]  # no temp dirs left
    step, states = checkpoint.load_latest(tmp_path)
    assert step == 3 and torch.equal(states["learner-0"][0]["w"], torch.full((3,), 3.0))
    assert states["learner-0"][1] == {"version": 3} and states["driver"][1]["order"] == ["a", "b"]


@pytest.mark.parametrize("damage", ["truncate", "tamper", "manifest"])
def test_a_damaged_newest_checkpoint_is_skipped_with_a_warning_naming_the_file(tmp_path, damage):
    for step in (1, 2):
        checkpoint.save(tmp_path, step, _states(float(step)), keep=3)
    newest = tmp_path / "step_000002"
    if damage == "truncate":
        data = (newest / "learner-0.safetensors").read_bytes()
        (newest / "learner-0.safetensors").write_bytes(data[: len(data) // 2])
        bad = "learner-0.safetensors: checksum mismatch"
    elif damage == "tamper":
        (newest / "driver.json").write_text(json.dumps({"position": 8, "order": ["a", "b"]}))
        bad = "driver.json: checksum mismatch"
    else:
        (newest / "manifest.json").write_text("{not json")
        bad = "manifest.json: unreadable manifest"
    with pytest.warns(UserWarning, match=bad):
        step, states = checkpoint.load_latest(tmp_path)
    assert step == 1 and states["learner-0"][1] == {"version": 1}


def test_no_checkpoint_gives_none(tmp_path):
    assert checkpoint.load_latest(tmp_path) is None
