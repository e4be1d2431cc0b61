"""BAGEL-7B-MoT's directory layout, read and written: the parts a directory must hold, the settings its loader
hard-codes, its FLUX autoencoder in Black Forest Labs' key layout (converted to and from diffusers' AutoencoderKL),
and the map of every published tensor name the adapter reads.

A published directory (huggingface.co/ByteDance-Seed/BAGEL-7B-MoT) holds:
    llm_config.json   Qwen2 config of the language model (both experts share it)
    vit_config.json   SigLIP config (BAGEL drops its last layer: the checkpoint holds num_hidden_layers - 1)
    ae.safetensors    the FLUX VAE (16 latent channels, 8x down-sampling), BFL key names
    ema.safetensors   every other weight, names as in models/bagel_net.py
    tokenizer files   Qwen2.5's (vocab.json + merges.txt, or tokenizer.json)
and optionally our meta_ttrl.json: {"backend": "bagel", "shape": BagelShape, "ae": AEShape, "sampling": ...}
for layouts other than the published one (the tiny test models), written by save_pretrained.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

PARTS = ("llm_config.json", "vit_config.json", "ae.safetensors", "ema.safetensors")
TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"))
ADAPTER_FILE = "meta_ttrl.json"
SPECIAL = {"bos": "<|im_start|>", "eos": "<|im_end|>", "start_of_image": "<|vision_start|>",
           "end_of_image": "<|vision_end|>"}

# Every tensor name of the published ema.safetensors, as patterns (L: a layer index), with what reads it.
PUBLISHED_NAMES = {
    r"language_model\.model\.embed_tokens\.weight": "text token embeddings (prompts, questions, image tags)",
    r"language_model\.model\.layers\.L\.self_attn\.(q|k|v)_proj\.(weight|bias)": "understanding expert attention",
    r"language_model\.model\.layers\.L\.self_attn\.o_proj\.weight": "understanding expert attention output",
    r"language_model\.model\.layers\.L\.self_attn\.(q|k)_norm\.weight": "understanding expert q/k RMSNorm",
    r"language_model\.model\.layers\.L\.self_attn\.(q|k|v)_proj_moe_gen\.(weight|bias)": "generation expert attention",
    r"language_model\.model\.layers\.L\.self_attn\.o_proj_moe_gen\.weight": "generation expert attention output",
    r"language_model\.model\.layers\.L\.self_attn\.(q|k)_norm_moe_gen\.weight": "generation expert q/k RMSNorm",
    r"language_model\.model\.layers\.L\.mlp\.(gate|up|down)_proj\.weight": "understanding expert MLP",
    r"language_model\.model\.layers\.L\.mlp_moe_gen\.(gate|up|down)_proj\.weight": "generation expert MLP",
    r"language_model\.model\.layers\.L\.(input|post_attention)_layernorm\.weight": "understanding expert norms",
    r"language_model\.model\.layers\.L\.(input|post_attention)_layernorm_moe_gen\.weight": "generation expert norms",
    r"language_model\.model\.norm\.weight": "final norm of understanding tokens (answers, rubric text)",
    r"language_model\.model\.norm_moe_gen\.weight": "final norm of latent tokens (velocity)",
    r"language_model\.lm_head\.weight": "next-token logits (Yes/No, rubric writing)",
    r"time_embedder\.mlp\.(0|2)\.(weight|bias)": "flow time t -> token offset",
    r"vae2llm\.(weight|bias)": "2x2 latent patch -> token",
    r"llm2vae\.(weight|bias)": "token -> velocity of its 2x2 latent patch",
    r"latent_pos_embed\.pos_embed": "latent patch position table (max_latent_size^2)",
    r"vit_model\.vision_model\.embeddings\.patch_embedding\.(weight|bias)": "SigLIP patch embedding (Linear)",
    r"vit_model\.vision_model\.embeddings\.position_embedding\.weight": "SigLIP position table",
    r"vit_model\.vision_model\.encoder\.layers\.L\.(layer_norm1|layer_norm2)\.(weight|bias)": "SigLIP norms",
    r"vit_model\.vision_model\.encoder\.layers\.L\.self_attn\.(q|k|v|out)_proj\.(weight|bias)": "SigLIP attention",
    r"vit_model\.vision_model\.encoder\.layers\.L\.mlp\.fc(1|2)\.(weight|bias)": "SigLIP MLP",
    r"vit_model\.vision_model\.post_layernorm\.(weight|bias)": "SigLIP final norm",
    r"connector\.fc(1|2)\.(weight|bias)": "ViT features -> language-model tokens",
    r"vit_pos_embed\.pos_embed": "ViT patch position table in the language model (70^2)",
}


class BagelDirectoryError(ValueError):
    pass


@dataclass
class BagelShape:
    """What BAGEL's published loader fixes in code rather than in a config (its app.py / inferencer)."""
    latent_patch_size: int = 2
    latent_channels: int = 16
    max_latent_size: int = 64  # latent-patch table side: images up to 64 x 16 = 1024 px
    vit_max_patches: int = 70  # ViT patch table side (980 px / 14)
    connector_act: str = "gelu_pytorch_tanh"


