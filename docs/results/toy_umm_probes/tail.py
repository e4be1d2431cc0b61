"""Probe: `launch/pretrain_toy.py`'s understanding tail (`train_tail`) run on the committed toy UMM, then the
pretraining report's measurements (understanding, rubrics, generation on test and heldout).

    PYTHONPATH=. .venv/bin/python docs/results/toy_umm_probes/tail.py [base] [key=value ...]  # PretrainConfig keys
`base` is the checkpoint the tail continues (default models/toy_umm; the model before any tail is
`git show 6aba282:models/toy_umm/<file>` for each file, into one directory). The model is saved to `out`
(default /tmp/toy_umm_tail), so `launch/evaluate.py checkpoint=...` can score it.
"""
import json
import sys
import time

from driver.cli import parse_config
from launch.configs.pretrain import PretrainConfig
from toyworld.pretrain_stages import deterministic, measure, train_tail
from models.janus import JanusAdapter


def main(argv):
    base = argv.pop(0) if argv and "=" not in argv[0] else "models/toy_umm"
    cfg = parse_config(PretrainConfig, ["tail_steps=300", "out=/tmp/toy_umm_tail"] + argv, "tail.py")
    with deterministic(cfg.threads):
        adapter = JanusAdapter.from_pretrained(base, device="cpu")
        t0 = time.time()
        train_tail(adapter, cfg)
        wall = time.time() - t0
        adapter.save_pretrained(cfg.out)
        print(json.dumps({"tail_steps": cfg.tail_steps, "tail_gen_batch": cfg.tail_gen_batch,
                          "tail_kinds": cfg.tail_kinds,
                          "tail_retarget_codes": cfg.tail_retarget_codes,
                          "tail_s": round(wall, 1), **measure(adapter, cfg)}))


if __name__ == "__main__":
    main(sys.argv[1:])
