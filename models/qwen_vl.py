"""Understanding side for diffusion generators: transformers' Qwen2.5-VL (Qwen-Image's own VLM) behind the
understanding half of the adapter protocol: `answer_probs` (Eq. 5's Yes/No from the next-token distribution),
`write` (rubrics), `encode_text` (prompt states that condition the flow transformer, as Qwen-Image does).

Qwen2.5-VL traps handled here: an image is <|vision_start|> + (t h w / merge^2) x <|image_pad|> + <|vision_end|>,
and its 3D rotary positions need `mm_token_type_ids` (0 text, 1 image) next to `image_grid_thw`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from models.adapter import answer_token_ids, first_difference

CHAT = {
    "answer": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
              "<|vision_start|>{image}<|vision_end|>{question} Answer yes or no.<|im_end|>\n<|im_start|>assistant\n",
    "write": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
             "{instruction}\n{prompt}<|im_end|>\n<|im_start|>assistant\n",
    "ask": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
           "<|vision_start|>{image}<|vision_end|>{question}<|im_end|>\n<|im_start|>assistant\n",  # free answers
    "prompt": "<|im_start|>user\n{prompt}<|im_end|>\n",  # what encode_text reads (Qwen-Image style)
}
IMAGE_PAD = "<|image_pad|>"


def tokenizer_and_processor(path: Path):
    """The VLM's tokenizer and image processor: next to its weights, or (Qwen-Image's pipeline layout) in the
    sibling `tokenizer/` and `processor/` folders; without any processor config, Qwen2-VL's defaults."""
    from transformers import AutoTokenizer
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    tok_dir = path if (path / "tokenizer_config.json").is_file() else path.parent / "tokenizer"
    if not (tok_dir / "tokenizer_config.json").is_file():
        raise FileNotFoundError(f"no tokenizer for the VLM at {path}: expected tokenizer files there or in "
                                f"{path.parent / 'tokenizer'}")
    proc_dir = next((d for d in (path, path.parent / "processor") if (d / "preprocessor_config.json").is_file()), None)
    proc = Qwen2VLImageProcessorPil.from_pretrained(proc_dir) if proc_dir else Qwen2VLImageProcessorPil()
    return AutoTokenizer.from_pretrained(tok_dir), proc


