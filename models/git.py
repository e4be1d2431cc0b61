"""GIT adapter (transformers GitForCausalLM) for the VQA-scored rubric: a separate model answers the
introspector's yes/no questions. Same answering protocol as the Janus adapter (`image_features`,
`answer_probs` -> (Q, 2) probabilities of [yes, no] as the next token), so rewards.judges.RubricJudge takes either.

GIT's VQA format: [CLS] + question tokens, the answer follows (as in the GIT VQA fine-tunes); images are resized
to the vision tower's size and normalised with the checkpoint's preprocessor mean/std (CLIP's if it has none).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from transformers import AutoTokenizer, GitConfig, GitForCausalLM

from models.adapter import answer_token_ids

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


def toy_git_config(tokenizer, hidden: int = 32, layers: int = 1, image_size: int = 64, patch: int = 8) -> GitConfig:
    """A small GIT for the toy world's 64 px images (tests: random weights; launch/train_toy_vqa.py trains one)."""
    heads = max(1, hidden // 32)
    vision = dict(image_size=image_size, patch_size=patch, hidden_size=hidden, intermediate_size=2 * hidden,
                  num_hidden_layers=layers, num_attention_heads=heads)
    return GitConfig(vision_config=vision, vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                     num_attention_heads=heads, intermediate_size=2 * hidden, max_position_embeddings=64,
                     bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                     pad_token_id=tokenizer.pad_token_id)


class GitVQA:
    def __init__(self, model: GitForCausalLM, tokenizer, mean=CLIP_MEAN, std=CLIP_STD):
        self.model, self.tok = model.eval(), tokenizer
        self.size = model.config.vision_config.image_size
        self.mean, self.std = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
        self.start_id = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
        if self.start_id is None or tokenizer.pad_token_id is None:
            raise ValueError("a GIT tokenizer needs a [CLS] (or BOS) token and a pad token")
        self.yes_ids, self.no_ids = answer_token_ids(tokenizer, "yes"), answer_token_ids(tokenizer, "no")

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu") -> "GitVQA":
        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"no VQA model at {path}: expected a Hugging Face GIT directory with config.json")
        model = GitForCausalLM.from_pretrained(path, use_safetensors=True).to(device)
        model.requires_grad_(False)
        pre = path / "preprocessor_config.json"
        norm = json.loads(pre.read_text()) if pre.is_file() else {}
        return cls(model, AutoTokenizer.from_pretrained(path), norm.get("image_mean", CLIP_MEAN),
                   norm.get("image_std", CLIP_STD))

    @property
    def device(self):
        return self.model.device

    def image_features(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (N, H, W, 3) -> normalised pixel values (N, 3, S, S) (GIT encodes inside its forward)."""
        pixels = torch.from_numpy(np.array(images, dtype=np.uint8)).permute(0, 3, 1, 2).float() / 255.0
        if pixels.shape[-1] != self.size or pixels.shape[-2] != self.size:
            pixels = F.interpolate(pixels, size=(self.size, self.size), mode="bicubic", align_corners=False)
        return ((pixels - self.mean) / self.std).to(self.device)

    @torch.no_grad()
    def answer_probs(self, images: np.ndarray, questions: list[str], image_index: list[int] | None = None,
                     features: torch.Tensor | None = None) -> torch.Tensor:
        pixels = self.image_features(images) if features is None else features
        index = list(range(len(questions))) if image_index is None else image_index
        rows = [[self.start_id] + self.tok(q, add_special_tokens=False).input_ids for q in questions]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.tok.pad_token_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for i, r in enumerate(rows):  # right padding: the answer position is each row's last real token
            ids[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), 1
        logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                            pixel_values=pixels[index]).logits[:, -width:]
        last = logits[torch.arange(len(rows)), mask.sum(1).to(self.device) - 1]
        probs = torch.softmax(last.float(), -1)
        return torch.stack([probs[:, self.yes_ids].sum(-1), probs[:, self.no_ids].sum(-1)], -1)
