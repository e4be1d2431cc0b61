"""What travels between roles (through the object store): one step's candidates and their judgements."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch


@dataclass
class RolloutBatch:
    prompts: list[str]  # N = prompts x G, grouped: the G candidates of a prompt are consecutive
    tokens: torch.Tensor  # (N, T) image-code ids
    logprobs: torch.Tensor  # (N, T) log-probs under the guided distribution that sampled them
    images: np.ndarray  # (N, H, W, 3) uint8
    version: int  # weight version of the policy that sampled
    group_size: int
    sample_s: float = 0.0  # seconds the rollout actor spent sampling this part

    @staticmethod
    def concat(parts: list["RolloutBatch"]) -> "RolloutBatch":
        if len({p.group_size for p in parts}) != 1:
            raise ValueError("rollout parts disagree on the group size")
        return RolloutBatch([q for p in parts for q in p.prompts], torch.cat([p.tokens for p in parts]),
                            torch.cat([p.logprobs for p in parts]), np.concatenate([p.images for p in parts]),
                            min(p.version for p in parts), parts[0].group_size, max(p.sample_s for p in parts))


@dataclass
class Judgement:
    rewards: torch.Tensor  # (N,) Eq. 6
    ref_logprobs: torch.Tensor  # (N, T) under the frozen reference, same guided distribution
    judge_s: float = 0.0  # seconds the introspector spent on this part
    rubric: dict[str, int] = field(default_factory=dict)  # rubrics written / repaired / fallen back for this part
    health: dict[str, int] = field(default_factory=dict)  # rollout.health.batch_health counts
    reward_maps: torch.Tensor | None = None  # (N, rows x cols) SRUM's dense reward on the policy's reward_grid

    @staticmethod
    def concat(parts: list["Judgement"]) -> "Judgement":
        return Judgement(torch.cat([p.rewards for p in parts]), torch.cat([p.ref_logprobs for p in parts]),
                         max(p.judge_s for p in parts), dict(sum((Counter(p.rubric) for p in parts), Counter())),
                         dict(sum((Counter(p.health) for p in parts), Counter())),
                         None if any(p.reward_maps is None for p in parts)
                         else torch.cat([p.reward_maps for p in parts]))


def split_stale(versions: list[int], learner_version: int, max_staleness: int) -> tuple[list[int], list[int]]:
    """Indices of the parts fresh enough to train on and of those to drop. A part sampled by weight version v
    is `learner_version - v` updates old; async training tolerates at most `max_staleness`."""
    fresh = [i for i, v in enumerate(versions) if learner_version - v <= max_staleness]
    return fresh, [i for i in range(len(versions)) if i not in fresh]
