"""Probe: does a shape-first curriculum (generation on colourless train prompts first, then all) make the
retargeted, factored generator (as in retarget.py, generation only, from the committed model) compose reserved
colour-shape pairs? Prints, after phase A and at the end, the colour and shape at each object's first token for
five prompts (32 samples each; three name a reserved pair), then the 40-prompt scores; saves to /tmp/comp_<arm>.

    PYTHONPATH=.:docs/results/toy_umm_probes .venv/bin/python docs/results/toy_umm_probes/composition.py ARM A B

ARM: base (all train prompts for A + B steps), curriculum (colourless prompts for A steps, then all for B),
curriculum_mix (as curriculum, but every other step of B colourless), colorfree_extra (every other step colourless).
"""
import collections
import sys
import time


from toyworld.pretrain_stages import (deterministic, factored_generator, lm_optimizer, optimizer_step,
                                      retarget_generator)
from models.janus import JanusAdapter
from toyworld.pretrain import JointData, generation_loss
from toyworld.prompts import names_a_color

from retarget import score  # the probes' 40-prompt scores
from shape_control import type_name  # patch type -> (colour, shape, quadrant)

PROMPTS = ["a photo of a purple triangle", "a photo of a yellow square", "a photo of a green circle",
           "a photo of a red triangle", "a photo of a triangle"]


def shapes(a):
    a.model.eval()
    for p in PROMPTS:
        out = a.sample([p], 32, 3.0, 1.0, a.generator(0))
        c = collections.Counter()
        for t in out.tokens.flatten().tolist():
            if 0 < t <= 60 and type_name(t)[2] == 0:  # an object's top-left token
                c[type_name(t)[:2]] += 1
        print(" ", p, dict(c.most_common(4)), flush=True)


def main(arm, steps_a, steps_b):
    with deterministic(2):
        a = JanusAdapter.from_pretrained("models/toy_umm", device="cpu")
        assert retarget_generator(a, 12)
        data = JointData(a, 21, codes_are_types=True)
        full = data.train_pool
        plain = [m for m in full if not names_a_color(m)]
        print(arm, "colourless train prompts", len(plain), "of", len(full), flush=True)
        with factored_generator(a.model, True):
            params, opt = lm_optimizer(a.model, 5e-4)
            t0 = time.time()
            for step in range(steps_a + steps_b):
                if arm == "curriculum":
                    data.use_generation_prompts(plain if step < steps_a else full)
                elif arm == "curriculum_mix":
                    data.use_generation_prompts(plain if step < steps_a or step % 2 == 0 else full)
                elif arm == "colorfree_extra":
                    data.use_generation_prompts(plain if step % 2 == 0 else full)
                loss = generation_loss(a, *data.generation(24))
                optimizer_step(opt, params, {"gen": loss})
                if step % 100 == 99:
                    print(step + 1, round(loss.item(), 3), f"{time.time() - t0:.0f}s", flush=True)
                if step + 1 in (steps_a, steps_a + steps_b):
                    print("step", step + 1)
                    shapes(a)
                    a.model.train()
                    a.model.model.vqmodel.eval()
            score(a, f"{arm} end")
        a.save_pretrained(f"/tmp/comp_{arm}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
