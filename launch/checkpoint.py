"""Checkpoints of a run: one directory per step under <run>/checkpoints/, written atomically and verified.

    checkpoints/step_000010/manifest.json        {"format": 1, "step": 10, "files": {name: sha256}}
    checkpoints/step_000010/<role>.safetensors   tensors of one holder (weights, optimizer moments, RNG states)
    checkpoints/step_000010/<role>.json          everything else of it (counters, caches, RNG tuples)

A checkpoint is written into a hidden temp directory, every file fsynced, then renamed into place, so a reader
sees all of it or none. Loading checks every file's sha256 against the manifest; a truncated or tampered
checkpoint is skipped with a warning naming the bad file, and the newest valid one is used. No pickle: tensors
go through safetensors, the rest through JSON, so a checkpoint from an untrusted path cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

FORMAT = 1
State = tuple[dict[str, torch.Tensor], dict]  # (tensors, JSON-able rest) of one state holder


class CheckpointError(Exception):
    """A checkpoint that cannot be trusted (missing file, checksum mismatch, unreadable manifest)."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, write) -> None:
    write(path)
    _fsync(path)


def save(root: Path, step: int, states: dict[str, State], keep: int) -> Path:
    """Write `states` (holder name -> (tensors, rest)) as checkpoint `step`; keep the newest `keep`."""
    final, tmp = root / f"step_{step:06d}", root / f".step_{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files = {}
    for name, (tensors, rest) in states.items():
        tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        _write_file(tmp / f"{name}.safetensors", lambda p: save_file(tensors, str(p)))
        _write_file(tmp / f"{name}.json", lambda p: p.write_text(json.dumps(rest)))
        files |= {f"{name}.safetensors": _sha256(tmp / f"{name}.safetensors"),
                  f"{name}.json": _sha256(tmp / f"{name}.json")}
    manifest = {"format": FORMAT, "step": step, "files": files}
    _write_file(tmp / "manifest.json", lambda p: p.write_text(json.dumps(manifest, indent=1)))
    _fsync(tmp)
    shutil.rmtree(final, ignore_errors=True)  # a re-run of the same step replaces it
    tmp.rename(final)
    _fsync(root)
    for old in sorted(root.glob("step_*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def verify(path: Path) -> dict:
    """The manifest of a checkpoint whose every file matches its checksum; CheckpointError naming the bad file."""
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        files, step = manifest["files"], int(manifest["step"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path / 'manifest.json'}: unreadable manifest ({e})") from e
    if manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path / 'manifest.json'}: format {manifest.get('format')!r}, expected {FORMAT}")
    for name, digest in files.items():
        if not (path / name).is_file():
            raise CheckpointError(f"{path / name}: missing")
        if _sha256(path / name) != digest:
            raise CheckpointError(f"{path / name}: checksum mismatch (truncated or modified)")
    return {"step": step, "files": files}


def load(path: Path) -> tuple[int, dict[str, State]]:
    manifest = verify(path)
    names = sorted({n.rsplit(".", 1)[0] for n in manifest["files"]})
    return manifest["step"], {n: (load_file(str(path / f"{n}.safetensors")),
                                  json.loads((path / f"{n}.json").read_text())) for n in names}


def load_latest(root: Path) -> tuple[int, dict[str, State]] | None:
    """The newest checkpoint under `root` that verifies, warning about each newer one that does not."""
    for path in sorted(root.glob("step_*"), reverse=True):
        try:
            return load(path)
        except CheckpointError as e:
            warnings.warn(f"skipping checkpoint {path.name}: {e}", stacklevel=2)
    return None
