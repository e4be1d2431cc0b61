"""LoRA vs full-weight sync (`make bench`, section `lora`): what one weight sync moves and how long it takes, the
full generator against its LoRA adapters, side by side in one run.

- Measured: the tiny Janus-Pro layout and the tiny Qwen-Image layout (tests/fixtures), their trainable tensors moved
  by actors/weight_sync.broadcast_weights between two actors over gloo on loopback, as the job moves them (64 MB
  buckets, the sampled checksum), best of `repeats`.
- Counted: the same at the published widths (Janus-Pro-7B's language model, Qwen-Image's 60-layer transformer),
  built on the meta device (no memory), bytes in bfloat16 as a GPU run holds them.
"""

from __future__ import annotations

import torch

from driver.bench_sync import best_bucketed, close_pair, sync_pair
from models import lora

BUCKET_MB, CHECK_STRIDE = 64.0, 16


def trainable_sizes(adapter) -> list[int]:
    return [p.numel() for _, p in adapter.trainable_parameters()]


def time_sync(sizes: list[int], repeats: int) -> float:
    """Best sync time of tensors of these element counts between two actors (checksums compared)."""
    pair = sync_pair(sizes)
    try:
        return best_bucketed(pair, BUCKET_MB, CHECK_STRIDE, repeats)
    finally:
        close_pair(pair)


def measured_rows(models: dict, settings: lora.LoraSettings, repeats: int = 5) -> list[dict]:
    """models: label -> a function returning a fresh adapter (float32 on this CPU)."""
    rows = []
    for label, make in models.items():
        full = make()
        adapted = lora.with_lora(make(), settings, "")
        sizes = {"full": trainable_sizes(full), f"LoRA r={settings.rank}": trainable_sizes(adapted)}
        measured = {mode: (4 * sum(s), len(s), time_sync(s, repeats)) for mode, s in sizes.items()}
        base_bytes, base_s = measured["full"][0], measured["full"][2]
        for mode, (nbytes, tensors, seconds) in measured.items():
            rows.append({"model": label, "weights": mode, "tensors": tensors, "MB": nbytes / 1e6, "sync_s": seconds,
                         "bytes_vs_full": nbytes / base_bytes, "time_vs_full": seconds / base_s})
    return rows


class Counted:
    """Just enough of an adapter to count a module's trainable tensors with and without LoRA (meta device)."""
    lora = None

    def __init__(self, module: torch.nn.Module, trained, targets):
        """`trained`: name -> whether the policy trains that tensor (the backend's own selection)."""
        self.module, self.trained, self.lora_targets = module, trained, targets

    def trainable_parameters(self):
        named = [(n, p) for n, p in self.module.named_parameters() if self.trained(n)]
        return [(n, p) for n, p in named if ".lora_" in n] if self.lora else named


def bagel_7b_mot() -> torch.nn.Module:
    """BAGEL-7B-MoT's network at its published widths (Qwen2.5-7B's language model, SigLIP-so400m minus a layer)."""
    from transformers import Qwen2Config, SiglipVisionConfig

    from models.bagel_layout import BagelShape
    from models.bagel_net import BagelNet
    llm = Qwen2Config(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                      num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False)
    vit = SiglipVisionConfig(hidden_size=1152, intermediate_size=4304, num_hidden_layers=26, num_attention_heads=16,
                             image_size=980, patch_size=14)
    return BagelNet(llm, vit, BagelShape())


def published_width_rows(settings: lora.LoraSettings, repeats: int = 3) -> list[dict]:
    """Bytes per sync (bfloat16) at the published widths, counted on the meta device; the LoRA adapters' sync also
    timed here (float32 tensors of their shapes; the full weights, 26-82 GB in float32, do not fit this host)."""
    from diffusers import QwenImageTransformer2DModel
    from transformers import JanusConfig, JanusForConditionalGeneration, LlamaConfig

    from models.bagel import TRAINED, BagelAdapter
    from models.flow_families import QwenImageFamily
    from models.janus import GENERATOR_PREFIXES, JanusAdapter

    # Janus-Pro-7B's published language model (transformers' JanusConfig defaults hold its vision and VQ widths)
    text = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=30, num_attention_heads=32,
                       num_key_value_heads=32, vocab_size=102400)
    cfg = JanusConfig(text_config=text.to_dict())
    models = {
        "Janus-Pro-7B (30 layers, hidden 4096)": lambda: Counted(
            JanusForConditionalGeneration(cfg), lambda n: n.startswith(GENERATOR_PREFIXES), JanusAdapter.lora_targets),
        "Qwen-Image transformer (60 layers, 24 x 128)": lambda: Counted(
            QwenImageTransformer2DModel(), lambda n: True, QwenImageFamily.lora_targets),
        "BAGEL-7B-MoT generation expert (28 layers, hidden 3584)": lambda: Counted(
            bagel_7b_mot(), lambda n: any(k in n for k in TRAINED), BagelAdapter.lora_targets)}
    rows, adapter_sizes = [], {}
    with torch.device("meta"):
        for label, make in models.items():
            full, adapted = make(), lora.with_lora(make(), settings, "")
            sizes = {"full": trainable_sizes(full), f"LoRA r={settings.rank}": trainable_sizes(adapted)}
            adapter_sizes[label] = sizes[f"LoRA r={settings.rank}"]
            for mode, s in sizes.items():
                rows.append({"model": label, "weights": mode, "tensors": len(s), "params_M": sum(s) / 1e6,
                             "GB_bf16": 2 * sum(s) / 1e9, "bytes_vs_full": sum(s) / sum(sizes["full"])})
    for row in rows:  # measured where it fits this host: the adapters' tensors, float32, over gloo
        row["sync_s_fp32_here"] = time_sync(adapter_sizes[row["model"]], repeats) if row["weights"] != "full" \
            else float("nan")
    return rows