class QwenVLUnderstanding:
    rubric_dialect = "chat"  # asked and read as a chat model (rewards/dialects.py)

    def __init__(self, model, tokenizer, image_processor, templates: dict | None = None):
        self.model, self.tok, self.proc, self.templates = model, tokenizer, image_processor, templates or CHAT
        self.merge = model.config.vision_config.spatial_merge_size
        self.yes_ids, self.no_ids = answer_token_ids(tokenizer, "yes"), answer_token_ids(tokenizer, "no")
        self.pad_token = self.tok.convert_tokens_to_ids(IMAGE_PAD)
        if self.pad_token != model.config.image_token_id:
            raise ValueError(f"the tokenizer's {IMAGE_PAD} is id {self.pad_token}, the model's image_token_id "
                             f"{model.config.image_token_id}: tokenizer and model do not belong together")

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", dtype=torch.float32) -> "QwenVLUnderstanding":
        from transformers import Qwen2_5_VLForConditionalGeneration
        model = Qwen2_5_VLForConditionalGeneration.from_pretrained(path, dtype=dtype, use_safetensors=True)
        return cls(model.to(device).eval(), *tokenizer_and_processor(Path(path)))

    @classmethod
    def shell(cls, path: str | Path) -> "QwenVLUnderstanding":
        """Config, tokenizer and processor without weights (a driver's checks)."""
        from transformers import AutoConfig, Qwen2_5_VLForConditionalGeneration
        with torch.device("meta"):
            model = Qwen2_5_VLForConditionalGeneration(AutoConfig.from_pretrained(path))
        return cls(model, *tokenizer_and_processor(Path(path)))

    def save_pretrained(self, path: str | Path) -> None:
        for part in (self.model, self.tok, self.proc):
            part.save_pretrained(path)

    @property
    def device(self):
        return self.model.device

    @property
    def max_positions(self) -> int:
        return self.model.config.text_config.max_position_embeddings

    def positions_needed(self, prompt: str, instruction: str, max_new_tokens: int) -> int:
        """The longest use of a prompt: writing its rubric, or (with ~1k image tokens at most) asking about it."""
        def length(text):
            return len(self.tok(text, add_special_tokens=False).input_ids)
        return length(self.templates["write"].format(instruction=instruction, prompt=prompt)) + max_new_tokens

    def image_features(self, images: np.ndarray) -> dict:
        """Each image's patches and grid, once (the vision tower runs per question: Qwen2.5-VL's rotary
        positions are computed from the token layout of each sequence)."""
        from PIL import Image
        out = self.proc([Image.fromarray(np.asarray(im, np.uint8)) for im in images], return_tensors="pt")
        grid = out["image_grid_thw"]
        sizes = grid.prod(-1).tolist()
        starts = np.cumsum([0] + sizes)
        patches = [out["pixel_values"][starts[i]: starts[i + 1]] for i in range(len(sizes))]
        return {"patches": patches, "grid": grid}

    def _encode(self, texts: list[str]):
        enc = self.tok(texts, add_special_tokens=False, padding=True, return_tensors="pt", padding_side="right")
        return enc.input_ids.to(self.device), enc.attention_mask.to(self.device)

    def answer_probs(self, images: np.ndarray, questions: list[str], image_index: list[int] | None = None,
                     features: dict | None = None) -> torch.Tensor:
        """(Q, 2) full-vocabulary probabilities of [yes, no] as the first answer token."""
        feats = self.image_features(images) if features is None else features
        index = list(range(len(questions))) if image_index is None else list(image_index)
        grid = feats["grid"][index]
        n_pad = (grid.prod(-1) // self.merge ** 2).tolist()
        texts = [self.templates["answer"].format(image=IMAGE_PAD * n, question=q) for n, q in zip(n_pad, questions)]
        ids, mask = self._encode(texts)
        out = self.model(input_ids=ids, attention_mask=mask, mm_token_type_ids=(ids == self.pad_token).int(),
                         pixel_values=torch.cat([feats["patches"][i] for i in index]).to(self.device, self.model.dtype),
                         image_grid_thw=grid.to(self.device))
        last = out.logits[torch.arange(len(texts)), mask.sum(1) - 1].float()
        probs = torch.softmax(last, -1)
        return torch.stack([probs[:, self.yes_ids].sum(-1), probs[:, self.no_ids].sum(-1)], -1)

    @torch.no_grad()
    def ask(self, images: np.ndarray, questions: list[str], image_index: list[int] | None = None,
            max_new_tokens: int = 64) -> list[str]:
        """Greedy text answers to free-form questions about images (SRUM's scoring prompts)."""
        feats = self.image_features(images)
        index = list(range(len(questions))) if image_index is None else list(image_index)
        grid = feats["grid"][index]
        n_pad = (grid.prod(-1) // self.merge ** 2).tolist()
        texts = [self.templates["ask"].format(image=IMAGE_PAD * n, question=q) for n, q in zip(n_pad, questions)]
        enc = self.tok(texts, add_special_tokens=False, padding=True, return_tensors="pt", padding_side="left")
        ids = enc.input_ids.to(self.device)
        out = self.model.generate(input_ids=ids, attention_mask=enc.attention_mask.to(self.device),
                                  mm_token_type_ids=(ids == self.pad_token).int(),
                                  pixel_values=torch.cat([feats["patches"][i] for i in index]).to(self.device,
                                                                                                  self.model.dtype),
                                  image_grid_thw=grid.to(self.device), max_new_tokens=max_new_tokens, do_sample=False,
                                  pad_token_id=self.tok.pad_token_id)
        return self.tok.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)

    @torch.no_grad()
    def write(self, prompts: list[str], instruction: str, max_new_tokens: int = 96, temperature: float = 0.0,
              generator: torch.Generator | None = None) -> list[str]:
        texts = [self.templates["write"].format(instruction=instruction, prompt=p) for p in prompts]
        enc = self.tok(texts, add_special_tokens=False, padding=True, return_tensors="pt", padding_side="left")
        if generator is not None:  # generate() draws from the global RNG: seed it from ours, reproducibly
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator, device=generator.device)))
        out = self.model.generate(input_ids=enc.input_ids.to(self.device), attention_mask=enc.attention_mask.to(self.device),
                                  max_new_tokens=max_new_tokens, do_sample=temperature > 0,
                                  temperature=temperature if temperature > 0 else None,
                                  pad_token_id=self.tok.pad_token_id)
        return self.tok.batch_decode(out[:, enc.input_ids.shape[1]:], skip_special_tokens=True)

    def encode_text(self, prompts: list[str], template: str | None = None, length: int = 128,
                    drop: int | None = None):
        """Last hidden states of the prompts in `template` (default: the plain user turn), right-padded to a fixed
        `length` after the template's fixed prefix (`drop` tokens) is dropped (Qwen-Image drops its system
        prompt), and the mask: the flow transformer's conditioning. A fixed length makes each row independent of
        its batch."""
        template = template or self.templates["prompt"]
        drop = self.prefix_length(template) if drop is None else drop
        enc = self.tok([template.format(prompt=p) for p in prompts], add_special_tokens=False, padding="max_length",
                       max_length=drop + length, truncation=True, return_tensors="pt", padding_side="right")
        ids, mask = enc.input_ids.to(self.device), enc.attention_mask.to(self.device)
        with torch.no_grad():
            states = self.model.model(input_ids=ids, attention_mask=mask).last_hidden_state
        return states[:, drop:], mask[:, drop:]

    def prefix_length(self, template: str) -> int:
        return first_difference(*(self.tok(template.format(prompt=w), add_special_tokens=False).input_ids
                                  for w in ("x", "y")))

    def text_encoder(self, template: str | None, length: int):
        """`encode_text` with a fixed template and length (its prefix measured once), as the diffusion adapter
        calls it on every sampling and training batch."""
        template = template or self.templates["prompt"]
        drop = self.prefix_length(template)
        return lambda prompts: self.encode_text(prompts, template, length, drop)
