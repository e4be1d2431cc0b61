"""One entry point for every model directory: the backend registry, name -> (recognises a directory, loads it).
The first backend that recognises a directory loads it; the Janus adapter takes the rest and says clearly when a
directory is not a Janus model."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple

import torch

# a model directory holds one of these (a transformers model, a diffusers pipeline, a BAGEL layout)
MODEL_FILES = ("config.json", "model_index.json", "llm_config.json")


class Backend(NamedTuple):
    recognises: Callable[[Path], bool]
    load: Callable  # (path, device, dtype, understanding) -> adapter


def _flow(path, device, dtype, understanding):
    from models.diffusion import DiffusionAdapter
    return DiffusionAdapter.from_pretrained(path, device=device, dtype=dtype, understanding=understanding or None)


def _janus(path, device, dtype, understanding):
    from models.janus import JanusAdapter
    return JanusAdapter.from_pretrained(path, device=device, dtype=dtype)


def _emu3(path, device, dtype, understanding):
    from models.emu3 import Emu3Adapter
    return Emu3Adapter.from_pretrained(path, device=device, dtype=dtype)


def _bagel(path, device, dtype, understanding):
    from models.bagel import BagelAdapter
    return BagelAdapter.from_pretrained(path, device=device, dtype=dtype)


def _is_flow_dir(path: Path) -> bool:
    return (Path(path) / "model_index.json").is_file()


def _is_emu3_dir(path: Path) -> bool:
    import json
    config = Path(path) / "config.json"
    try:
        return config.is_file() and json.loads(config.read_text()).get("model_type") == "emu3"
    except (json.JSONDecodeError, OSError):
        return False  # the Janus backend's checks name what is wrong with the file


def _is_bagel_dir(path: Path) -> bool:
    from models.bagel_layout import is_bagel_dir
    return is_bagel_dir(Path(path))


BACKENDS = {"flow": Backend(_is_flow_dir, _flow), "emu3": Backend(_is_emu3_dir, _emu3),
            "bagel": Backend(_is_bagel_dir, _bagel),
            "janus": Backend(lambda path: True, _janus)}


def is_model_dir(path: str | Path) -> bool:
    return any((Path(path) / f).is_file() for f in MODEL_FILES)


def backend_of(path: str | Path) -> str:
    return next(name for name, b in BACKENDS.items() if b.recognises(Path(path)))


def load_adapter(path: str | Path, device: str = "auto", dtype: str | torch.dtype = "auto",
                 understanding: str | Path | None = None):
    """`understanding`: the Qwen2.5-VL of a flow pipeline that has none (SD3, FLUX); unused by other models. A LoRA
    checkpoint (models/lora.py's layout) loads its base, then its adapters."""
    from models import lora
    if lora.is_lora_dir(path):
        return lora.load_trained(path, lambda base: load_adapter(base, device, dtype, understanding), is_model_dir)
    return BACKENDS[backend_of(path)].load(Path(path), device, dtype, understanding)


def _transformers_judge(path, dtype, gpu_memory: float):
    adapter = load_adapter(path, dtype=dtype)
    adapter.freeze()
    return adapter


def _vllm_judge(path, dtype, gpu_memory: float):
    from models.vllm_introspector import VLLMIntrospector  # the optional GPU extra, imported only when chosen
    return VLLMIntrospector.from_pretrained(path, gpu_memory)


# reward.backend: how a separate judge model (reward.model_path) is served -> (path, dtype, GPU share) -> model
JUDGE_BACKENDS = {"transformers": _transformers_judge, "vllm": _vllm_judge}
