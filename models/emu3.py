"""Emu3 adapter: transformers' Emu3ForConditionalGeneration (a unified autoregressive model whose image tokens are
words of its own vocabulary) behind the adapter protocol of models/adapter.py.

An image is `<|image start|>{h}*{w}<|image token|>`, then h rows of w visual tokens each closed by the end-of-line
token `<|extra_200|>`, then `<|extra_201|><|image end|>` (Emu3's processor's layout). Generation continues the
prompt's header: each visual token is sampled from the guided distribution over the visual vocabulary only (the
other logits masked), the end-of-line token is placed after each row, not sampled; CFG against the header alone
(the empty prompt): guided = uncond + g (cond - uncond), then / temperature. Sampling and teacher forcing use that
same distribution, so importance ratios are exact. Understanding reads the image as its token rows (its VQ model
encodes the pixels) and answers in text; rubric writing and prompt likelihood (GvU) use the same language model.
Text generation (rubrics, free answers) goes through transformers' `generate`.

BAAI publishes Emu3 as two checkpoints of this one architecture: Emu3-Gen (image generation: the policy) and
Emu3-Chat (understanding): judge the Gen model with the Chat one through `reward.model_path`, or let it judge
itself (weaker). `meta_ttrl.json` beside the weights holds the image size generated (default 512 px) and templates.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from models.adapter import Capabilities, GeneratorAdapter, ImageSamples, answer_token_ids, resolve_device, \
    resolve_dtype, to_uint8

BOI, EOI, WRAP, EOL, EOF = "<|image start|>", "<|image end|>", "<|image token|>", "<|extra_200|>", "<|extra_201|>"
ADAPTER_FILE = "meta_ttrl.json"
TEMPLATES = {"generate": "{prompt}", "answer": "USER: {image} {question} Answer yes or no. ASSISTANT:",
             "caption": "USER: {image} Describe the image. ASSISTANT:",
             "write": "USER: {instruction}\n{prompt} ASSISTANT:", "ask": "USER: {image} {question} ASSISTANT:"}
TRAINED_PREFIXES = ("model.text_model.", "lm_head.")  # the VQ model stays frozen (Emu3 trains its LM only)


class Emu3DirectoryError(ValueError):
    pass


def check_emu3_dir(path: Path, config) -> None:
    """One-line errors for an Emu3 directory that cannot generate images."""
    vocab = config.vocabulary_map or {}
    if not any(k.startswith("<|visual token") for k in vocab):
        raise Emu3DirectoryError(f"{path}: its config's vocabulary_map has no visual tokens: without the image "
                                 f"tokenizer's vocabulary it cannot read or write images")
    if EOL not in vocab:
        raise Emu3DirectoryError(f"{path}: its vocabulary_map lacks the end-of-line token {EOL}")
    if not any(k.startswith(("vqmodel.", "model.vqmodel.")) for k in _weight_names(path)):
        raise Emu3DirectoryError(f"{path} has no image tokenizer weights (vqmodel.*): an Emu3 checkpoint "
                                 f"needs its VQ model to encode and decode images")


def _weight_names(path: Path) -> list[str]:
    from safetensors import safe_open
    names = []
    for file in sorted(Path(path).glob("*.safetensors")):
        with safe_open(file, "pt") as f:
            names += list(f.keys())
    return names


class Emu3Adapter(GeneratorAdapter):
    capabilities = Capabilities(understanding=True, prompt_likelihood=True, image_tokens=True, latent_search=False,
                                reward_maps=True, describes=True)
    rubric_dialect = "chat"

    def __init__(self, model, tokenizer, image_size: int = 64, templates: dict | None = None):
        self.model, self.tok, self.templates = model, tokenizer, templates or TEMPLATES
        self.image_size = image_size
        self.factor = model.model.vqmodel.vision_spatial_factor
        self.rows = self.cols = image_size // self.factor
        self.n_image_tokens = self.rows * self.cols
        mapping = model.model.vocabulary_mapping
        self.visual = torch.tensor(mapping.image_tokens)  # BPE ids of the visual tokens, in code order
        self.code_of = mapping.bpe2img_mapping_tensor
        self.eol, self.eof = mapping.eol_token_id, tokenizer.convert_tokens_to_ids(EOF)
        self.pad_id = tokenizer.pad_token_id
        self.yes_ids, self.no_ids = answer_token_ids(tokenizer, "yes"), answer_token_ids(tokenizer, "no")

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "auto",
                        dtype: str | torch.dtype = "auto") -> "Emu3Adapter":
        from transformers import AutoConfig, AutoTokenizer, Emu3ForConditionalGeneration
        path = Path(path)
        config = AutoConfig.from_pretrained(path)
        check_emu3_dir(path, config)
        meta = json.loads((path / ADAPTER_FILE).read_text()) if (path / ADAPTER_FILE).is_file() else {}
        device = resolve_device(device)
        model = Emu3ForConditionalGeneration.from_pretrained(path, dtype=resolve_dtype(dtype, device),
                                                             use_safetensors=True).to(device).eval()
        return cls(model, AutoTokenizer.from_pretrained(path), meta.get("image_size", 512), meta.get("templates"))

    def save_full(self, path) -> None:
        self.model.save_pretrained(path)
        self.tok.save_pretrained(path)
        meta = {"backend": "emu3", "image_size": self.image_size, "templates": self.templates}
        (Path(path) / ADAPTER_FILE).write_text(json.dumps(meta, indent=1))

    # ---- training protocol -------------------------------------------------------------------------
    @property
    def device(self):
        return self.model.device

    @property
    def module(self):
        return self.model

    def module_holder(self) -> str:
        return "model"

    lora_targets = r"model\.text_model\..*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"

    def trainable_parameters(self):
        named = self.model.named_parameters()
        return self.lora_filtered((n, p) for n, p in named if n.startswith(TRAINED_PREFIXES))

    def freeze(self) -> None:
        self.model.requires_grad_(False)

    def train(self, mode: bool = True) -> None:
        self.model.train(mode)

    @property
    def token_grid(self) -> tuple[int, int]:
        return self.rows, self.cols

    @property
    def max_positions(self) -> int:
        return self.model.config.text_config.max_position_embeddings

    def positions_needed(self, prompt: str, instruction: str, max_new_tokens: int) -> int:
        length = lambda text: len(self.tok(text, add_special_tokens=False).input_ids)  # noqa: E731
        image = self.rows * (self.cols + 1) + 8
        return max(length(self.templates["generate"].format(prompt=prompt)) + image,
                   length(self.templates["write"].format(instruction=instruction, prompt=prompt)) + max_new_tokens,
                   length(self.templates["answer"].format(image="", question=f"Does it show {prompt}?")) + image)

    # ---- token rows ----------------------------------------------------------------------------------
    def _ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False).input_ids

    def header(self) -> list[int]:
        return self._ids(f"{BOI}{self.rows}*{self.cols}{WRAP}")

    def generation_rows(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded [cond rows; uncond rows]: each prompt then the image header, and the header alone."""
        cond = [self._ids(self.templates["generate"].format(prompt=p)) + self.header() for p in prompts]
        return self._pad(cond + [self.header()] * len(prompts), left=True)

    def with_eol(self, visual: torch.Tensor) -> torch.Tensor:
        """(N, rows x cols) visual BPE ids -> (N, rows x (cols + 1)) with the end-of-line token after each row."""
        grid = visual.view(len(visual), self.rows, self.cols)
        eol = torch.full((len(visual), self.rows, 1), self.eol, dtype=visual.dtype, device=visual.device)
        return torch.cat([grid, eol], 2).flatten(1)

    def _lm(self, ids_or_embeds, mask, past=None):
        pos = (mask.cumsum(1) - 1).clamp(min=0)[:, -ids_or_embeds.shape[1]:]
        return self.model.model.text_model(input_ids=ids_or_embeds, attention_mask=mask, position_ids=pos,
                                           past_key_values=past, use_cache=past is not None or None)

    def guide(self, hidden: torch.Tensor, b: int, guidance: float, temperature: float) -> torch.Tensor:
        """(B, V_visual) log-probs over the visual tokens of the guided distribution, from 2B last states."""
        logits = self.model.lm_head(hidden).float()[..., self.visual.to(hidden.device)]
        cond, uncond = logits[:b], logits[b:]
        return torch.log_softmax((uncond + guidance * (cond - uncond)) / temperature, dim=-1)

    # ---- generation ----------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, prompts: list[str], n: int = 1, guidance: float = 3.0, temperature: float = 1.0,
               generator: torch.Generator | None = None, shift=None) -> ImageSamples:
        """n images per prompt (rows grouped by prompt): `tokens` the visual BPE ids in raster order (rows x
        cols), `logprobs` their guided log-probs."""
        if shift is not None:
            raise ValueError("MILR's latent shift is defined for the Janus adapter only")
        from transformers import DynamicCache
        prompts = [p for p in prompts for _ in range(n)]
        b = len(prompts)
        ids, mask = self.generation_rows(prompts)
        out = self._lm(ids, mask, past=DynamicCache())
        tokens = torch.empty(b, self.n_image_tokens, dtype=torch.long, device=self.device)
        logprobs = torch.empty(b, self.n_image_tokens, device=self.device)
        for t in range(self.n_image_tokens):
            lp = self.guide(out.last_hidden_state[:, -1], b, guidance, temperature)
            k = torch.multinomial(lp.exp(), 1, generator=generator).squeeze(1)
            tokens[:, t], logprobs[:, t] = self.visual.to(k.device)[k], lp.gather(1, k[:, None]).squeeze(1)
            feed = tokens[:, t:t + 1].repeat(2, 1)
            if (t + 1) % self.cols == 0:  # the row is full: its end-of-line token follows, placed, not sampled
                feed = torch.cat([feed, torch.full_like(feed, self.eol)], 1)
            mask = torch.cat([mask, torch.ones_like(feed)], 1)
            out = self._lm(feed, mask, past=out.past_key_values)
        return ImageSamples(tokens, logprobs, self.decode(tokens))

    def image_logprobs(self, prompts: list[str], tokens: torch.Tensor, guidance: float, temperature: float,
                       shift=None) -> torch.Tensor:
        """Teacher-forced guided log-probs of sampled visual tokens (with grad): (N, rows x cols)."""
        if shift is not None:
            raise ValueError("MILR's latent shift is defined for the Janus adapter only")
        ids, mask = self.generation_rows(prompts)
        tokens = tokens.to(self.device)
        image = self.with_eol(tokens).repeat(2, 1)
        full = torch.cat([ids, image[:, :-1]], 1)  # the last end-of-line predicts nothing we score
        hidden = self._lm(full, torch.cat([mask, torch.ones_like(image[:, :-1])], 1)).last_hidden_state
        cells = torch.arange(self.n_image_tokens, device=self.device)
        at = ids.shape[1] - 1 + cells + cells // self.cols  # the state before each visual token
        lp = self.guide(hidden[:, at], len(prompts), guidance, temperature)
        index = torch.searchsorted(self.visual.to(self.device), tokens)
        return lp.gather(-1, index[..., None])[..., 0]

    @torch.no_grad()
    def decode(self, tokens: torch.Tensor) -> np.ndarray:
        codes = self.code_of.to(tokens.device)[tokens].view(len(tokens), self.rows, self.cols)
        return to_uint8(self.model.model.vqmodel.decode(codes).permute(0, 2, 3, 1))

    # ---- understanding -------------------------------------------------------------------------------
    def image_features(self, images: np.ndarray) -> list[list[int]]:
        """Each image as its token rows: the header, its visual tokens with end-of-lines, the trailer."""
        pixels = torch.from_numpy(np.array(images, dtype=np.uint8)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        size = self.image_size
        if pixels.shape[-2:] != (size, size):
            pixels = torch.nn.functional.interpolate(pixels, size=(size, size), mode="bicubic", align_corners=False)
        sizes = torch.tensor([[size, size]] * len(images))
        with torch.no_grad():
            bpe = self.model.model.get_image_tokens(pixels.to(self.device, self.model.dtype), sizes)
        rows = bpe.view(len(images), -1).tolist()
        return [self.header() + r + [self.eof] + self._ids(EOI) for r in rows]

    def _image_text_rows(self, template: str, images, questions, index, features) -> list[list[int]]:
        feats = self.image_features(images) if features is None else features
        index = list(range(len(questions))) if index is None else list(index)
        rows = []
        for q, i in zip(questions, index):
            before, after = self.templates[template].split("{image}")
            rows.append(self._ids(before) + feats[i] + self._ids(after.format(question=q)))
        return rows

    @torch.no_grad()
    def answer_probs(self, images, questions, image_index=None, features=None) -> torch.Tensor:
        """(Q, 2) full-vocabulary probabilities of [yes, no] as the next token after each question."""
        ids, mask = self._pad(self._image_text_rows("answer", images, questions, image_index, features), left=False)
        hidden = self._lm(ids, mask).last_hidden_state[torch.arange(len(ids)), mask.sum(1) - 1]
        probs = torch.softmax(self.model.lm_head(hidden).float(), -1)
        return torch.stack([probs[:, self.yes_ids].sum(-1), probs[:, self.no_ids].sum(-1)], -1)

    def prompt_logprobs(self, images: np.ndarray, prompts: list[str]) -> list[torch.Tensor]:
        """Per-token log p(prompt | image, caption instruction), teacher-forced (GvU)."""
        prefix = self._image_text_rows("caption", images, [""] * len(prompts), None, None)
        rows = [p + self._ids(" " + text) for p, text in zip(prefix, prompts)]
        ids, mask = self._pad(rows, left=False)
        hidden = self._lm(ids, mask).last_hidden_state
        lp = torch.log_softmax(self.model.lm_head(hidden[:, :-1]).float(), -1).gather(-1, ids[:, 1:, None])[..., 0]
        return [lp[i, len(prefix[i]) - 1: int(mask[i].sum()) - 1] for i in range(len(prompts))]

    def _generate(self, rows: list[list[int]], max_new_tokens: int, temperature: float, generator) -> list[str]:
        ids, mask = self._pad(rows, left=True)
        if generator is not None:  # generate() draws from the global RNG: seed it from ours, reproducibly
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device)))
        out = self.model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                  do_sample=temperature > 0, temperature=temperature if temperature > 0 else None,
                                  pad_token_id=self.pad_id)
        return self.tok.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)

    @torch.no_grad()
    def write(self, prompts, instruction, max_new_tokens=96, temperature=0.0, generator=None) -> list[str]:
        rows = [self._ids(self.templates["write"].format(instruction=instruction, prompt=p)) for p in prompts]
        return self._generate(rows, max_new_tokens, temperature, generator)

    @torch.no_grad()
    def ask(self, images, questions, image_index=None, max_new_tokens=64) -> list[str]:
        return self._generate(self._image_text_rows("ask", images, questions, image_index, None), max_new_tokens,
                              0.0, None)
