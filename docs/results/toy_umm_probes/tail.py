"""Probe: `launch/pretrain_toy.py`'s understanding tail (`train_tail`) run on the committed toy UMM, then the
pretraining report's measurements (understanding, rubrics, generation on test and heldout).

    PYTHONPATH=. .venv/bin/python docs/results/toy_umm_probes/tail.py [key=value ...]   # PretrainConfig keys
The model is saved to `out` (default /tmp/toy_umm_tail), so `launch/evaluate.py checkpoint=...` can score it.
"""
import json
import sys
import time

from launch.cli import parse_config
from launch.pretrain_toy import PretrainConfig, deterministic, measure, train_tail
from models.janus import JanusAdapter


def main(argv):
    cfg = parse_config(PretrainConfig, ["tail_steps=300", "out=/tmp/toy_umm_tail"] + argv, "tail.py")
    with deterministic(cfg.threads):
        adapter = JanusAdapter.from_pretrained("models/toy_umm", device="cpu")
        t0 = time.time()
        train_tail(adapter, cfg)
        wall = time.time() - t0
        adapter.save_pretrained(cfg.out)
        print(json.dumps({"tail_steps": cfg.tail_steps, "tail_gen_batch": cfg.tail_gen_batch,
                          "tail_kinds": cfg.tail_kinds, "tail_s": round(wall, 1), **measure(adapter, cfg)}))


if __name__ == "__main__":
    main(sys.argv[1:])
