"""Qwen2.5-VL's structure at tiny widths, with random weights, for CPU tests of the diffusion backend's
understanding side: its chat tokens (<|im_start|>, <|vision_start|>, <|image_pad|> ...), a byte-level BPE
tokenizer trained here, Qwen2-VL's image processor (14 px patches, 2x2 merge) and 3D rotary positions."""

from __future__ import annotations

from pathlib import Path

from models.janus_pro_like import bpe_tokenizer

SPECIAL = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
           "<|video_pad|>")


def build(seed: int = 0, hidden: int = 32, layers: int = 1, image_pixels: int = 56 * 56):
    """(model, tokenizer, image processor); images are resized to about `image_pixels` pixels."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tok = bpe_tokenizer(SPECIAL, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL}
    cfg = Qwen2_5_VLConfig(
        text_config=dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=2, num_key_value_heads=1, vocab_size=len(tok),
                         max_position_embeddings=1024, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]},
                         bos_token_id=ids["<|im_start|>"], eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"]),
        vision_config=dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=hidden,
                           fullatt_block_indexes=[0]),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(cfg).eval()
    proc = Qwen2VLImageProcessorPil(min_pixels=image_pixels, max_pixels=image_pixels)
    return model, tok, proc


def save(path: Path, **kw) -> Path:
    model, tok, proc = build(**kw)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    proc.save_pretrained(path)
    return path
