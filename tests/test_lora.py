"""LoRA through peft (models/lora.py, model.lora): only the adapters train and travel, a fresh adapter changes
nothing, a LoRA checkpoint reloads to the same policy, the merged export loads with plain transformers / diffusers
and draws the same images, and bad input is one line; (slow) a LoRA job resumes to the same weights."""
import json

import pytest
import torch

from models import lora
from models.loading import load_adapter

PROMPTS = ["a red apple", "two blue cups"]


@pytest.fixture
def pro_dir(tmp_path):
    from models.janus import JanusAdapter
    from models.janus_formats import janus_pro_format
    from tests.fixtures.janus_pro_like import build
    model, tok = build(seed=0, image_size=64)
    JanusAdapter(model, tok, **janus_pro_format(tok)).save_pretrained(tmp_path / "base")
    return tmp_path / "base"


def nudged(adapter, scale: float = 0.05) -> None:
    """Trained-looking adapters: B away from zero."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in adapter.trainable_parameters():
            if "lora_B" in name:
                p.add_(scale * torch.randn(p.shape, generator=g))


def test_only_adapters_train_and_a_fresh_adapter_changes_nothing(pro_dir):
    a = load_adapter(pro_dir)
    full = {n: p.numel() for n, p in a.trainable_parameters()}
    out = a.sample(PROMPTS, 1, 3.0, 1.0, torch.Generator().manual_seed(0))
    lora.attach(a, lora.LoraSettings(rank=4, alpha=8), str(pro_dir))
    named = a.trainable_parameters()
    assert named and all(".lora_" in n and "language_model" in n for n, _ in named)
    assert sum(p.numel() for _, p in named) < 0.25 * sum(full.values())
    assert (a.image_logprobs(PROMPTS, out.tokens, 3.0, 1.0) - out.logprobs).abs().max() <= 1e-5  # B = 0
    nudged(a)
    assert (a.image_logprobs(PROMPTS, out.tokens, 3.0, 1.0) - out.logprobs).abs().max() > 1e-3


def test_a_lora_checkpoint_reloads_and_the_merged_export_is_plain_and_draws_the_same_images(pro_dir, tmp_path):
    from transformers import JanusForConditionalGeneration

    a = lora.with_lora(load_adapter(pro_dir), lora.LoraSettings(rank=4, alpha=8, export_merged=True), str(pro_dir))
    nudged(a)
    a.save_pretrained(tmp_path / "final")
    config = json.loads((tmp_path / "final" / "adapter" / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["base_model_name_or_path"] == str(pro_dir)
    draw = lambda m: m.sample(PROMPTS, 2, 3.0, 1.0, torch.Generator().manual_seed(5))  # noqa: E731
    mine = draw(a)
    again = load_adapter(tmp_path / "final")
    assert again.lora.rank == 4 and torch.equal(draw(again).tokens, mine.tokens)
    merged = load_adapter(tmp_path / "final" / "merged")
    assert merged.lora is None and torch.equal(draw(merged).tokens, mine.tokens)
    assert (draw(merged).images == mine.images).all()
    plain = JanusForConditionalGeneration.from_pretrained(tmp_path / "final" / "merged")
    assert not any(".lora_" in n for n, _ in plain.named_parameters())


def test_flow_transformer_adapters_and_their_merged_pipeline(tmp_path):
    from diffusers import QwenImageTransformer2DModel

    from fixtures import flow_like
    path = flow_like.build(tmp_path / "flow", trained_steps=(0, 2))
    a = load_adapter(path)
    full = sum(p.numel() for _, p in a.trainable_parameters())
    lora.attach(a, lora.LoraSettings(rank=2, alpha=4, export_merged=True), str(path))
    named = a.trainable_parameters()
    assert named and all(n.startswith("transformer.") and ".lora_" in n for n, _ in named)
    assert sum(p.numel() for _, p in named) < full
    nudged(a, 0.5)
    out = a.sample(PROMPTS, 1, 4.0, generator=a.generator(3))
    a.save_pretrained(tmp_path / "final")
    merged = load_adapter(tmp_path / "final" / "merged")
    assert torch.allclose(merged.sample(PROMPTS, 1, 4.0, generator=merged.generator(3)).tokens, out.tokens, atol=1e-4)
    plain = QwenImageTransformer2DModel.from_pretrained(tmp_path / "final" / "merged" / "transformer")
    assert not any(".lora_" in n for n, _ in plain.named_parameters())


def test_bad_lora_input_is_one_line(pro_dir, tmp_path):
    a = load_adapter(pro_dir)
    with pytest.raises(lora.LoraTargetError, match=r"model.lora.target_modules \['qkv_fused'\] match no module of "
                                                   r"JanusForConditionalGeneration; its linear layers include: "):
        lora.attach(a, lora.LoraSettings(rank=2, target_modules=["qkv_fused"]))
    b = lora.with_lora(load_adapter(pro_dir), lora.LoraSettings(rank=2), str(pro_dir))
    with pytest.raises(ValueError, match="already carries LoRA adapters"):
        lora.attach(b, lora.LoraSettings(rank=2))
    b.save_pretrained(tmp_path / "final")
    meta = json.loads((tmp_path / "final" / lora.BASE_FILE).read_text())
    (tmp_path / "final" / lora.BASE_FILE).write_text(json.dumps(meta | {"base": str(tmp_path / "gone")}))
    with pytest.raises(FileNotFoundError, match="names its base model .*gone, which is not there"):
        load_adapter(tmp_path / "final")


@pytest.mark.slow  # three short jobs (~60 s)
def test_a_lora_job_trains_adapters_and_resumes_to_the_same_weights(ray_local, tmp_path):
    from safetensors.torch import load_file

    from launch import meta_ttrl
    from test_meta_ttrl import SHORT
    run = SHORT + ["trainer.async_mode=false", "run.checkpoint_every=2", "run.wandb=disabled", "data.heldout=",
                   "run.grid_prompts=0", "model.lora.rank=4", "model.lora.alpha=8"]
    meta_ttrl.main(run + ["trainer.steps=4", f"run.dir={tmp_path / 'straight'}"])
    meta_ttrl.main(run + ["trainer.steps=2", f"run.dir={tmp_path / 'parts'}"])
    meta_ttrl.main(run + ["trainer.steps=4", f"run.dir={tmp_path / 'parts'}", "run.resume=auto"])
    metrics = [json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
    assert all(m["updates"] >= 1 for m in metrics) and metrics[-1]["kl"] > 0
    a, b = (load_file(tmp_path / n / "final" / "adapter" / "adapter_model.safetensors") for n in ("straight", "parts"))
    assert a.keys() == b.keys() and a and all(torch.equal(a[k], b[k]) for k in a)
    assert load_adapter(tmp_path / "straight" / "final").lora.rank == 4
