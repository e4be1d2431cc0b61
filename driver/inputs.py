"""What a user points the job at, read with one clear line per mistake (UserError): prompt files and model
directories, and whether every prompt fits the model's context."""

from __future__ import annotations

import json
from pathlib import Path

from driver.cli import UserError
from models import loading
from models.toy import EMBEDDED
from rewards.rubric import SCHEMA_INSTRUCTION
from toyworld.prompts import SPLITS, TAGS, load_split
from toyworld.scene import COLORS, SHAPES


def _check_record(rec, where: str) -> dict:
    if not isinstance(rec, dict) or not {"tag", "include", "prompt"} <= rec.keys():
        raise UserError(f"{where}: expected a GenEval record with tag, include and prompt")
    if rec["tag"] not in TAGS:
        raise UserError(f"{where}: unknown tag {rec['tag']!r}; valid: {', '.join(TAGS)}")
    for clause in rec["include"] + rec.get("exclude", []):
        if clause.get("class") not in SHAPES or clause.get("color", COLORS[0]) not in COLORS:
            raise UserError(f"{where}: clause {clause} names a class or colour outside the toy world "
                            f"(classes: {', '.join(SHAPES)}; colours: {', '.join(COLORS)})")
    return rec


def load_prompts(split: str) -> list[dict]:
    """A built-in split by name, or a GenEval-format .jsonl file whose classes and colours the toy world knows."""
    if split in SPLITS:
        metas = load_split(split)
    else:
        path = Path(split)
        if not path.is_file():
            raise UserError(f"split {split!r} is neither a built-in split ({', '.join(SPLITS)}) nor a file")
        metas = []
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}: line {n} is not valid JSON ({e.msg})") from None
            metas.append(_check_record(rec, f"{path}: line {n}"))
    if not metas:
        raise UserError(f"split {split!r} has no prompts")
    return metas


def load_adapter(checkpoint: str, device: str = "auto", understanding: str = ""):
    """A model directory through the backend registry (models/loading.py); device="meta" reads its structure
    only (a driver's checks: a 7B model is not loaded into the driver)."""
    path = Path(checkpoint)
    if not any((path / f).is_file() for f in ("config.json", "model_index.json")):
        raise UserError(f"checkpoint {checkpoint!r} not found: expected a directory with config.json (or a flow "
                        f"model's model_index.json) (the embedded model is {EMBEDDED})")
    try:
        return loading.load_adapter(path, device=device, understanding=understanding)
    except Exception as e:  # a user's directory: any failure to read it (truncated weights, bad JSON) is theirs
        first = (str(e).splitlines() or [type(e).__name__])[0]
        raise UserError(f"checkpoint {checkpoint!r} could not be loaded ({type(e).__name__}: {first})") from None


def check_prompts(adapter, metas: list[dict], where: str, max_new_tokens: int) -> None:
    """Every prompt must fit the model's context in each of its uses (image, rubric, fallback question)."""
    if not adapter.capabilities.understanding:
        return  # an SD3/FLUX pipeline judged by another model: no rubric passes through the policy's context
    for n, meta in enumerate(metas, start=1):
        needed = adapter.positions_needed(meta["prompt"], SCHEMA_INSTRUCTION, max_new_tokens)
        if needed > adapter.max_positions:
            raise UserError(f"{where}: prompt {n} ({meta['prompt'][:40]!r}...) needs {needed} sequence positions, "
                            f"the model has {adapter.max_positions}: shorten it (or lower rubric.max_new_tokens)")
