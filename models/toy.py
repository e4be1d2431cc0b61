"""The embedded toy UMM: a tiny JanusForConditionalGeneration config and a word-level tokenizer.

The tokenizer is built locally with `tokenizers` (no hub): a closed vocabulary of every word the toy world's
prompts, questions, captions and rubrics use, plus the special tokens of the prompt templates below.
"""

from __future__ import annotations

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import JanusConfig, LlamaConfig, PreTrainedTokenizerFast

from rewards.rubric import DIMENSIONS, SCHEMA_INSTRUCTION, rubric_from_metadata, rubric_text
from toyworld.prompts import universe
from toyworld.scene import COLORS, RELATIONS, SHAPES

SPECIAL = ("<pad>", "<bos>", "<eos>", "<unk>", "<image>", "<boi>", "<eoi>", "<q>", "<a>", "<cap>", "<sep>")
RUBRIC_INSTRUCTION = SCHEMA_INSTRUCTION
QUESTION_WORDS = "is there a are the and same color one two three four yes no ? : ; ,".split()

# Prompt templates of the toy model; `{image}` expands to one <image> per vision patch.
TEMPLATES = {
    "generate": "<bos> {prompt} <boi>",
    "image": "<bos> {image}",  # the prefix every understanding turn continues
    "answer": "<bos> {image} <q> {question} <a>",
    "caption": "<bos> {image} <cap>",
    "write": "<bos> {instruction} {prompt} <sep>",
}


def vocabulary() -> list[str]:
    words = set(QUESTION_WORDS) | set(DIMENSIONS) | set(COLORS) | set(RELATIONS[0].split())
    words |= {w for s in SHAPES for w in (s, s + "s")} | {w for r in RELATIONS for w in r.split()}
    words |= set(RUBRIC_INSTRUCTION.split())
    for meta in universe():
        words |= set(meta["prompt"].split())
        words |= set(rubric_text(rubric_from_metadata(meta)).split())
    return list(SPECIAL) + sorted(words - set(SPECIAL))


def build_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    # Split on whitespace and keep special tokens like "<image>" whole.
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>", additional_special_tokens=list(SPECIAL[4:]))


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
