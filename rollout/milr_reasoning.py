"""MILR as published (MILR Eq. 1-6, Fig. 10, App. A.4): the search over a reasoning model's latents. Per step and
prompt: write the reasoning with the text latents' offsets (decoded greedily to tokens, the rest written on from
them), draw `samples` images after it with the image latents' offsets, judge, and take one Adam step on
-(r - b) [log p(reasoning tokens | text latents) + log p(image tokens | image latents)] + beta (||dz_t||^2 +
||dz_v||^2) (b = 0 for one sample, their mean for more). The image a prompt ends with is its last one (the
first sample of the step at which it stopped)."""

from __future__ import annotations

import torch

from models.adapter import LatentShift
from rollout.milr import Found, Judge, Latents, MILRSettings, active, optimised_positions, reinforce_surrogate, \
    should_stop


def search_reasoned(adapter, prompts: list[str], judge: Judge, s: MILRSettings, guidance: float,
                    temperature: float, generator: torch.Generator) -> tuple[list[Found], LatentShift]:
    """MILR (variant paper) on a batch of prompts; `adapter` with the reasoning capability
    (models/janus_reasoning.py). Returns what each prompt ended with and the final latent offsets."""
    s = s.resolved()
    active(s.strategy, 0, s.steps)
    first = adapter.reason(prompts, s.reason_tokens)  # the model's own reasoning fixes how many latents move
    n_t = [optimised_positions(len(r), 0, s.lambda_t, s.lambda_v)[0] for r in first]
    n_v = optimised_positions(1, adapter.n_image_tokens, s.lambda_t, s.lambda_v)[1]
    z = Latents(n_t, n_v, adapter.latent_width, s.lr)
    found: list[Found | None] = [None] * len(prompts)
    live = list(range(len(prompts)))
    for step in range(s.steps):
        idx = torch.tensor(live)
        reasoning = adapter.reason([prompts[i] for i in live], s.reason_tokens, z.text[idx].detach())
        rows = idx.repeat_interleave(s.samples)
        row_prompts = [prompts[i] for i in rows.tolist()]
        row_reasoning = [reasoning[k] for k in range(len(live)) for _ in range(s.samples)]
        out = adapter.sample_reasoned(row_prompts, row_reasoning, guidance, temperature, generator,
                                      z.image[rows].detach())
        rewards = torch.nan_to_num(judge(row_prompts, out).float(), nan=0.0).view(len(live), s.samples)
        for k, i in enumerate(live):  # the final image: this step's first sample
            reward = float(rewards[k, 0])
            found[i] = Found(out.images[k * s.samples], reward, step + 1, reward > s.threshold)
        going = [k for k, i in enumerate(live) if not should_stop(found[i].reward, s.threshold, step + 1, s.steps)]
        if not going:
            break
        keep = [k * s.samples + j for k in going for j in range(s.samples)]
        going_rows = idx[going]
        logp_text = adapter.reasoning_logprobs([prompts[i] for i in going_rows.tolist()],
                                               [reasoning[k] for k in going], z.text[going_rows])
        logp_image = adapter.reasoned_image_logprobs([row_prompts[r] for r in keep], [row_reasoning[r] for r in keep],
                                                     out.tokens[keep], guidance, temperature,
                                                     z.image[rows[keep]]).sum(1)
        logp = logp_image.view(len(going), s.samples) + logp_text[:, None]
        loss = sum(reinforce_surrogate(lp, r) for lp, r in zip(logp, rewards[going]))
        z.step(loss + z.l2(going_rows, s.l2), s.strategy, step, s.steps)
        live = [live[k] for k in going]
    return found, z.final()
