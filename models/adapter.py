"""The adapter protocol: what every model backend implements (models/janus.py, models/diffusion.py) and what the
rest of the project calls, so methods never branch on the model (DESIGN.md §4).

- `Generator`: the policy: sampling with per-step log-probs, teacher-forced log-probs (with grad), the training
  handles (parameters, module, freeze/train), weights for the sync, save_pretrained.
- `Understanding`: Yes/No answer probabilities (Eq. 5) and text writing (rubrics), with the context check; an
  adapter's own understanding, or a separate answerer (GIT, vLLM, a Qwen2.5-VL).
- `Capabilities`: what a generator can do beyond sampling, declared by each backend and read by the driver's
  checks instead of probing attributes: its own understanding (rubric judge, Meta-TTRL), prompt likelihood
  (GvU), image tokens on a grid (SRUM's token maps), latent search (MILR).

Also the types that cross the protocol (`ImageSamples`, `LatentShift`), device and dtype resolution, and the
answer-token lookup every answerer shares.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch


@dataclass(frozen=True)
class Capabilities:
    understanding: bool  # writes and answers rubrics with its own weights (`Understanding` on the adapter)
    prompt_likelihood: bool  # `prompt_logprobs(images, prompts)`: GvU's reward
    image_tokens: bool  # discrete image tokens on `token_grid`: SRUM's token-level reward maps
    latent_search: bool  # a `LatentShift` in `sample` / `image_logprobs`, `prompt_lengths`, `latent_width`: MILR
    reasoning: bool = False  # writes reasoning text before the image (models/janus_reasoning.py): MILR as published
    reward_maps: bool = False  # a `reward_grid` SRUM's dense maps live on (image tokens, or a flow model's latents)
    describes: bool = False  # `ask(images, questions)`: free text about images (SRUM's scoring prompts)


@dataclass
class ImageSamples:
    tokens: torch.Tensor  # (N, T) image-code ids, or a flow model's SDE trajectory (N, S + 1, C, h, w)
    logprobs: torch.Tensor  # (N, T) log-prob of each token (or trained step) under the guided sampling distribution
    images: np.ndarray  # (N, H, W, 3) uint8


@dataclass
class LatentShift:
    """MILR's optimised latents, as offsets for the conditional rows of a guided batch (one row per sequence):
    `text` (B, n_t, D) is added to the input embeddings of the first n_t prompt tokens (a prompt's last-layer
    states feed no later position in a causal model, so the prompt's latents are taken at the input), `image`
    (B, n_v, D) to the last-layer states that predict the first n_v image tokens. Either may be None."""
    text: torch.Tensor | None = None
    image: torch.Tensor | None = None

    def rows(self, index) -> "LatentShift":
        return LatentShift(*(None if x is None else x[index] for x in (self.text, self.image)))


@runtime_checkable
class Understanding(Protocol):
    """Answers yes/no questions about images and writes text (rubrics) in its `rubric_dialect` ("toy" or "chat":
    the instruction it is given and the parser its rubrics go through, rewards/dialects.py)."""
    rubric_dialect: str

    def image_features(self, images: np.ndarray):
        """Whatever `answer_probs` reuses per image (encoded once for all its questions); may be None."""

    def answer_probs(self, images: np.ndarray, questions: list[str], image_index: list[int] | None = None,
                     features=None) -> torch.Tensor:
        """(Q, 2) probabilities of [yes, no] as the next token after question q about image `image_index[q]`."""

    def write(self, prompts: list[str], instruction: str, max_new_tokens: int = 96, temperature: float = 0.0,
              generator: torch.Generator | None = None) -> list[str]:
        """A continuation per prompt (greedy, or sampled at `temperature` > 0)."""


@runtime_checkable
class Generator(Protocol):
    """The policy's side of an adapter (the rollout, learner and reference copies all hold one)."""
    capabilities: Capabilities

    @property
    def device(self) -> torch.device: ...

    @property
    def module(self) -> torch.nn.Module:
        """The module a DeepSpeed engine wraps."""

    @property
    def token_grid(self) -> tuple[int, int] | None:
        """(rows, columns) of the image tokens in raster order; None without image tokens."""

    @property
    def reward_grid(self) -> tuple[int, int] | None:
        """(rows, columns) of the grid SRUM's reward maps are painted on: the image tokens, or a flow model's
        latent grid."""

    @property
    def max_positions(self) -> int: ...

    def positions_needed(self, prompt: str, instruction: str, max_new_tokens: int) -> int:
        """Sequence positions the longest use of `prompt` takes (image, rubric, fallback question)."""

    def trainable_parameters(self) -> list[tuple[str, torch.nn.Parameter]]: ...

    def freeze(self) -> None: ...

    def train(self, mode: bool = True) -> None: ...

    def weights(self) -> dict[str, torch.Tensor]: ...

    def generator(self, seed: int) -> torch.Generator: ...

    def sample(self, prompts: list[str], n: int = 1, guidance: float = 3.0, temperature: float = 1.0,
               generator: torch.Generator | None = None, shift: LatentShift | None = None) -> ImageSamples: ...

    def image_logprobs(self, prompts: list[str], tokens: torch.Tensor, guidance: float, temperature: float,
                       shift: LatentShift | None = None) -> torch.Tensor: ...

    def save_pretrained(self, path) -> None: ...


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}  # besides "auto"


