"""Janus-Pro's structure at any width, with random weights: the same token layout (DeepSeek chat format, a byte-level
BPE tokenizer with Janus-Pro's special tokens, <begin_of_image> + 576 image tokens at 384 px, a 16x VQ decoder)
for CPU tests (a few layers, tiny widths) and for `launch/gpu_smoke.py` (real widths, few layers).

The tokenizer is trained locally on the toy world's words (there is no hub here); a real Janus-Pro checkpoint
brings its own and needs nothing from this module.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import JanusConfig, LlamaConfig, PreTrainedTokenizerFast

BOS, EOS, PAD = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜▁pad▁｜>"
IMAGE, BOI, EOI = "<image_placeholder>", "<begin_of_image>", "<end_of_image>"
SPECIAL = (BOS, EOS, PAD, IMAGE, BOI, EOI, "<|User|>", "<|Assistant|>")

# Janus-Pro-7B's shapes (Janus-Pro-1B: hidden 2048, 24 layers, 16 heads)
REAL = dict(vocab_size=102400, hidden=4096, heads=32, intermediate=11008, vision_hidden=1024, vision_heads=16,
            codebook=16384, image_size=384, patch_size=16)


def corpus() -> list[str]:
    from models.toy import vocabulary
    words = [w for w in vocabulary() if not w.startswith("<")]
    return [" ".join(words), "Yes yes No no Answer yes or no. Describe the image in one sentence."] * 50


def bpe_tokenizer(special: tuple[str, ...], vocab_size: int = 800, **roles) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained here on the toy world's words, with `special` tokens kept whole;
    `roles` names bos/eos/pad tokens and extra attributes (e.g. image_token)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(special), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus(), trainer)
    named = {k: roles.pop(k) for k in ("bos_token", "eos_token", "pad_token") if k in roles}
    return PreTrainedTokenizerFast(tokenizer_object=tok, additional_special_tokens=[t for t in special if t not in
                                                                                   named.values()],
                                   extra_special_tokens=roles, **named)


def build_tokenizer(vocab_size: int = 800) -> PreTrainedTokenizerFast:
    return bpe_tokenizer(SPECIAL, vocab_size, bos_token=BOS, eos_token=EOS, pad_token=PAD, image_token=IMAGE,
                         boi_token=BOI, eoi_token=EOI)


def janus_pro_config(vocab_size: int, image_token_id: int, hidden: int = 32, layers: int = 2, heads: int = 2,
                     intermediate: int | None = None, vision_hidden: int = 32, vision_layers: int = 1,
                     vision_heads: int = 2, codebook: int = 64, image_size: int = 384, patch_size: int = 16,
                     vq_channels: int = 32) -> JanusConfig:
    """Janus-Pro's layout: image_size / patch_size = 24 -> 576 image tokens, a 5-level (16x) VQ decoder."""
    side = image_size // patch_size
    text = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden, intermediate_size=intermediate or hidden * 3,
                       num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                       max_position_embeddings=16384, pad_token_id=2, bos_token_id=0, eos_token_id=1)
    vision = dict(hidden_size=vision_hidden, num_hidden_layers=vision_layers, num_attention_heads=vision_heads,
                  image_size=image_size, patch_size=patch_size, projection_dim=hidden, num_image_tokens=side * side,
                  mlp_ratio=2.0)
    vq = dict(embed_dim=8, num_embeddings=codebook, latent_channels=2 * vq_channels, base_channels=vq_channels,
              channel_multiplier=[1, 1, 2, 2, 4], num_res_blocks=1, num_patches=side, projection_dim=hidden,
              image_token_embed_dim=hidden, num_hidden_layers=2)
    return JanusConfig(text_config=text.to_dict(), vision_config=vision, vq_config=vq, image_token_id=image_token_id)


def build(seed: int = 0, **shape):
    """(model, tokenizer) with random weights; `shape` overrides janus_pro_config's widths."""
    import torch
    from transformers import JanusForConditionalGeneration

    tok = build_tokenizer()
    shape.setdefault("vocab_size", len(tok))
    torch.manual_seed(seed)
    cfg = janus_pro_config(image_token_id=tok.convert_tokens_to_ids(IMAGE), **shape)
    return JanusForConditionalGeneration(cfg).eval(), tok
