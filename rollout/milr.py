"""MILR (DESIGN.md §1): test-time search in latent space, no weight update. Pure pieces: which token positions
are optimised, the REINFORCE surrogate whose gradient moves the latents, the l2 term, and the stopping rule.

Two variants (`MILRSettings.variant`):
- `paper`, MILR as published (Eq. 1-6, Fig. 10, App. A.4; rollout/milr_reasoning.py): the model writes reasoning
  text, then the image; the latents are the last-layer states of the first `lambda_t` (0.2) of the reasoning
  tokens (decoded to tokens, the reasoning finished from them) and of the first `lambda_v` (0.02) of the image
  tokens; loss -r log p(outputs | latents) + 0.05 ||z - z_init||^2; one sample per step; the final image returned.
- `ours`, this project's earlier reading, kept for comparison (the toy model writes no reasoning): the text latents
  shift the input embeddings of the first 20% of the prompt's tokens, 2 samples a step with their mean reward as
  baseline, no l2 term, the best image seen returned.
Both: Adam (lr 0.03), up to K = 20 steps, stopping once the reward passes the threshold. Strategies: joint (both
sets each step), alternating (text on even steps, image on odd), text_then_image (text for the first half of the
steps, image after), text_only and image_only (the paper's "w/o image" and "w/o text" ablations).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from models.adapter import ImageSamples, LatentShift

# strategy -> (step, steps) -> (text latents move, image latents move)
STRATEGIES: dict[str, Callable[[int, int], tuple[bool, bool]]] = {
    "joint": lambda step, steps: (True, True),  # both sets every step
    "alternating": lambda step, steps: (step % 2 == 0, step % 2 == 1),  # text on even steps, image on odd
    "text_then_image": lambda step, steps: (step < steps // 2, step >= steps // 2),  # text first half, image after
    "text_only": lambda step, steps: (True, False),  # the paper's "w/o image" ablation
    "image_only": lambda step, steps: (False, True),  # the paper's "w/o text" ablation
}


def optimised_positions(n_text: int, n_image: int, lambda_t: float = 0.2, lambda_v: float = 0.02) -> tuple[int, int]:
    """How many leading text and image tokens carry optimised latents (at least one of each when present)."""
    return (max(1, math.ceil(lambda_t * n_text)) if n_text else 0,
            max(1, math.ceil(lambda_v * n_image)) if n_image else 0)


def active(strategy: str, step: int, steps: int) -> tuple[bool, bool]:
    """(text latents move, image latents move) at `step` of `steps`."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown MILR strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    return STRATEGIES[strategy](step, steps)


def reinforce_surrogate(logp: torch.Tensor, rewards: torch.Tensor, baseline: torch.Tensor | None = None) -> torch.Tensor:
    """A loss whose gradient is -E[(r - b) * grad log p(y | z)]: minimising it ascends the expected reward.
    logp (S,) summed log-probs of S sampled outputs given the latents; rewards (S,); baseline defaults to the
    mean reward (variance reduction; with one sample it is 0)."""
    if baseline is None:
        baseline = rewards.mean() if rewards.numel() > 1 else torch.zeros(())
    return -((rewards - baseline).detach() * logp).mean()


def should_stop(best_reward: float, threshold: float, step: int, max_steps: int) -> bool:
    return best_reward > threshold or step >= max_steps


def l2_penalty(latents: list[torch.Tensor], beta: float) -> torch.Tensor:
    """MILR App. A.4's regulariser beta * ||z - z_init||^2, summed over every latent set; the latents here are
    offsets from the model's own (z - z_init), so its gradient is 2 beta (z - z_init)."""
    return beta * sum((z.float() ** 2).sum() for z in latents)


class Latents:
    """Each prompt's latent offsets, starting at 0: `text` (B, max n_t, D) masked to each prompt's own n_t, `image`
    (B, n_v, D), and the Adam that moves them."""

    def __init__(self, n_t: list[int], n_v: int, width: int, lr: float):
        self.raw_text = torch.zeros(len(n_t), max(n_t), width, requires_grad=True)
        self.mask = (torch.arange(max(n_t))[None] < torch.tensor(n_t)[:, None]).float()[..., None]
        self.image = torch.zeros(len(n_t), n_v, width, requires_grad=True)
        self.opt = torch.optim.Adam([self.raw_text, self.image], lr=lr)

    @property
    def text(self) -> torch.Tensor:
        return self.raw_text * self.mask

    def l2(self, rows: torch.Tensor, beta: float) -> torch.Tensor:
        return l2_penalty([self.text[rows], self.image[rows]], beta)

    def step(self, loss: torch.Tensor, strategy: str, step: int, steps: int) -> None:
        """One Adam step on `loss`; a set the strategy holds still this step gets no gradient (Adam skips it)."""
        move_text, move_image = active(strategy, step, steps)
        self.opt.zero_grad()
        loss.backward()
        self.raw_text.grad = self.raw_text.grad if move_text else None
        self.image.grad = self.image.grad if move_image else None
        self.opt.step()

    def final(self) -> LatentShift:
        return LatentShift(self.text.detach(), self.image.detach())


