"""Readers of the benchmarks' prompt files; each malformed line is a BenchmarkError naming the file and line.

- GenEval-format .jsonl (GenEval, its long-prompt variant, GenEval++, the toy world's files): one record a line,
  {"tag", "include": [{"class", "count"[, "color"][, "position": [rel, j]][, "region"][, "size"]}],
  ["exclude": [{"class", "count"}]], "prompt"}.
- plain text (T2I-CompBench's category files, any user's list): one prompt a line, blank lines skipped.
- DPG-Bench's prompts.jsonl: {"id", "prompt"} a line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from benchmarks.base import BenchmarkError
from rewards.geneval import RELATIONS


def _lines(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise BenchmarkError(f"{path}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise BenchmarkError(f"{path}: cannot be read ({e.strerror})") from None
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield n, line


def _json_lines(path: Path):
    for n, line in _lines(path):
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as e:
            raise BenchmarkError(f"{path}: line {n} is not valid JSON ({e.msg})") from None


def _clause_problem(clause, n_include: int, index: int | None) -> str:
    """What is wrong with an include/exclude clause ("" when nothing)."""
    if not isinstance(clause, dict) or not isinstance(clause.get("class"), str) or not clause["class"]:
        return f"clause {clause!r} needs a 'class' name"
    count = clause.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        return f"clause {clause} has count {count!r}: a whole number >= 1"
    if "color" in clause and not isinstance(clause["color"], str):
        return f"clause {clause} has a colour that is not a word"
    if "position" in clause:
        pos = clause["position"]
        ok = (isinstance(pos, list) and len(pos) == 2 and pos[0] in RELATIONS and isinstance(pos[1], int)
              and index is not None and 0 <= pos[1] < n_include and pos[1] != index)
        if not ok:
            return f"clause {clause} has position {pos!r}: [one of {', '.join(RELATIONS)}, another clause's index]"
    return ""


def check_geneval_record(rec, where: str, vocabulary: Callable[[dict], str] | None = None) -> dict:
    """A GenEval-format record, with each clause's count defaulted to 1; `vocabulary(clause)` names a class or
    colour the benchmark does not know ("" when fine)."""
    if not isinstance(rec, dict) or not {"tag", "include", "prompt"} <= rec.keys():
        raise BenchmarkError(f"{where}: expected a GenEval record with tag, include and prompt")
    if not isinstance(rec["prompt"], str) or not rec["prompt"].strip():
        raise BenchmarkError(f"{where}: the prompt must be a non-empty string")
    if not isinstance(rec["tag"], str) or not isinstance(rec["include"], list) or not rec["include"]:
        raise BenchmarkError(f"{where}: tag must be a string and include a non-empty list of clauses")
    exclude = rec.get("exclude", [])
    if not isinstance(exclude, list):
        raise BenchmarkError(f"{where}: exclude must be a list of clauses")
    for i, clause in enumerate(rec["include"] + exclude):
        problem = _clause_problem(clause, len(rec["include"]), i if i < len(rec["include"]) else None)
        problem = problem or (vocabulary(clause) if vocabulary else "")
        if problem:
            raise BenchmarkError(f"{where}: {problem}")
    clauses = [{"count": 1, **c} for c in rec["include"]]
    return {**rec, "include": clauses, **({"exclude": [{"count": 1, **c} for c in exclude]} if exclude else {})}


def read_geneval(path: Path, tags: tuple[str, ...] = (), vocabulary=None) -> list[dict]:
    """GenEval-format records; `tags`: the tags the benchmark defines (empty: any)."""
    records = []
    for n, rec in _json_lines(path):
        rec = check_geneval_record(rec, f"{path}: line {n}", vocabulary)
        if tags and rec["tag"] not in tags:
            raise BenchmarkError(f"{path}: line {n}: unknown tag {rec['tag']!r}; valid: {', '.join(tags)}")
        records.append(rec)
    return records


def read_text(path: Path, tag: str) -> list[dict]:
    """One prompt a line (surrounding blanks stripped), all of category `tag`."""
    return [{"prompt": line.strip(), "tag": tag} for _, line in _lines(path)]


def read_dpg(path: Path) -> list[dict]:
    """DPG-Bench's {"id", "prompt"} lines; the category comes with the question file (eval.dpg_questions)."""
    records = []
    for n, rec in _json_lines(path):
        if not isinstance(rec, dict) or not isinstance(rec.get("prompt"), str) or not rec["prompt"].strip():
            raise BenchmarkError(f"{path}: line {n}: expected {{\"id\", \"prompt\"}} with a non-empty prompt")
        records.append({"id": str(rec.get("id", n - 1)), "prompt": rec["prompt"].strip(), "tag": "dpg"})
    return records
