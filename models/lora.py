"""LoRA adapters through peft, for every backend (`model.lora`): the learner trains the adapters only, the weight
sync sends only them, the rollouts hold the same adapters over their frozen base (unmerged: the base is never
re-materialised), and the frozen introspector's base is the reference as it is. B starts at zero, so a fresh
adapter changes nothing.

peft's `inject_adapter_in_model` puts the LoRA layers into the adapter's own module in place (no PeftModel wrapper):
every adapter method keeps working, and the trainable parameters are the ones named `lora_`. Saved: `adapter/`
in peft's layout (adapter_config.json + adapter_model.safetensors, with the base model's path), and on request
`merged/`, the base with W + (alpha / r) B A folded in, loadable by plain transformers / diffusers.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

ADAPTER_DIR, MERGED_DIR, BASE_FILE = "adapter", "merged", "meta_ttrl_lora.json"


@dataclass
class LoraSettings:
    rank: int = 0  # 0: off (full fine-tuning)
    alpha: float = 16.0  # scale alpha / rank
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=list)  # peft's suffix match; empty: the family's default
    export_merged: bool = False  # final/merged: base + adapters folded, loadable by plain transformers/diffusers


class LoraTargetError(ValueError):
    pass


def linear_names(module: torch.nn.Module) -> list[str]:
    return sorted({n.rsplit(".", 1)[-1] for n, m in module.named_modules() if isinstance(m, torch.nn.Linear)})


def attach(adapter, s: LoraSettings, base_path: str = "") -> None:
    """LoRA layers into `adapter.module` on `s.target_modules` (or the backend's `lora_targets`); the adapter's
    `lora` is set, so its trainable parameters become the adapters'. `base_path`: where the base came from."""
    from peft import LoraConfig, inject_adapter_in_model

    if adapter.lora:
        raise ValueError("this model already carries LoRA adapters (a LoRA checkpoint): leave model.lora.rank=0 to "
                         "train them further")
    targets = list(s.target_modules) or adapter.lora_targets
    config = LoraConfig(r=s.rank, lora_alpha=s.alpha, lora_dropout=s.dropout, target_modules=targets)
    try:
        inject_adapter_in_model(config, adapter.module)
    except ValueError as e:
        if "not found in the base model" not in str(e) and "did not match" not in str(e):
            raise
        raise LoraTargetError(f"model.lora.target_modules {targets} match no module of "
                              f"{type(adapter.module).__name__}; its linear layers include: "
                              f"{', '.join(linear_names(adapter.module)[:24])}") from None
    adapter.lora, adapter.base_path = s, str(base_path)  # peft put the adapters on their base layers' devices


def with_lora(adapter, s, base_path: str):
    """`adapter` with LoRA adapters put in when `s.rank` > 0 (a policy the learner trains or a rollout samples)."""
    if s.rank:
        attach(adapter, LoraSettings(s.rank, s.alpha, s.dropout, list(s.target_modules), s.export_merged), base_path)
    return adapter


def merged_module(module: torch.nn.Module) -> torch.nn.Module:
    """A copy of `module` with every LoRA layer folded into its base weight and removed."""
    from peft.tuners.lora import LoraLayer

    merged = copy.deepcopy(module)
    for name, layer in list(merged.named_modules()):
        if isinstance(layer, LoraLayer):
            layer.merge()
            parent_name, _, child = name.rpartition(".")
            parent = merged.get_submodule(parent_name) if parent_name else merged
            setattr(parent, child, layer.get_base_layer())
    return merged


def save(adapter, path: str | Path, base_path: str) -> None:
    """`path`/adapter (peft layout: the adapters, their config, the base's path) and, with `export_merged`,
    `path`/merged (the adapter's own layout, adapters folded in)."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    s, out = adapter.lora, Path(path)
    (out / ADAPTER_DIR).mkdir(parents=True, exist_ok=True)
    tensors = get_peft_model_state_dict(adapter.module)
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, out / ADAPTER_DIR /
              "adapter_model.safetensors")
    config = {"peft_type": "LORA", "r": s.rank, "lora_alpha": s.alpha, "lora_dropout": s.dropout,
              "target_modules": list(s.target_modules) or adapter.lora_targets, "base_model_name_or_path": base_path}
    (out / ADAPTER_DIR / "adapter_config.json").write_text(json.dumps(config, indent=1))
    (out / BASE_FILE).write_text(json.dumps({"base": base_path, "lora": config}, indent=1))
    if s.export_merged:
        adapter.save_merged(out / MERGED_DIR)


def is_lora_dir(path: str | Path) -> bool:
    return (Path(path) / BASE_FILE).is_file()


def load_trained(path: str | Path, load_base, base_exists):
    """A LoRA checkpoint (`save`'s layout): its base through `load_base(base_path)` (refused in one line where
    `base_exists(base_path)` is false), the adapters put in and their trained weights loaded."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = Path(path)
    meta = json.loads((path / BASE_FILE).read_text())
    base, cfg = meta["base"], meta["lora"]
    if not base_exists(base):
        raise FileNotFoundError(f"the LoRA checkpoint {path} names its base model {base}, which is not there: put "
                                f"the base back, or load {path / MERGED_DIR} (merged weights) if it was exported")
    adapter = load_base(base)
    targets = cfg["target_modules"]
    attach(adapter, LoraSettings(cfg["r"], cfg["lora_alpha"], cfg["lora_dropout"],
                                 [] if targets == adapter.lora_targets else list(targets)), base)
    if adapter.device.type == "meta":  # a driver's check: structure only
        return adapter
    tensors = load_file(path / ADAPTER_DIR / "adapter_model.safetensors", device=str(adapter.device))
    result = set_peft_model_state_dict(adapter.module, tensors)
    if result.unexpected_keys:
        raise ValueError(f"{path / ADAPTER_DIR} holds tensors the model has no place for: {result.unexpected_keys[:3]}")
    return adapter
