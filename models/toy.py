"""The embedded toy UMM's architecture: a tiny JanusForConditionalGeneration config, its prompt templates, and
where its committed checkpoint lies. It loads through the Janus adapter like any Janus-layout checkpoint; its
word-level tokenizer is built from the toy world's words (toyworld/vocabulary.py) and saved with it."""

from __future__ import annotations

from pathlib import Path

from transformers import JanusConfig, LlamaConfig

EMBEDDED = Path(__file__).resolve().parent / "toy_umm"  # the committed model (launch/pretrain_toy.py's defaults)

SPECIAL = ("<pad>", "<bos>", "<eos>", "<unk>", "<image>", "<boi>", "<eoi>", "<q>", "<a>", "<cap>", "<sep>")

# Prompt templates of the toy model; `{image}` expands to one <image> per vision patch.
TEMPLATES = {
    "generate": "<bos> {prompt} <boi>",
    "image": "<bos> {image}",  # the prefix every understanding turn continues
    "answer": "<bos> {image} <q> {question} <a>",
    "caption": "<bos> {image} <cap>",
    "write": "<bos> {instruction} {prompt} <sep>",
}


def toy_config(vocab_size: int, image_token_id: int, hidden: int = 192, layers: int = 4, heads: int = 4,
               vision_hidden: int = 128, vision_layers: int = 3, codebook: int = 256) -> JanusConfig:
    text = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=hidden * 3,
                       num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                       max_position_embeddings=512, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                       tie_word_embeddings=True)
    vision = dict(hidden_size=vision_hidden, num_hidden_layers=vision_layers, num_attention_heads=4,
                  image_size=64, patch_size=8, projection_dim=hidden, num_image_tokens=64, mlp_ratio=2.0)
    vq = dict(embed_dim=16, num_embeddings=codebook, latent_channels=64, base_channels=32,
              channel_multiplier=[1, 1, 2, 2], num_res_blocks=1, projection_dim=hidden,
              image_token_embed_dim=hidden, num_hidden_layers=2)
    return JanusConfig(text_config=text.to_dict(), vision_config=vision, vq_config=vq,
                       image_token_id=image_token_id, tie_word_embeddings=True)
