"""Our BAGEL adapter (models/bagel.py) against BAGEL's public reference implementation on the same tiny random
weights (tests/fixtures/bagel_like.py), on the CPU (tests/test_bagel_reference.py runs it):

    BAGEL_REFERENCE=<a checkout of github.com/ByteDance-Seed/Bagel> .venv/bin/python -m pytest -s \
        tests/test_bagel_reference.py

The reference needs flash-attn (CUDA only) and casts to bf16 inside attention; it runs from a temporary copy
(`prepared_copy`) in which flash_attn_varlen_func is a per-sequence SDPA (causal aligned bottom-right, as flash-attn
does), the bf16 casts are fp32 (the comparison is at fp32 precision), and transformers 5's rope table gets back the
"default" entry the reference's Qwen2 copy asks for. Nothing of the reference is kept. It loads our ema.safetensors
and ae.safetensors strictly, then compares: the velocity of one latent (unguided; CFG 4 with global renorm inside
the guidance interval; outside it), the first answer token's logits after an image and a question, the VAE's
decoding and encoding. `python tests/reference_bagel.py <dir>` (with the copy on the path) prints the largest
relative differences and exits 1 if one exceeds 1e-4."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import torch

TOLERANCE = 1e-4  # relative, at fp32
FLASH_ATTN = '''import torch
import torch.nn.functional as F


def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q=None, max_seqlen_k=None,
                           causal=False, **kw):
    out = []
    for i in range(len(cu_seqlens_q) - 1):
        qs = q[cu_seqlens_q[i]:cu_seqlens_q[i + 1]].transpose(0, 1).float()
        ks = k[cu_seqlens_k[i]:cu_seqlens_k[i + 1]].transpose(0, 1).float()
        vs = v[cu_seqlens_k[i]:cu_seqlens_k[i + 1]].transpose(0, 1).float()
        rep = qs.shape[0] // ks.shape[0]
        ks, vs = ks.repeat_interleave(rep, 0), vs.repeat_interleave(rep, 0)
        lq, lk = qs.shape[1], ks.shape[1]
        mask = torch.ones(lq, lk, dtype=torch.bool).tril(lk - lq) if causal else None
        out.append(F.scaled_dot_product_attention(qs, ks, vs, attn_mask=mask).transpose(0, 1).to(q.dtype))
    return torch.cat(out)
'''


def prepared_copy(reference: Path, into: Path) -> Path:
    """The reference's modeling/ and data/ with the CPU stand-ins; returns the directory to put on sys.path."""
    for part in ("modeling", "data"):
        if not (reference / part).is_dir():
            raise FileNotFoundError(f"{reference} is not a checkout of ByteDance-Seed/Bagel: it lacks {part}/")
        shutil.copytree(reference / part, into / part)
    for file in (into / "modeling").rglob("*.py"):
        file.write_text(file.read_text().replace("torch.bfloat16", "torch.float32"))
    (into / "flash_attn").mkdir()
    (into / "flash_attn" / "__init__.py").write_text(FLASH_ATTN)
    return into


def _register_default_rope() -> None:
    """transformers 5 dropped the "default" rope entry the reference's Qwen2 copy looks up."""
    import transformers.modeling_rope_utils as ru

    def default(config, device=None, seq_len=None, **kw):
        base = (getattr(config, "rope_parameters", None) or {}).get("rope_theta", getattr(config, "rope_theta", 1e4))
        dim = config.hidden_size // config.num_attention_heads
        return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim)), 1.0
    ru.ROPE_INIT_FUNCTIONS.setdefault("default", default)


