"""launch/pretrain_toy.py is deterministic by seed (tiny sizes, a few steps)."""
from safetensors.torch import load_file

from launch import pretrain_toy

TINY = ["hidden=32", "layers=1", "vision_hidden=32", "vision_layers=1", "codebook=32", "vq_steps=3", "vq_batch=2",
        "symbolic_steps=2", "joint_steps=3", "gen_batch=2", "und_batch=2", "rubric_batch=2", "warmup=1", "measure_after=false"]


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        pretrain_toy.main(TINY + [f"out={tmp_path / name}", f"seed={seed}"])
    a, b, c = (load_file(tmp_path / n / "model.safetensors") for n in "abc")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert any(not (a[k] == c[k]).all() for k in a)