# variant -> what an unset setting means: the published method, or this project's earlier reading of it
VARIANTS = {
    "paper": {"samples": 1, "l2": 0.05},  # reasoning phase, last-layer text latents, final image returned
    "ours": {"samples": 2, "l2": 0.0},  # prompt input-embedding latents, best image returned
}


@dataclass
class MILRSettings:
    lambda_t: float = 0.2  # share of the text tokens whose latents move (paper: reasoning; ours: prompt)
    lambda_v: float = 0.02  # share of the image tokens whose latents move
    lr: float = 0.03  # Adam
    steps: int = 20  # K
    samples: Optional[int] = None  # images per prompt and step (None: the variant's, paper 1, ours 2); with more
    #                                than one the REINFORCE baseline is their mean reward, with one it is 0
    threshold: float = 0.5  # stop a prompt's search once one of its images scores above this
    strategy: str = "joint"
    variant: str = "ours"  # paper: MILR as published (reasoning phase); ours: the earlier prompt-latent reading
    l2: Optional[float] = None  # beta of the l2 term (None: the variant's, paper 0.05, ours 0)
    reason_tokens: int = 128  # the reasoning's token budget (paper variant)

    def resolved(self) -> "MILRSettings":
        """These settings with every unset value the variant's."""
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown MILR variant {self.variant!r}; valid: {', '.join(VARIANTS)}")
        fill = {k: v for k, v in VARIANTS[self.variant].items() if getattr(self, k) is None}
        return dataclasses.replace(self, **fill)


@dataclass
class Found:
    image: np.ndarray  # the best-scoring image of the search
    reward: float
    steps: int  # search steps taken (each drew `samples` images)
    stopped_early: bool


# judge(prompts of the rows, sampled images) -> rewards (rows,)
Judge = Callable[[list[str], ImageSamples], torch.Tensor]


def search(adapter, prompts: list[str], judge: Judge, s: MILRSettings, guidance: float, temperature: float,
           generator: torch.Generator) -> tuple[list[Found], LatentShift]:
    """MILR (variant ours) on a batch of prompts, each with its own latents (offsets from the model's own, starting at
    0): sample, judge, one Adam step on the REINFORCE surrogate (plus the l2 term), until the reward passes the
    threshold or K steps. Returns what each prompt found and the final latent offsets (one row per prompt)."""
    s = s.resolved()
    active(s.strategy, 0, s.steps)  # an unknown strategy fails before any work
    if s.variant != "ours":
        raise ValueError("milr.variant=paper searches with rollout.milr_reasoning.search_reasoned")
    n_t = [optimised_positions(n, adapter.n_image_tokens, s.lambda_t, s.lambda_v)[0]
           for n in adapter.prompt_lengths(prompts)]
    n_v = optimised_positions(1, adapter.n_image_tokens, s.lambda_t, s.lambda_v)[1]
    z = Latents(n_t, n_v, adapter.latent_width, s.lr)
    found: list[Found | None] = [None] * len(prompts)
    live = list(range(len(prompts)))
    for step in range(s.steps):
        rows = torch.tensor(live).repeat_interleave(s.samples)
        shift = LatentShift(z.text, z.image).rows(rows)
        out = adapter.sample([prompts[i] for i in live], s.samples, guidance, temperature, generator,
                             LatentShift(shift.text.detach(), shift.image.detach()))
        row_prompts = [prompts[i] for i in rows.tolist()]
        rewards = torch.nan_to_num(judge(row_prompts, out).float(), nan=0.0).view(len(live), s.samples)
        for k, i in enumerate(live):
            j = int(rewards[k].argmax())
            if found[i] is None or rewards[k, j] > found[i].reward:
                found[i] = Found(out.images[k * s.samples + j], float(rewards[k, j]), 0, False)
            found[i].steps, found[i].stopped_early = step + 1, found[i].reward > s.threshold
        going = [k for k, i in enumerate(live) if not should_stop(found[i].reward, s.threshold, step + 1, s.steps)]
        if not going:  # no update is needed once every prompt has stopped (early, or at K)
            break
        keep = torch.tensor([k * s.samples + j for k in going for j in range(s.samples)])
        logp = adapter.image_logprobs([row_prompts[r] for r in keep.tolist()], out.tokens[keep], guidance,
                                      temperature, shift.rows(keep)).sum(1)
        loss = sum(reinforce_surrogate(lp, r) for lp, r in zip(logp.view(len(going), -1), rewards[going]))
        loss = loss + z.l2(torch.tensor([live[k] for k in going]), s.l2)
        z.step(loss, s.strategy, step, s.steps)
        live = [live[k] for k in going]
    return found, z.final()