def reference_model(path: Path, ours):
    """BAGEL's reference classes configured as its app.py does, with our saved weights loaded strictly."""
    from modeling.autoencoder import AutoEncoder, AutoEncoderParams
    from modeling.bagel import Bagel, BagelConfig, Qwen2Config, Qwen2ForCausalLM, SiglipVisionConfig, \
        SiglipVisionModel
    from safetensors.torch import load_file
    llm = Qwen2Config.from_json_file(str(path / "llm_config.json"))
    llm.qk_norm, llm.tie_word_embeddings, llm.layer_module = True, False, "Qwen2MoTDecoderLayer"
    vit = SiglipVisionConfig.from_json_file(str(path / "vit_config.json"))
    vit.rope, vit.num_hidden_layers = False, vit.num_hidden_layers - 1
    a = ours.ae
    params = AutoEncoderParams(resolution=256, in_channels=3, downsample=a.downsample, ch=a.ch, out_ch=3,
                               ch_mult=a.ch_mult, num_res_blocks=a.num_res_blocks, z_channels=a.z_channels,
                               scale_factor=a.scale_factor, shift_factor=a.shift_factor)
    ae = AutoEncoder(params)
    ae.load_state_dict(load_file(path / "ae.safetensors"), strict=True)
    s = ours.net.shape
    config = BagelConfig(visual_gen=True, visual_und=True, llm_config=llm, vit_config=vit, vae_config=params,
                         vit_max_num_patch_per_side=s.vit_max_patches, connector_act=s.connector_act,
                         latent_patch_size=s.latent_patch_size, max_latent_size=s.max_latent_size)
    ref = Bagel(Qwen2ForCausalLM(llm), SiglipVisionModel(vit), config)
    ref.vit_model.vision_model.embeddings.convert_conv2d_to_linear(vit)
    missing, unexpected = ref.load_state_dict(load_file(path / "ema.safetensors"), strict=False)
    missing = [k for k in missing if "inv_freq" not in k]
    if missing or unexpected:
        sys.exit(f"the reference does not read our ema.safetensors: missing {missing[:3]}, unexpected {unexpected[:3]}")
    ref = ref.float().eval()
    ref.language_model.model.enable_taylorseer = False
    return ref, ae


class Reference:
    """The reference's own context-building calls (its inferencer's), one sample at a time."""

    def __init__(self, ref, ours):
        from modeling.bagel.qwen2_navit import NaiveCache
        self.ref, self.ours, self.cache = ref, ours, NaiveCache
        self.ids = dict(bos_token_id=ours.special["bos"], eos_token_id=ours.special["eos"],
                        start_of_image=ours.special["start_of_image"], end_of_image=ours.special["end_of_image"])

    def empty(self):
        layers = self.ref.config.llm_config.num_hidden_layers
        return {"kv_lens": [0], "ropes": [0], "past_key_values": self.cache(layers)}

    def text(self, text, ctx):
        gi, kv, rp = self.ref.prepare_prompts(curr_kvlens=ctx["kv_lens"], curr_rope=ctx["ropes"], prompts=[text],
                                              tokenizer=self.ours.tok, new_token_ids=self.ids)
        return {"past_key_values": self.ref.forward_cache_update_text(ctx["past_key_values"], **gi), "kv_lens": kv,
                "ropes": rp}

    def velocity(self, prompt, tokens, t, scale, size):
        c = self.text(prompt, self.empty())
        gi = self.ref.prepare_vae_latent(curr_kvlens=c["kv_lens"], curr_rope=c["ropes"], image_sizes=[(size, size)],
                                         new_token_ids=self.ids)
        cf = self.ref.prepare_vae_latent_cfg(curr_kvlens=[0], curr_rope=[0], image_sizes=[(size, size)])
        gi.pop("packed_init_noises")
        lo, hi = self.ours.s.cfg_interval
        return self.ref._forward_flow(
            x_t=tokens, timestep=torch.tensor([t] * len(tokens)), past_key_values=c["past_key_values"],
            cfg_text_scale=scale if lo < t <= hi else 1.0, cfg_img_scale=1.0,
            cfg_text_past_key_values=self.empty()["past_key_values"],
            cfg_text_packed_position_ids=cf["cfg_packed_position_ids"],
            cfg_text_packed_query_indexes=cf["cfg_packed_query_indexes"],
            cfg_text_key_values_lens=cf["cfg_key_values_lens"],
            cfg_text_packed_key_value_indexes=cf["cfg_packed_key_value_indexes"], cfg_renorm_min=0.0,
            cfg_renorm_type="global", **gi)

    def answer_logits(self, pixels, question):
        c = self.empty()
        gi, kv, rp = self.ref.prepare_vit_images(curr_kvlens=c["kv_lens"], curr_rope=c["ropes"], images=[None],
                                                 transforms=lambda _: pixels, new_token_ids=self.ids)
        c = self.text(question, {"past_key_values": self.ref.forward_cache_update_vit(c["past_key_values"], **gi),
                                 "kv_lens": kv, "ropes": rp})
        st = self.ref.prepare_start_tokens(c["kv_lens"], c["ropes"], self.ids)
        lm = self.ref.language_model
        out = lm.forward_inference(
            packed_query_sequence=lm.model.embed_tokens(st["packed_start_tokens"]),
            query_lens=torch.ones(1, dtype=torch.int), packed_query_position_ids=st["packed_query_position_ids"],
            packed_query_indexes=torch.tensor([c["kv_lens"][0]]), past_key_values=c["past_key_values"],
            key_values_lens=st["key_values_lens"], packed_key_value_indexes=st["packed_key_value_indexes"],
            update_past_key_values=False, is_causal=True, mode="und")
        return lm.lm_head(out.packed_query_sequence)[0]


