"""Janus adapter: one protocol over transformers' JanusForConditionalGeneration (toy model and Janus-Pro).

Everything here is tensors in, tensors out. Prompt formats come from `templates` (stored with the checkpoint),
so the same code serves the toy model's tags and a real model's chat template.
CFG: the unconditional row replaces the prompt words by <pad> and keeps BOS and BOI (Janus's own format);
guided logits = uncond + g * (cond - uncond), then / temperature. Sampling and teacher-forced log-probs use
that same distribution, so importance ratios are exact.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from transformers import AutoConfig, AutoTokenizer, JanusForConditionalGeneration

from models.adapter import (Capabilities, GeneratorAdapter, ImageSamples, LatentShift, answer_token_ids,
                            first_difference, resolve_device, resolve_dtype, to_uint8)
from models.janus_formats import ADAPTER_FILE, load_format
from models.janus_reasoning import ReasoningPhase


# The image-generation path of a Janus model: what test-time RL of the generator trains.
GENERATOR_PREFIXES = ("model.language_model.", "model.generation_", "lm_head.")


def to_pixels(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> (N, 3, H, W) in [-1, 1] (Janus's normalisation: mean 0.5, std 0.5)."""
    return torch.from_numpy(np.array(images, dtype=np.uint8)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def check_janus_dir(path: Path) -> None:
    """A clear error for a path that is not a Janus-layout Hugging Face directory."""
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no model at {path}: expected a Hugging Face directory with config.json")
    try:
        kind = AutoConfig.from_pretrained(path).model_type
    except (ValueError, OSError) as e:
        raise ValueError(f"{path}/config.json is not a readable model config: {e}") from None
    if kind != "janus":
        raise ValueError(f"{path} holds a {kind!r} model; the janus adapter loads model_type 'janus' "
                         f"(Janus-Pro converted to transformers, or the toy UMM)")
    if not any((path / f).is_file() for f in ("model.safetensors", "model.safetensors.index.json")):
        raise FileNotFoundError(f"{path} has no safetensors weights (model.safetensors or its index); "
                                f"pickled .bin weights are not loaded")
    from safetensors import safe_open
    for file in sorted(path.glob("*.safetensors")):
        try:  # reads the header only: a truncated or foreign file fails here, not in every actor
            with safe_open(file, "pt") as f:
                f.keys()
        except Exception as e:
            raise ValueError(f"{file} is not a readable safetensors file ({e})") from None


class JanusAdapter(ReasoningPhase, GeneratorAdapter):
    capabilities = Capabilities(understanding=True, prompt_likelihood=True, image_tokens=True, latent_search=True,
                                reward_maps=True)

    def __init__(self, model: JanusForConditionalGeneration, tokenizer, templates: dict[str, str],
                 image_joiner: str = " ", rubric_dialect: str = "toy"):
        self.model, self.tok, self.templates, self.image_joiner = model, tokenizer, templates, image_joiner
        self.rubric_dialect = rubric_dialect  # how it is asked for rubrics and how they are read (rewards/dialects.py)
        self.capabilities = dataclasses.replace(type(self).capabilities, reasoning="reason" in templates,
                                                describes="ask" in templates)
        cfg = model.config
        self.n_image_tokens = (cfg.vision_config.image_size // cfg.vision_config.patch_size) ** 2
        self.image_token = tokenizer.convert_ids_to_tokens(cfg.image_token_id)
        self.pad_id = tokenizer.pad_token_id
        self.yes_ids, self.no_ids = answer_token_ids(tokenizer, "yes"), answer_token_ids(tokenizer, "no")
        # tokens of the generation template before the prompt's words (where MILR's text latents start)
        self.prompt_offset = first_difference(*(tokenizer(templates["generate"].format(prompt=w),
                                                           add_special_tokens=False).input_ids for w in ("x", "y")))

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "auto", dtype: str | torch.dtype = "auto") -> "JanusAdapter":
        """A local Hugging Face directory (never the hub); prompt formats from its meta_ttrl.json, else
        Janus-Pro's chat format. auto: GPU and bfloat16 where this process has a GPU, else CPU and float32.
        device="meta": structure, tokenizer and formats without reading the weights (a driver's checks)."""
        path = Path(path)
        check_janus_dir(path)
        device = resolve_device(device)
        tokenizer = AutoTokenizer.from_pretrained(path)
        fmt = load_format(path, tokenizer)
        if device.type == "meta":
            with torch.device("meta"):
                model = JanusForConditionalGeneration(AutoConfig.from_pretrained(path)).eval()
            return cls(model, tokenizer, **fmt)
        # safetensors only: pickled .bin weights from an untrusted path could run code when loaded
        model = JanusForConditionalGeneration.from_pretrained(path, dtype=resolve_dtype(dtype, device),
                                                              use_safetensors=True).to(device).eval()
        return cls(model, tokenizer, **fmt)

    def save_full(self, path: str | Path) -> None:
        self.model.save_pretrained(path)
        self.tok.save_pretrained(path)
        fmt = {"templates": self.templates, "image_joiner": self.image_joiner, "rubric_dialect": self.rubric_dialect}
        (Path(path) / ADAPTER_FILE).write_text(json.dumps(fmt, indent=1))

    @property
    def device(self):
        return self.model.device

    # ---- training protocol (shared with the diffusion adapter) ----------------------------------------
    @property
    def module(self) -> torch.nn.Module:
        """The module a DeepSpeed engine wraps."""
        return self.model

    def trainable_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        """The generator's parameters (their LoRA adapters with model.lora): what GRPO trains and the sync sends."""
        named = self.model.named_parameters()
        return self.lora_filtered((n, p) for n, p in named if n.startswith(GENERATOR_PREFIXES))

    def module_holder(self) -> str:
        return "model"

    # LoRA (model.lora) on the language model's attention and MLP projections, not the vision encoder's
    lora_targets = r"model\.language_model\..*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"

    def freeze(self) -> None:
        self.model.requires_grad_(False)

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)

    # ---- text helpers -------------------------------------------------------------------------------
    def _fill(self, name: str, **kw) -> str:
        kw.setdefault("image", self.image_joiner.join([self.image_token] * self.n_image_tokens))
        return self.templates[name].format(**kw)

    def _batch(self, texts: list[str], left: bool) -> tuple[torch.Tensor, torch.Tensor]:
        return self._pad([self.tok(t, add_special_tokens=False).input_ids for t in texts], left)

    def positions_needed(self, prompt: str, instruction: str, max_new_tokens: int) -> int:
        """Sequence positions the longest use of `prompt` takes: generating its image, writing its rubric, or
        asking the fallback rubric question (which quotes it) about an image."""
        def length(text: str) -> int:
            return len(self.tok(text, add_special_tokens=False).input_ids)
        return max(length(self._fill("generate", prompt=prompt)) + self.n_image_tokens,
                   length(self._fill("write", instruction=instruction, prompt=prompt)) + max_new_tokens,
                   length(self._fill("answer", question=f"does the image show : {prompt} ?")))

    @property
    def token_grid(self) -> tuple[int, int]:
        """(rows, columns) of the image tokens, in raster order."""
        side = int(round(self.n_image_tokens ** 0.5))
        return side, side

    @property
    def max_positions(self) -> int:
        return self.model.config.text_config.max_position_embeddings

    @property
    def latent_width(self) -> int:
        """Width of the last-layer latents MILR moves."""
        return self.model.config.text_config.hidden_size

    @property
    def image_size(self) -> int:
        """Side in pixels of the images the vision tower reads."""
        return self.model.config.vision_config.image_size

    def generation_prompts(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Left-padded (cond ids, uncond ids, mask); uncond keeps the first and last token (BOS, BOI)."""
        ids, mask = self._batch([self._fill("generate", prompt=p) for p in prompts], left=True)
        uncond = ids.clone()
        first = mask.argmax(1)
        for i in range(len(prompts)):
            uncond[i, first[i] + 1: -1] = self.pad_id
        return ids, uncond, mask

    # ---- generation ---------------------------------------------------------------------------------
    def _lm(self, embeds, mask, past=None, attend=None, positions=None):
        """Language model over embeddings; positions follow `mask` (padding) unless given, attention follows
        `attend` (a 2D or a custom 4D mask; default: `mask`)."""
        pos = (mask.cumsum(1) - 1).clamp(min=0)[:, -embeds.shape[1]:] if positions is None else positions
        return self.model.model.language_model(inputs_embeds=embeds, attention_mask=mask if attend is None else attend,
                                               position_ids=pos, past_key_values=past,
                                               use_cache=past is not None or None)

    def prompt_lengths(self, prompts: list[str]) -> list[int]:
        """Tokens of each prompt's words in the generation template (MILR's text positions)."""
        return [len(self.tok(p, add_special_tokens=False).input_ids) for p in prompts]

    def _embed_prompts(self, ids: torch.Tensor, mask: torch.Tensor, text_shift: torch.Tensor | None) -> torch.Tensor:
        """Input embeddings; the first rows (as many as `text_shift` has) get it added at their first prompt
        tokens (right after the template's prefix in the left-padded row, never on the last token, BOI)."""
        embeds = self.model.get_input_embeddings()(ids)
        if text_shift is None:
            return embeds
        rows, n = text_shift.shape[:2]
        pos = mask[:rows].argmax(1, keepdim=True) + self.prompt_offset + torch.arange(n, device=ids.device)
        fits = pos < ids.shape[1] - 1
        r = torch.arange(rows, device=ids.device)[:, None].expand(rows, n)
        offsets = torch.zeros_like(embeds).index_put((r[fits], pos[fits]), text_shift[fits].to(embeds.dtype))
        return embeds + offsets

    @staticmethod
    def _shift_image(hidden: torch.Tensor, image_shift: torch.Tensor | None) -> torch.Tensor:
        """hidden (B2, T', D) states predicting image tokens 0..T'-1; the first rows get `image_shift` (B, n_v, D)
        added at the first n_v of them."""
        if image_shift is None:
            return hidden
        rows, n = image_shift.shape[:2]
        pad = torch.zeros(hidden.shape[0] - rows, n, hidden.shape[2], dtype=hidden.dtype, device=hidden.device)
        shift = torch.cat([image_shift.to(hidden.dtype), pad])[:, : hidden.shape[1]]
        return torch.cat([hidden[:, : shift.shape[1]] + shift, hidden[:, shift.shape[1]:]], 1)

    def image_logits(self, ids: torch.Tensor, mask: torch.Tensor, image_tokens: torch.Tensor,
                     shift: LatentShift | None = None) -> torch.Tensor:
        """Teacher-forced logits over image codes for every image position: (B, T, K); `shift` applies to the
        first rows (MILR)."""
        shift = shift or LatentShift()
        text = self._embed_prompts(ids, mask, shift.text)
        img = self.model.prepare_embeddings_for_image_generation(image_tokens[:, :-1])
        full_mask = torch.cat([mask, torch.ones_like(image_tokens[:, :-1])], 1)
        hidden = self._lm(torch.cat([text, img], 1), full_mask).last_hidden_state
        return self.model.model.generation_head(self._shift_image(hidden[:, ids.shape[1] - 1:], shift.image))

    @staticmethod
    def guide(cond: torch.Tensor, uncond: torch.Tensor, guidance: float, temperature: float) -> torch.Tensor:
        cond, uncond = cond.float(), uncond.float()  # bf16 logits would round the log-probs of the ratio
        return torch.log_softmax((uncond + guidance * (cond - uncond)) / temperature, dim=-1)

    def image_logprobs(self, prompts: list[str], image_tokens: torch.Tensor, guidance: float,
                       temperature: float, shift: LatentShift | None = None) -> torch.Tensor:
        """Teacher-forced per-token log-probs under the guided distribution that sampled them (with grad, also
        with respect to a MILR `shift` of the conditional rows)."""
        ids, uncond, mask = self.generation_prompts(prompts)
        return self._guided_logprobs(ids, uncond, mask, image_tokens, guidance, temperature, shift)

    def _guided_logprobs(self, ids, uncond, mask, image_tokens, guidance, temperature, shift) -> torch.Tensor:
        image_tokens = image_tokens.to(self.device)
        both = self.image_logits(torch.cat([ids, uncond]), torch.cat([mask, mask]), image_tokens.repeat(2, 1),
                                 shift)
        cond_l, uncond_l = both.chunk(2)
        lp = self.guide(cond_l, uncond_l, guidance, temperature)
        return lp.gather(-1, image_tokens.unsqueeze(-1)).squeeze(-1)

    @torch.no_grad()
    def sample(self, prompts: list[str], n: int = 1, guidance: float = 3.0, temperature: float = 1.0,
               generator: torch.Generator | None = None, shift: LatentShift | None = None) -> ImageSamples:
        """n images per prompt (rows grouped by prompt) with a KV cache and per-token guided log-probs; `shift`
        (one row per sampled image) moves MILR's latents."""
        prompts = [p for p in prompts for _ in range(n)]
        ids, uncond, mask = self.generation_prompts(prompts)
        shift = shift or LatentShift()
        mask2 = torch.cat([mask, mask])
        embeds = self._embed_prompts(torch.cat([ids, uncond]), mask2, shift.text)
        return self._sample_codes(embeds, mask2, guidance, temperature, generator, shift.image)

    @torch.no_grad()
    def _sample_codes(self, embeds: torch.Tensor, mask2: torch.Tensor, guidance: float, temperature: float,
                      generator: torch.Generator | None, image_shift: torch.Tensor | None) -> ImageSamples:
        """The image-token loop after the (conditional; unconditional) context `embeds` (2B rows, left-padded)."""
        out = self._lm(embeds, mask2, past=_new_cache())
        b = len(embeds) // 2
        hidden, cache = out.last_hidden_state[:, -1], out.past_key_values
        tokens = torch.empty(b, self.n_image_tokens, dtype=torch.long, device=self.device)
        logprobs = torch.empty(b, self.n_image_tokens, device=self.device)
        for t in range(self.n_image_tokens):
            if image_shift is not None and t < image_shift.shape[1]:
                hidden = self._shift_image(hidden[:, None], image_shift[:, t: t + 1])[:, 0]
            logits = self.model.model.generation_head(hidden)
            lp = self.guide(logits[:b], logits[b:], guidance, temperature)
            tok = torch.multinomial(lp.exp(), 1, generator=generator).squeeze(1)
            tokens[:, t], logprobs[:, t] = tok, lp.gather(1, tok[:, None]).squeeze(1)
            emb = self.model.prepare_embeddings_for_image_generation(tok.repeat(2))[:, None]
            mask2 = torch.cat([mask2, torch.ones_like(mask2[:, :1])], 1)
            out = self._lm(emb, mask2, past=cache)
            hidden, cache = out.last_hidden_state[:, -1], out.past_key_values
        return ImageSamples(tokens, logprobs, self.decode(tokens))

    @torch.no_grad()
    def decode(self, image_tokens: torch.Tensor) -> np.ndarray:
        """Image codes -> uint8 images. On a CPU in chunks of 8 images, whose activations stay in cache: the
        toy's 64 images decode in 0.60 s instead of 1.13 s at once (one thread; pixels equal to 1e-5)."""
        chunk = len(image_tokens) if self.device.type != "cpu" else 8
        return np.concatenate([to_uint8(self.model.decode_image_tokens(image_tokens[s: s + chunk]))
                               for s in range(0, len(image_tokens), chunk)])

    @torch.no_grad()
    def reconstruct(self, images: np.ndarray) -> np.ndarray:
        """VQ round trip: uint8 images -> image tokens -> uint8 images."""
        pixels = to_pixels(images).to(self.device, self.model.dtype)
        codes = self.model.model.vqmodel.encode(pixels).image_tokens
        return self.decode(codes.view(len(images), -1))

    # ---- understanding ------------------------------------------------------------------------------
    def image_features(self, images: np.ndarray) -> torch.Tensor:
        """Vision features once per image: (N, n_image_tokens, hidden)."""
        pixels = to_pixels(images).to(self.device, self.model.dtype)
        size = self.model.config.vision_config.image_size
        if pixels.shape[-2:] != (size, size):  # e.g. a VQ decoder whose output differs from the encoder's input
            pixels = torch.nn.functional.interpolate(pixels, size=(size, size), mode="bicubic", align_corners=False)
        return self.model.model.get_image_features(pixels).pooler_output

    def _understanding_hidden(self, rows: list[list[int]], features: torch.Tensor):
        """Last-layer states of token rows (right-padded) whose image slots hold `features`."""
        ids, mask = self._pad(rows, left=False)
        embeds = self.model.get_input_embeddings()(ids)
        slots = (ids == self.model.config.image_token_id).unsqueeze(-1)
        embeds = embeds.masked_scatter(slots, features.to(embeds.dtype))
        return self._lm(embeds, mask).last_hidden_state, ids, mask

    def answer_probs(self, images: np.ndarray, questions: list[str], image_index: list[int] | None = None,
                     features: torch.Tensor | None = None) -> torch.Tensor:
        """(Q, 2) probabilities of [yes, no] (full-vocabulary, summed over token variants) as the next token
        after each question about image `image_index[q]`. Each image is encoded once, and where the template puts the
        image before the question (the toy's and Janus-Pro's) the image's prefix runs through the language model
        once and every question continues its cached keys and values (`_answers_after_prefix`)."""
        feats = self.image_features(images) if features is None else features
        index = list(range(len(questions))) if image_index is None else image_index
        rows = [self.tok(self._fill("answer", question=q), add_special_tokens=False).input_ids for q in questions]
        shared = self._image_prefix(rows)
        if shared:
            last = self._answers_after_prefix(rows, shared, feats, index)
        else:
            hidden, _, mask = self._understanding_hidden(rows, feats[index])
            last = hidden[torch.arange(len(rows)), mask.sum(1) - 1]
        probs = torch.softmax(self.model.lm_head(last).float(), -1)
        return torch.stack([probs[:, self.yes_ids].sum(-1), probs[:, self.no_ids].sum(-1)], -1)

    def _image_prefix(self, rows: list[list[int]]) -> int:
        """Tokens every row shares when they hold all of the image's tokens and each row has more after them (the
        question); 0 when the template does not allow sharing."""
        probe = self.tok(self._fill("answer", question="x y"), add_special_tokens=False).input_ids
        n = first_difference(rows[0], probe) if rows[0] != probe else len(probe)
        prefix = rows[0][:n]
        if prefix.count(self.model.config.image_token_id) != self.n_image_tokens:
            return 0
        return n if all(len(r) > n and r[:n] == prefix for r in rows) else 0

    def _answers_after_prefix(self, rows: list[list[int]], n: int, feats: torch.Tensor, index: list[int],
                              kv_budget: int = 1 << 30) -> torch.Tensor:
        """Last hidden state of each row: the shared n-token prefix (with its image's features) runs once per image,
        each row's own tokens run on a copy of that image's cache. Rows go in chunks whose copied caches stay under
        `kv_budget` bytes (a 7B model's 576-token prefix is ~0.3 GB a row). Equal to the full forward up to float
        rounding (tests/test_janus_adapter.py)."""
        text = self.model.config.text_config
        head = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        row_bytes = 2 * text.num_hidden_layers * text.num_key_value_heads * head * n * feats.element_size()
        chunk = max(1, kv_budget // row_bytes)
        prefix = torch.tensor(rows[0][:n], device=self.device)
        slots = prefix == self.model.config.image_token_id
        out = []
        for s in range(0, len(rows), chunk):
            used, inverse = torch.unique(torch.tensor(index[s: s + chunk]), return_inverse=True)
            embeds = self.model.get_input_embeddings()(prefix)[None].repeat(len(used), 1, 1)
            embeds[:, slots] = feats[used.to(feats.device)].to(embeds.dtype)
            ones = torch.ones(len(used), n, dtype=torch.long, device=self.device)
            cache = self._lm(embeds, ones, past=_new_cache()).past_key_values
            inverse = inverse.to(self.device)
            rows_cache = _new_cache([(layer.keys[inverse], layer.values[inverse]) for layer in cache.layers])
            ids, mask = self._pad([r[n:] for r in rows[s: s + chunk]], left=False)
            full = torch.cat([torch.ones(len(ids), n, dtype=mask.dtype, device=self.device), mask], 1)
            hidden = self._lm(self.model.get_input_embeddings()(ids), full, past=rows_cache).last_hidden_state
            out.append(hidden[torch.arange(len(ids)), mask.sum(1) - 1])
        return torch.cat(out)

    def prompt_logprobs(self, images: np.ndarray, prompts: list[str]) -> list[torch.Tensor]:
        """Per-token log p(prompt | image, caption instruction), teacher-forced (GvU's reward inputs)."""
        prefix = self._fill("caption")
        n_prefix = len(self.tok(prefix, add_special_tokens=False).input_ids)
        rows = [self.tok(f"{prefix} {p}", add_special_tokens=False).input_ids for p in prompts]
        hidden, ids, mask = self._understanding_hidden(rows, self.image_features(images))
        lp = torch.log_softmax(self.model.lm_head(hidden[:, :-1]).float(), -1).gather(-1, ids[:, 1:, None])[..., 0]
        return [lp[i, n_prefix - 1: int(mask[i].sum()) - 1] for i in range(len(prompts))]

    @torch.no_grad()
    def write(self, prompts: list[str], instruction: str, max_new_tokens: int = 96, temperature: float = 0.0,
              generator: torch.Generator | None = None) -> list[str]:
        """Text continuation of the `write` template (e.g. rubric writing), stopping at EOS: greedy, or sampled
        at `temperature` > 0."""
        ids, mask = self._batch([self._fill("write", instruction=instruction, prompt=p) for p in prompts], left=True)
        return self._continue(self.model.get_input_embeddings()(ids), mask, max_new_tokens, temperature, generator)

    @torch.no_grad()
    def ask(self, images: np.ndarray, questions: list[str], image_index: list[int] | None = None,
            max_new_tokens: int = 64) -> list[str]:
        """Greedy text answers to free-form questions about images (the `ask` template; SRUM's scoring prompts):
        question q is about image `image_index[q]`."""
        index = list(range(len(questions))) if image_index is None else list(image_index)
        features = self.image_features(images)[index]
        ids, mask = self._batch([self._fill("ask", question=q) for q in questions], left=True)
        embeds = self.model.get_input_embeddings()(ids)
        slots = (ids == self.model.config.image_token_id).unsqueeze(-1)
        embeds = embeds.masked_scatter(slots, features.to(embeds.dtype))
        return self._continue(embeds, mask, max_new_tokens, 0.0, None)

    def _continue(self, embeds, mask, max_new_tokens: int, temperature: float, generator) -> list[str]:
        """Decoded continuation of left-padded rows, each stopping at EOS (greedy, or sampled at `temperature`)."""
        out = self._lm(embeds, mask, past=_new_cache())
        done = torch.zeros(len(embeds), dtype=torch.bool, device=self.device)
        result = []
        for _ in range(max_new_tokens):
            logits = self.model.lm_head(out.last_hidden_state[:, -1]).float()
            if temperature > 0:
                probs = torch.softmax(logits / temperature, -1)
                nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1).to(self.device)
            else:
                nxt = logits.argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, self.tok.eos_token_id), nxt)
            result.append(nxt)
            done |= nxt == self.tok.eos_token_id
            if done.all():
                break
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
            out = self._lm(self.model.get_input_embeddings()(nxt[:, None]), mask, past=out.past_key_values)
        eos, texts = self.tok.eos_token_id, []
        for row in torch.stack(result, 1).tolist():
            texts.append(self.tok.decode(row[: row.index(eos)] if eos in row else row, skip_special_tokens=True))
        return texts


def _new_cache(layers: list[tuple[torch.Tensor, torch.Tensor]] | None = None):
    """An empty KV cache, or one holding these (keys, values) per layer."""
    from transformers import DynamicCache
    return DynamicCache(layers) if layers else DynamicCache()
