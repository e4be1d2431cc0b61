"""MILR's reasoning phase on a Janus-layout model (MILR Eq. 1-6, Fig. 10): the model writes reasoning text after
the prompt, then the image after its reasoning, in one sequence. MILR's text latents are the last-layer states
(the LM head's inputs) of the first reasoning tokens: each is moved by an offset, decoded to its token, and the
rest of the reasoning is written on from those tokens; its image latents are the first image tokens' states
(`LatentShift.image`, as in `JanusAdapter.sample`).

A format serves this when it has a `reason` template (Janus-Pro's: janus_formats.py); the toy model has none.
Reasoning is greedy (the paper decodes the optimised latents to tokens); it stops at EOS, at the begin-of-image
token, or after `max_new_tokens`.
"""

from __future__ import annotations

from functools import cached_property

import torch

from models.adapter import ImageSamples, LatentShift


class ReasoningPhase:
    """Mixed into JanusAdapter (uses its tokenizer, templates, `_lm`, `_pad`, `_sample_codes`, `_guided_logprobs`)."""

    @cached_property
    def boi_id(self) -> int:
        """The begin-of-image token: the generation template's last token."""
        return self.tok(self._fill("generate", prompt="x"), add_special_tokens=False).input_ids[-1]

    def reasoning_prefix(self, prompts: list[str]) -> list[list[int]]:
        return [self.tok(self._fill("reason", prompt=p), add_special_tokens=False).input_ids for p in prompts]

    @torch.no_grad()
    def reason(self, prompts: list[str], max_new_tokens: int,
               text_shift: torch.Tensor | None = None) -> list[list[int]]:
        """Greedy reasoning tokens per prompt. `text_shift` (B, n, D) is added to the last-layer state before the LM
        head at reasoning positions 0..n-1 (MILR's text latents, decoded to tokens); later tokens follow from them."""
        ids, mask = self._pad(self.reasoning_prefix(prompts), left=True)
        out = self._lm(self.model.get_input_embeddings()(ids), mask, past=_new_cache())
        stop, rows = {self.tok.eos_token_id, self.boi_id}, [[] for _ in prompts]
        done = [False] * len(prompts)
        for t in range(max_new_tokens):
            hidden = out.last_hidden_state[:, -1]
            if text_shift is not None and t < text_shift.shape[1]:
                hidden = hidden + text_shift[:, t].to(hidden.dtype)
            nxt = self.model.lm_head(hidden).float().argmax(-1)
            for i, token in enumerate(nxt.tolist()):
                done[i] = done[i] or token in stop
                if not done[i]:
                    rows[i].append(token)
            if all(done):
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            out = self._lm(self.model.get_input_embeddings()(nxt[:, None]), mask, past=out.past_key_values)
        return rows

    def reasoned_prompts(self, prompts: list[str], reasoning: list[list[int]]):
        """(cond ids, uncond ids, mask), left-padded: prompt, its reasoning, BOI; uncond keeps BOS and BOI only."""
        rows = [p + r + [self.boi_id] for p, r in zip(self.reasoning_prefix(prompts), reasoning)]
        ids, mask = self._pad(rows, left=True)
        uncond, first = ids.clone(), mask.argmax(1)
        for i in range(len(rows)):
            uncond[i, first[i] + 1: -1] = self.pad_id
        return ids, uncond, mask

    @torch.no_grad()
    def sample_reasoned(self, prompts: list[str], reasoning: list[list[int]], guidance: float, temperature: float,
                        generator: torch.Generator | None = None,
                        image_shift: torch.Tensor | None = None) -> ImageSamples:
        """One image per row after its prompt and reasoning; `image_shift` (B, n_v, D) moves the image latents."""
        ids, uncond, mask = self.reasoned_prompts(prompts, reasoning)
        embeds = self.model.get_input_embeddings()(torch.cat([ids, uncond]))
        return self._sample_codes(embeds, torch.cat([mask, mask]), guidance, temperature, generator, image_shift)

    def reasoned_image_logprobs(self, prompts: list[str], reasoning: list[list[int]], image_tokens: torch.Tensor,
                                guidance: float, temperature: float, image_shift: torch.Tensor | None = None):
        """(B, T) teacher-forced guided log-probs of the image tokens after each row's reasoning (with grad)."""
        ids, uncond, mask = self.reasoned_prompts(prompts, reasoning)
        return self._guided_logprobs(ids, uncond, mask, image_tokens, guidance, temperature,
                                     LatentShift(None, image_shift))

    def reasoning_logprobs(self, prompts: list[str], reasoning: list[list[int]], text_shift: torch.Tensor):
        """(B,) sum over the first n = text_shift.shape[1] reasoning tokens (fewer where a row has fewer) of
        log softmax(head(h_i + shift_i))[x_i]: the log-probability of the decoded tokens given the moved latents."""
        prefixes = self.reasoning_prefix(prompts)
        ids, mask = self._pad([p + r for p, r in zip(prefixes, reasoning)], left=False)
        hidden = self._lm(self.model.get_input_embeddings()(ids), mask).last_hidden_state
        n = text_shift.shape[1]
        start = torch.tensor([len(p) - 1 for p in prefixes], device=ids.device)  # the state predicting token 0
        at = (start[:, None] + torch.arange(n, device=ids.device)).clamp(max=ids.shape[1] - 2)
        rows = torch.arange(len(prompts), device=ids.device)[:, None]
        logits = self.model.lm_head(hidden[rows, at] + text_shift.to(hidden.dtype)).float()
        lp = torch.log_softmax(logits, -1).gather(-1, ids[rows, at + 1][..., None])[..., 0]
        valid = torch.arange(n, device=ids.device)[None] < torch.tensor([len(r) for r in reasoning],
                                                                          device=ids.device)[:, None]
        return (lp * valid).sum(1)


def _new_cache():
    from transformers import DynamicCache
    return DynamicCache()
