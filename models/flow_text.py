"""How a flow transformer's prompt conditioning is made: a `TextCondition` (states, mask, pooled vector) per prompt.

- vlm: the understanding VLM's last hidden states (Qwen-Image's design; also our own flow layout), pooled = their
  masked mean. The VLM also writes and answers rubrics.
- pipeline: the text encoders of a published SD3/3.5 (two CLIPs + T5) or FLUX (CLIP + T5) pipeline, through the
  diffusers pipeline class's own `encode_prompt` (so their concatenation, padding and pooling are diffusers',
  not ours). These pipelines have no VLM: rubrics come from a separate one (`model.understanding_path`).

Both pad every prompt to a fixed length, so a row's conditioning never depends on the other prompts of its batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

PIPELINES = ("StableDiffusion3Pipeline", "FluxPipeline")  # published layouts whose text encoders we call


@dataclass
class TextCondition:
    states: torch.Tensor  # (B, L, D) prompt token states
    mask: torch.Tensor  # (B, L) 1 = a real token (all ones for CLIP/T5: SD3 and FLUX attend to padding as trained)
    pooled: torch.Tensor  # (B, P) the pooled prompt vector (SD3 and FLUX take one)

    def to(self, device) -> "TextCondition":
        return TextCondition(self.states.to(device), self.mask.to(device), self.pooled.to(device))

    def half(self, which: int) -> "TextCondition":
        """Rows of the cond (0) or uncond (1) half of a [cond; uncond] batch."""
        n = len(self.states) // 2
        rows = slice(0, n) if which == 0 else slice(n, None)
        return TextCondition(self.states[rows], self.mask[rows], self.pooled[rows])


def vlm_encoder(vlm, template: str | None, length: int):
    """`prompts -> TextCondition` from a QwenVLUnderstanding's last hidden states."""
    encode = vlm.text_encoder(template, length)

    def condition(prompts: list[str]) -> TextCondition:
        states, mask = encode(prompts)
        pooled = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return TextCondition(states, mask, pooled)
    return condition


class PipelineText:
    """The text encoders and tokenizers of an SD3 or FLUX pipeline directory (no transformer, no VAE loaded)."""

    def __init__(self, pipe, length: int):
        self.pipe, self.length = pipe, length
        self.kind = type(pipe).__name__
        if self.kind not in PIPELINES:
            raise ValueError(f"{self.kind} text encoders are not wired; supported: {', '.join(PIPELINES)}")

    @classmethod
    def from_pretrained(cls, path: Path, pipeline_class: str, device, dtype, length: int) -> "PipelineText":
        import diffusers
        pipe = getattr(diffusers, pipeline_class).from_pretrained(path, transformer=None, vae=None, dtype=dtype)
        return cls(pipe.to(device), length)

    @torch.no_grad()
    def __call__(self, prompts: list[str]) -> TextCondition:
        device = self.pipe.text_encoder.device
        if self.kind == "FluxPipeline":
            states, pooled, _ = self.pipe.encode_prompt(prompts, prompt_2=None, device=device,
                                                        max_sequence_length=self.length)
        else:
            states, _, pooled, _ = self.pipe.encode_prompt(prompts, None, None, device=device,
                                                           do_classifier_free_guidance=False,
                                                           max_sequence_length=self.length)
        mask = torch.ones(states.shape[:2], dtype=torch.long, device=states.device)
        return TextCondition(states, mask, pooled)

    def save_pretrained(self, path: Path) -> None:
        """Text encoders, tokenizers and scheduler in the pipeline's layout (its model_index.json included)."""
        self.pipe.save_pretrained(path)
