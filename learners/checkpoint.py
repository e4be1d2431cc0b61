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


def begin(root: Path, step: int) -> Path:
    """A fresh hidden temp directory for checkpoint `step`: holders write into it, `commit` publishes it."""
    tmp = root / f".step_{step:06d}.tmp"
    for stale in Path(root).glob(".step_*.tmp"):  # left by a writer that was killed: never a valid checkpoint
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def write_state(tmp: Path, name: str, state: State) -> dict[str, str]:
    """One holder's files (fsynced) in the temp directory; returns {file: sha256} for the manifest. Actors call
    this themselves, so weights go to (shared) disk without passing through the driver."""
    tmp = Path(tmp)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state[0].items()}
    _write_file(tmp / f"{name}.safetensors", lambda p: save_file(tensors, str(p)))
    _write_file(tmp / f"{name}.json", lambda p: p.write_text(json.dumps(state[1])))
    return {f"{name}.safetensors": _sha256(tmp / f"{name}.safetensors"), f"{name}.json": _sha256(tmp / f"{name}.json")}


def commit(root: Path, tmp: Path, step: int, files: dict[str, str], keep: int) -> Path:
    """Write the manifest, rename the temp directory into place, and keep the newest `keep` checkpoints."""
    final = root / f"step_{step:06d}"
    manifest = {"format": FORMAT, "step": step, "files": files}
    _write_file(tmp / "manifest.json", lambda p: p.write_text(json.dumps(manifest, indent=1)))
    _fsync(tmp)
    old = root / f".step_{step:06d}.old"
    if final.exists():  # a re-run of the same step replaces it; the old one stays whole until the new is in place
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
    tmp.rename(final)
    _fsync(root)
    shutil.rmtree(old, ignore_errors=True)
    for old in sorted(root.glob("step_*"))[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def save(root: Path, step: int, states: dict[str, State], keep: int) -> Path:
    """Write `states` (holder name -> (tensors, rest)) as checkpoint `step`; keep the newest `keep`."""
    tmp = begin(root, step)
    files = {}
    for name, state in states.items():
        files |= write_state(tmp, name, state)
    return commit(root, tmp, step, files, keep)


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


def set_aside_newer(root: Path, step: int) -> list[Path]:
    """Move checkpoints newer than `step` to `root/abandoned/` (a resume from an older one starts a new line
    of history; the newer ones must not be resumed from later, and nothing is deleted)."""
    moved = []
    for path in sorted(Path(root).glob("step_*")):
        if int(path.name.split("_")[1]) > step:
            target = Path(root) / "abandoned" / path.name
            n = 1
            while target.exists():
                target, n = Path(root) / "abandoned" / f"{path.name}.{n}", n + 1
            target.parent.mkdir(exist_ok=True)
            path.rename(target)
            moved.append(target)
    return moved


def read_state(path: Path, name: str) -> State:
    """One holder's state from a checkpoint directory that `verify` accepted."""
    path = Path(path)
    return load_file(str(path / f"{name}.safetensors")), json.loads((path / f"{name}.json").read_text())


def load(path: Path) -> tuple[int, dict[str, State]]:
    manifest = verify(path)
    names = sorted({n.rsplit(".", 1)[0] for n in manifest["files"]})
    return manifest["step"], {n: read_state(path, n) for n in names}


def latest_valid(root: Path) -> Path | None:
    """The newest checkpoint directory under `root` that verifies, warning about each newer one that does not."""
    for path in sorted(Path(root).glob("step_*"), reverse=True):
        try:
            verify(path)
            return path
        except CheckpointError as e:
            warnings.warn(f"skipping checkpoint {path.name}: {e}", stacklevel=2)
    return None


def load_latest(root: Path) -> tuple[int, dict[str, State]] | None:
    path = latest_valid(root)
    return None if path is None else load(path)
