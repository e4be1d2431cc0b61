"""A mixin for the actors that hold the policy's current weights (rollouts and, between updates, the learner): the
images of a before/after evaluation. Each batch has its own seed, so a batch's images depend on the weights and the
seed alone, not on which actor drew it or in what order: the job deals the batches to every such actor at once
(one per core on a CPU host) and gets the same table as one actor drawing them all."""

from __future__ import annotations

import torch


class EvaluationSampling:
    @torch.no_grad()
    def evaluation_images(self, prompts: list[str], samples: int, guidance: float, temperature: float,
                          seed: int) -> list:
        """`samples` images per prompt, prompt-major, drawn with a generator seeded by `seed`."""
        return list(self.a.sample(prompts, samples, guidance, temperature, self.a.generator(seed)).images)
