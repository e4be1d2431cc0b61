"""Probe: the understanding tail (`train_tail`'s data and losses, `tail_retarget_codes` on) with `k` extra
generation-only steps after every joint step, on a given checkpoint; then the pretraining report's measurements.
Question: does generation keep what generation-only training gives (retarget.py) while understanding and rubric
writing are replayed?

    PYTHONPATH=. .venv/bin/python docs/results/toy_umm_probes/mixed_tail.py [checkpoint] [k] [steps]
"""
import json
import sys
import time

from driver.cli import parse_config
from launch.configs.pretrain import PretrainConfig
from models.janus import JanusAdapter
from toyworld.pretrain import JointData, generation_loss, text_loss
from toyworld.pretrain_stages import (deterministic, factored_generator, lm_optimizer, log_losses, measure,
                                      optimizer_step, question_kinds, retarget_generator, understanding_losses)


def main(checkpoint="models/toy_umm", k=2, steps=300):
    cfg = parse_config(PretrainConfig, ["tail_retarget_codes=true"], "mixed_tail.py")
    with deterministic(cfg.threads):
        adapter = JanusAdapter.from_pretrained(checkpoint, device="cpu")
        t0 = time.time()
        types = retarget_generator(adapter, cfg.seed + 12)
        data = JointData(adapter, cfg.seed + 11, tag_balanced=cfg.tail_gen_tag_balanced, codes_are_types=types)
        gen_data = JointData(adapter, 21, codes_are_types=types)  # uniform over train prompts, as retarget.py
        data.hard_p, data.kinds = cfg.hard_negatives, question_kinds(cfg.tail_kinds)
        with factored_generator(adapter.model, True):
            params, opt = lm_optimizer(adapter.model, cfg.tail_lr)
            for step in range(steps):
                losses = understanding_losses(adapter, data, cfg, symbolic=False)
                losses["rubric"] = text_loss(adapter, *data.rubric(cfg.rubric_batch))
                losses["gen"] = generation_loss(adapter, *data.generation(cfg.tail_gen_batch))
                optimizer_step(opt, params, losses)
                for _ in range(k):
                    optimizer_step(opt, params, {"gen": generation_loss(adapter, *gen_data.generation(24))})
                if step % 50 == 49:
                    log_losses("mixed", step, steps, losses, t0)
        adapter.model.eval()
        wall = time.time() - t0
        adapter.save_pretrained("/tmp/toy_umm_mixed")
        print(json.dumps({"k": k, "steps": steps, "wall_s": round(wall, 1), **measure(adapter, cfg)}))


if __name__ == "__main__":
    main(*(sys.argv[1:2] or ["models/toy_umm"]), *[int(a) for a in sys.argv[2:4]])