def compare(ours, ref: Reference, ae) -> dict[str, float]:
    """Relative max differences, ours vs the reference."""
    from models.bagel_net import patchify
    rel = lambda a, b: float((a - b).abs().max() / b.abs().max())  # noqa: E731
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, ours.ae.z_channels, ours.latent_side, ours.latent_side, generator=g)
    prompt, out = "a photo of two blue squares", {}
    past, mask = ours._prompt_context([prompt])
    for t, scale in ((0.9, 1.0), (0.9, 4.0), (0.3, 4.0)):
        mine = patchify(ours.velocity(x, t, past, mask, scale), ours.patch)[0]
        out[f"velocity t={t} cfg={scale}"] = rel(mine, ref.velocity(prompt, patchify(x, ours.patch)[0], t, scale,
                                                                     ours.s.image_size))
    image = np.random.default_rng(1).integers(0, 256, (1, ours.s.image_size, ours.s.image_size, 3), dtype=np.uint8)
    pixels = torch.from_numpy(image).permute(0, 3, 1, 2).float() / 127.5 - 1
    pixels = torch.nn.functional.interpolate(pixels, size=(ours.vit_size,) * 2, mode="bicubic",
                                             align_corners=False).clamp(-1, 1)[0]
    question = ours.templates["answer"].format(question="is there a circle?")
    hidden, *_ = ours._prefill([ours._turn(question)], ours.image_features(image))
    out["answer logits"] = rel(ours.net.language_model.lm_head(hidden[:, -1])[0], ref.answer_logits(pixels, question))
    out["VAE decode"] = rel(ours.vae.decode(x / ours.ae.scale_factor + ours.ae.shift_factor).sample, ae.decode(x))
    z = torch.randn(1, 3, ours.s.image_size, ours.s.image_size, generator=g)
    out["VAE encoder mean"] = rel(ours.vae.encode(z).latent_dist.mean, ae.encoder(z)[:, :ours.ae.z_channels])
    return out


def main(tmp: str) -> int:
    from fixtures import bagel_like

    from models.loading import load_adapter
    _register_default_rope()
    path = bagel_like.save(Path(tmp) / "tiny_bagel", seed=3)
    ours = load_adapter(path)
    ref, ae = reference_model(path, ours)
    with torch.no_grad():
        diffs = compare(ours, Reference(ref, ours), ae)
    for name, d in diffs.items():
        print(f"{name:28s} max |ours - reference| / max |reference| = {d:.2e}")
    return int(max(diffs.values()) > TOLERANCE)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