def resolve_device(device: str) -> torch.device:
    """auto: the GPU Ray gave this actor (CUDA_VISIBLE_DEVICES), else the CPU."""
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)


def resolve_dtype(dtype: str | torch.dtype, device: torch.device) -> torch.dtype:
    """auto: bfloat16 on GPU (Janus-Pro's and Qwen-Image's training precision), float32 on CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"unknown model dtype {dtype!r}; valid: auto, {', '.join(DTYPES)}")
    return DTYPES[dtype]


def first_difference(a: list[int], b: list[int]) -> int:
    """Index of the first token where two tokenisations differ: the length of a template's fixed prefix, found by
    filling it with two different words (a BPE merges a prompt's first word with the space before it, so the
    prefix cannot be tokenised alone)."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def answer_token_ids(tokenizer, word: str) -> list[int]:
    """Single-token ids of `word` and its leading-space / capitalised variants (Eq. 5 reads p(Yes), p(No))."""
    ids = set()
    for variant in (word, " " + word, word.capitalize(), " " + word.capitalize()):
        enc = tokenizer(variant, add_special_tokens=False).input_ids
        if len(enc) == 1 and enc[0] != tokenizer.unk_token_id:
            ids.add(enc[0])
    if not ids:
        raise ValueError(f"the tokenizer has no single token for answer {word!r}")
    return sorted(ids)


def to_uint8(pixels: torch.Tensor) -> np.ndarray:
    """(N, H, W, 3) in [-1, 1] -> uint8."""
    return ((pixels.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()


class GeneratorAdapter(ABC):
    """Base of the generator backends: the parts of `Generator` that follow from `trainable_parameters()` and
    `device`. `lora`: the LoRA settings once models/lora.attach has put adapters in (then only they train)."""
    capabilities: Capabilities
    lora = None
    base_path = ""  # where the base weights were loaded from (a LoRA checkpoint names it)

    @property
    def reward_grid(self) -> tuple[int, int] | None:
        """The grid SRUM's reward maps are painted on: the image tokens' unless a backend says otherwise."""
        return self.token_grid

    def _pad(self, rows: list[list[int]], left: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Token rows padded with `pad_id` to one width (ids, mask), on the left (generation) or the right."""
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):
            sl = slice(width - len(r), width) if left else slice(0, len(r))
            ids[i, sl], mask[i, sl] = torch.tensor(r, dtype=torch.long), 1
        return ids.to(self.device), mask.to(self.device)

    def lora_filtered(self, named) -> list[tuple[str, torch.nn.Parameter]]:
        """`named` parameters, or only their LoRA adapters when LoRA is on."""
        return [(n, p) for n, p in named if ".lora_" in n] if self.lora else list(named)

    def save_pretrained(self, path) -> None:
        """The policy in its own layout; with LoRA, the adapters (and on request the merged weights)."""
        if self.lora:
            from models import lora
            lora.save(self, path, self.base_path)
        else:
            self.save_full(path)

    @abstractmethod
    def save_full(self, path) -> None: ...

    def save_merged(self, path) -> None:
        """The base with the LoRA adapters folded in, in the plain layout."""
        from models import lora
        own = self.module_holder()
        original = getattr(self, own)
        setattr(self, own, lora.merged_module(original))
        try:
            self.save_full(path)
        finally:
            setattr(self, own, original)

    @abstractmethod
    def module_holder(self) -> str:
        """The attribute holding `module` (what LoRA goes into and what a merged export replaces)."""

    @property
    @abstractmethod
    def device(self) -> torch.device: ...

    @abstractmethod
    def trainable_parameters(self) -> list[tuple[str, torch.nn.Parameter]]: ...

    def weights(self) -> dict[str, torch.Tensor]:
        """A detached copy of the trainable weights (what a sync must make equal across roles)."""
        return {n: p.detach().clone() for n, p in self.trainable_parameters()}

    def generator(self, seed: int) -> torch.Generator:
        """A seeded generator on the model's device (sampling on a GPU needs a GPU generator)."""
        return torch.Generator(device=self.device).manual_seed(seed)