@dataclass
class AEShape:
    """The FLUX autoencoder's hyper-parameters (hard-coded by BAGEL's `load_ae`)."""
    ch: int = 128
    ch_mult: list[int] = field(default_factory=lambda: [1, 2, 4, 4])
    num_res_blocks: int = 2
    z_channels: int = 16
    scale_factor: float = 0.3611
    shift_factor: float = 0.1159

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    def diffusers_config(self) -> dict:
        n = len(self.ch_mult)
        return dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * n,
                    up_block_types=("UpDecoderBlock2D",) * n,
                    block_out_channels=tuple(self.ch * m for m in self.ch_mult),
                    layers_per_block=self.num_res_blocks, latent_channels=self.z_channels, norm_num_groups=32,
                    use_quant_conv=False, use_post_quant_conv=False, scaling_factor=self.scale_factor,
                    shift_factor=self.shift_factor)


def check_bagel_dir(path: Path) -> dict:
    """meta_ttrl.json's contents ({} without one), or a one-line error naming each part the directory lacks."""
    missing = [p for p in PARTS if not (path / p).is_file()]
    if not any(all((path / f).is_file() for f in files) for files in TOKENIZER_FILES):
        missing.append("a tokenizer (tokenizer.json, or vocab.json + merges.txt)")
    if missing:
        raise BagelDirectoryError(f"{path} is not a complete BAGEL directory: it lacks {', '.join(missing)} "
                                  f"(BAGEL-7B-MoT layout: {', '.join(PARTS)}, tokenizer)")
    meta = path / ADAPTER_FILE
    return json.loads(meta.read_text()) if meta.is_file() else {}


def is_bagel_dir(path: Path) -> bool:
    """A directory that means to be BAGEL: its language-model config, or its weights file, is there."""
    return (path / "llm_config.json").is_file() or (path / "ema.safetensors").is_file()


def read_configs(path: Path, meta: dict):
    """(llm_config, vit_config, BagelShape, AEShape) as BAGEL's loader sets them: q/k norms on, untied embeddings,
    the ViT one layer shorter than its config, no ViT RoPE."""
    from transformers import Qwen2Config, SiglipVisionConfig
    llm = Qwen2Config.from_json_file(str(path / "llm_config.json"))
    llm.tie_word_embeddings = False
    vit = SiglipVisionConfig.from_json_file(str(path / "vit_config.json"))
    vit.num_hidden_layers -= 1
    shape, ae = BagelShape(**meta.get("shape", {})), AEShape(**meta.get("ae", {}))
    if vit.image_size // vit.patch_size != shape.vit_max_patches:
        raise BagelDirectoryError(f"{path}: vit_config's image_size / patch_size ({vit.image_size} / "
                                  f"{vit.patch_size}) must equal the ViT table side {shape.vit_max_patches}")
    if ae.z_channels != shape.latent_channels:
        raise BagelDirectoryError(f"{path}: the autoencoder has {ae.z_channels} latent channels, the model "
                                  f"{shape.latent_channels}")
    return llm, vit, shape, ae


