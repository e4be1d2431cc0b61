"""Probe: the generator after `retarget_codes` (one code per patch type, rows carried over) trained on generation
only, with or without the factored head and code embeddings (`TypeFactored`); then generation on test and heldout
(40 prompts each, 4 samples, CFG 3) at the half-way point and the end, and the shape drawn for four prompts.

    PYTHONPATH=. .venv/bin/python docs/results/toy_umm_probes/retarget.py [checkpoint] [steps] [plain|factored]

Generation-only training forgets understanding (measured after 900 steps: yes/no 0.64, rubric parse 0.00), so this
measures what the generator can learn, not a recipe. The model is saved to /tmp/toy_umm_retarget.
"""
import sys
import time

import torch

from toyworld.pretrain_stages import (deterministic, factored_generator, lm_optimizer, optimizer_step,
                                      retarget_generator)
from models.janus import JanusAdapter
from toyworld.evaluation import generation_score
from toyworld.pretrain import JointData, generation_loss
from toyworld.prompts import load_split


def score(adapter, label):
    adapter.model.eval()
    for split in ("test", "heldout"):
        metas = load_split(split)
        r = generation_score(adapter, metas[:: max(1, len(metas) // 40)], seed=0)
        print(label, split, round(r["overall"], 3), {k: round(v, 2) for k, v in r["per_tag"].items()}, flush=True)


def main(checkpoint="models/toy_umm", steps=900, arm="factored"):
    with deterministic(2):
        adapter = JanusAdapter.from_pretrained(checkpoint, device="cpu")
        codes_are_types = retarget_generator(adapter, 12)
        score(adapter, "retargeted, before training")
        data = JointData(adapter, 21, codes_are_types=codes_are_types)
        with factored_generator(adapter.model, arm == "factored"):
            params, opt = lm_optimizer(adapter.model, 5e-4)
            t0 = time.time()
            for step in range(steps):
                loss = generation_loss(adapter, *data.generation(24))
                optimizer_step(opt, params, {"gen": loss})
                if step % 100 == 99:
                    print(step + 1, round(loss.item(), 3), f"{time.time() - t0:.0f}s", flush=True)
                if step + 1 in (steps // 2, steps):
                    score(adapter, f"step {step + 1}")
                    adapter.model.train()  # score() left it in eval mode; the VQ stays frozen in eval mode
                    adapter.model.model.vqmodel.eval()
        adapter.save_pretrained("/tmp/toy_umm_retarget")


if __name__ == "__main__":
    main(*(sys.argv[1:2] or ["models/toy_umm"]), *[int(a) for a in sys.argv[2:3]], *sys.argv[3:4])
