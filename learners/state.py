"""What an actor puts in a checkpoint, as (tensors, JSON-able rest) pairs for `learners.checkpoint` (no pickle).

Pure helpers (no Ray): RNG states (torch, numpy, python, torch.Generator), optimizer and scheduler state, and
named tensors under a prefix. Each `*_state` has a `load_*` inverse that restores the object bitwise. Weight
and optimizer tensors are views of the live ones (no copy of a large model): write them before training on.
"""

from __future__ import annotations

import random

import numpy as np
import torch

State = tuple[dict[str, torch.Tensor], dict]


def merge(*states: State) -> State:
    tensors, rest = {}, {}
    for t, r in states:
        tensors |= t
        rest |= r
    return tensors, rest


def rng_state(generator: torch.Generator | None = None) -> State:
    """The process's torch, numpy and python RNG states, and `generator`'s if given."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    tensors = {"rng.torch": torch.get_rng_state(), "rng.numpy": torch.from_numpy(keys.astype(np.int64))}
    if generator is not None:
        tensors["rng.generator"] = generator.get_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors |= {f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())}
    rest = {"rng": {"numpy": [kind, pos, has_gauss, cached], "python": [version, list(internal), gauss_next]}}
    return tensors, rest


def load_rng_state(state: State, generator: torch.Generator | None = None) -> None:
    tensors, rest = state
    torch.set_rng_state(tensors["rng.torch"])
    kind, pos, has_gauss, cached = rest["rng"]["numpy"]
    np.random.set_state((kind, tensors["rng.numpy"].numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = rest["rng"]["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if generator is not None:
        generator.set_state(tensors["rng.generator"])
    cuda_keys = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    cuda = [tensors[k] for k in cuda_keys]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)


def named_tensors(prefix: str, named: list[tuple[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{name}": t.detach() for name, t in named}


def load_named_tensors(tensors: dict[str, torch.Tensor], prefix: str, named: list[tuple[str, torch.Tensor]]) -> None:
    """Copy `prefix.<name>` tensors into `named` in place; every name must be present with the same shape."""
    missing = [n for n, _ in named if f"{prefix}.{n}" not in tensors]
    if missing:
        raise KeyError(f"checkpoint lacks {prefix} tensor {missing[0]!r} ({len(missing)} missing)")
    with torch.no_grad():
        for name, t in named:
            saved = tensors[f"{prefix}.{name}"]
            if saved.shape != t.shape:
                raise ValueError(f"checkpoint {prefix} tensor {name!r} has shape {tuple(saved.shape)}, "
                                 f"the model {tuple(t.shape)}")
            t.copy_(saved)


def optimizer_state(opt: torch.optim.Optimizer) -> State:
    """Per-parameter tensors as `opt.<index>.<key>`; param_groups (hyper-parameters) as JSON."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for index, per_param in sd["state"].items():
        for key, value in per_param.items():
            if torch.is_tensor(value):
                tensors[f"opt.{index}.{key}"] = value
            else:
                scalars[f"{index}.{key}"] = value
    return tensors, {"optimizer": {"param_groups": sd["param_groups"], "scalars": scalars}}


def load_optimizer_state(opt: torch.optim.Optimizer, state: State) -> None:
    tensors, rest = state
    per_param: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, index, name = key.split(".", 2)
            per_param.setdefault(int(index), {})[name] = value.clone()
    for key, value in rest["optimizer"]["scalars"].items():
        index, name = key.split(".", 1)
        per_param.setdefault(int(index), {})[name] = value
    opt.load_state_dict({"state": per_param, "param_groups": rest["optimizer"]["param_groups"]})