def save_configs(path: Path, llm, vit) -> None:
    """The two configs in the published form (the ViT's layer count as published: one more than used)."""
    (path / "llm_config.json").write_text(llm.to_json_string())
    vit_dict = vit.to_dict() | {"num_hidden_layers": vit.num_hidden_layers + 1}
    vit_dict.pop("vision_use_head", None)
    (path / "vit_config.json").write_text(json.dumps(vit_dict, indent=1))


def check_weights(path: Path, expected: set[str], found: set[str]) -> None:
    missing, extra = sorted(expected - found), sorted(found - expected)
    if missing:
        raise BagelDirectoryError(f"{path / 'ema.safetensors'} lacks {len(missing)} tensors of the BAGEL-7B-MoT "
                                  f"layout (e.g. {', '.join(missing[:3])})")
    if extra:
        raise BagelDirectoryError(f"{path / 'ema.safetensors'} has {len(extra)} tensors the layout does not know "
                                  f"(e.g. {', '.join(extra[:3])}): another model, or another BAGEL variant")


# ---- the FLUX autoencoder: BFL key names <-> diffusers' AutoencoderKL ---------------------------------------
def load_autoencoder(path: Path, ae: AEShape, device, dtype):
    """diffusers' AutoencoderKL with the weights of ae.safetensors (BFL names, converted by diffusers' own LDM
    converter)."""
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
    from safetensors.torch import load_file
    config = ae.diffusers_config()
    vae = AutoencoderKL(**config)
    state = convert_ldm_vae_checkpoint(load_file(path / "ae.safetensors"), config)
    missing, unexpected = vae.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise BagelDirectoryError(f"{path / 'ae.safetensors'} does not fit the autoencoder {asdict(ae)}: "
                                  f"{len(missing)} tensors missing, {len(unexpected)} unexpected")
    vae = vae.to(device)
    return (vae if dtype == torch.float32 else vae.to(dtype)).eval()


_TO_BFL = [(r"conv_norm_out", "norm_out"), (r"conv_shortcut", "nin_shortcut"),
           (r"mid_block\.resnets\.(\d)", lambda m: f"mid.block_{int(m[1]) + 1}"),
           (r"mid_block\.attentions\.0\.group_norm", "mid.attn_1.norm"),
           (r"mid_block\.attentions\.0\.to_(q|k|v)", r"mid.attn_1.\1"),
           (r"mid_block\.attentions\.0\.to_out\.0", "mid.attn_1.proj_out"),
           (r"down_blocks\.(\d+)\.resnets", r"down.\1.block"),
           (r"down_blocks\.(\d+)\.downsamplers\.0", r"down.\1.downsample"),
           (r"up_blocks\.(\d+)\.upsamplers\.0", r"up_blocks.\1.upsample")]


def bfl_state_dict(vae, levels: int) -> dict[str, torch.Tensor]:
    """AutoencoderKL's weights under the BFL names of ae.safetensors (attention projections as 1x1 convs; the
    decoder's up levels numbered from the highest resolution, as BFL does)."""
    out = {}
    for name, tensor in vae.state_dict().items():
        for pattern, repl in _TO_BFL:
            name = re.sub(pattern, repl, name)
        name = re.sub(r"up_blocks\.(\d+)\.", lambda m: f"up.{levels - 1 - int(m[1])}.", name)
        name = name.replace(".resnets.", ".block.")
        if ".mid.attn_1." in name and tensor.ndim == 2:
            tensor = tensor[:, :, None, None]
        out[name] = tensor.detach().contiguous().clone()
    return out
