"""How a model is asked for a rubric and how its answer is read: one dialect per kind of writer.

- `toy`: the embedded toy model's one-line schema (rewards/rubric.py's SCHEMA_INSTRUCTION, the form it was
  pretrained on) and its strict `;` parser.
- `chat`: real chat VLMs (Janus-Pro, Qwen2.5-VL, a vLLM-served introspector). The instruction names the six
  dimensions, the output format and a worked example; the budget fits 16 questions; the parser reads what chat
  models actually emit around that format: numbered or bulleted lists, markdown (bold, headings, tables), JSON
  (fenced or bare, flat or grouped by dimension), "Q: ... A: ..." pairs and prose before and after.

The chat parser never guesses: a line with a question mark that lacks a yes/no answer or a known dimension is
refused with its reason (kept in `ChatRubric.refused`), prose without a question is ignored, and a text with no
readable item raises RubricParseError naming the first refusal.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Callable

from rewards.introspection import parse_strictly
from rewards.rubric import DIMENSIONS, SCHEMA_INSTRUCTION, RubricItem, RubricParseError

CHAT_INSTRUCTION = (
    "Write a rubric to check whether an image matches the text prompt below: yes/no questions about the image, "
    "each with the answer that an image matching the prompt gives.\n"
    "Dimensions: object (each object is present), attribute (colour, material, shape, texture of an object), "
    "count (how many of an object), spatial (where objects are, relative to each other or in the image), "
    "relation (interactions and comparisons, e.g. sizes), style (artistic style or medium).\n"
    "Ask only about what the prompt states, at most 16 questions, one per line, in the form:\n"
    "dimension | question | yes or no\n"
    'Example, for the prompt "two red apples to the left of a blue cup":\n'
    "object | Is there an apple in the image? | yes\n"
    "object | Is there a cup in the image? | yes\n"
    "count | Are there exactly two apples in the image? | yes\n"
    "attribute | Are the apples red? | yes\n"
    "attribute | Is the cup blue? | yes\n"
    "spatial | Are the apples to the left of the cup? | yes\n"
    "spatial | Are the apples to the right of the cup? | no\n"
    "Prompt:")
CHAT_MAX_NEW_TOKENS = 384  # 16 lines of ~20 tokens, with room for a preamble

# label words -> dimension; "spatial" wins over "relation" in "spatial relation", so it is looked up first
SYNONYMS = {
    "spatial": ("spatial", "position", "positions", "positional", "location", "layout", "placement", "arrangement"),
    "count": ("count", "counts", "counting", "number", "numbers", "quantity", "quantities", "numeracy"),
    "attribute": ("attribute", "attributes", "color", "colour", "colors", "colours", "material", "shape", "texture",
                  "appearance", "property", "properties"),
    "object": ("object", "objects", "presence", "existence", "entity", "entities", "subject", "subjects"),
    "relation": ("relation", "relations", "relationship", "relationships", "interaction", "interactions", "action",
                 "actions", "comparison", "comparisons"),
    "style": ("style", "styles", "medium", "aesthetic", "aesthetics", "artistic", "rendering"),
}
WORD_TO_DIMENSION = {w: dim for dim, words in SYNONYMS.items() for w in words}
ANSWER_WORDS = {"yes": "yes", "true": "yes", "no": "no", "false": "no"}
_MARKER = re.compile(r"^(?:[-*+\u2022]|\d+[.)]|\(\d+\)|[a-z][.)]|#+|>)\s*")
_ANSWER = re.compile(r"\b(yes|no|true|false)\b", re.IGNORECASE)
_BOTH = re.compile(r"\byes\s*(?:/|or|\|)\s*no\b|\bno\s*(?:/|or)\s*yes\b", re.IGNORECASE)
_NUMBERING = re.compile(r"^(?:q|question|item)\s*\d*$")
_LABEL = re.compile(r"^\[([^\]]+)\]\s*|^\(([^)]+)\)\s*|^([^:|\u2013\u2014?]{1,40}?)\s*(?::|\||\s[-\u2013\u2014]\s)\s*")
_KEYS = {"dimension": ("dimension", "category", "type", "aspect", "dim"), "question": ("question", "q", "text"),
         "answer": ("answer", "target", "expected", "expected_answer", "label", "a")}


@dataclass
class ChatRubric:
    items: list[RubricItem]
    refused: list[tuple[str, str]] = field(default_factory=list)  # (line, why)


def dimension_of(label: str) -> str | None:
    """The dimension a label names ("Spatial relationships", "**Colour**:", "object presence"), or None."""
    words = re.sub(r"[^a-z ]", " ", label.lower()).split()
    for dim in SYNONYMS:  # in priority order
        if any(WORD_TO_DIMENSION.get(w) == dim for w in words):
            return dim
    return None


def _clean(line: str) -> str:
    line = line.strip()
    for _ in range(3):  # "1. **Object**:" has a marker, then emphasis
        line = _MARKER.sub("", line.replace("**", "").replace("__", "").replace("`", "").strip())
    return " ".join(line.strip().strip("|").split())


def _answer(tail: str) -> str | None:
    """The yes/no after a question: the first answer word; refused when both are offered ("yes/no")."""
    if _BOTH.search(tail):
        return None
    m = _ANSWER.search(tail)
    return ANSWER_WORDS[m.group(1).lower()] if m else None


def _split_label(head: str) -> tuple[str | None, str]:
    """("object", "Is there a cat?") from "[object] Is there a cat?", "Object: Is...", "object | Is..."."""
    m = _LABEL.match(head)
    if not m:
        return None, head
    label = next(g for g in m.groups() if g is not None).strip()
    if _NUMBERING.match(label.lower()):  # "Q1: Is there ...?": a number, not a dimension
        return _split_label(head[m.end():])
    return label, head[m.end():]


def read_line(line: str, heading: str | None) -> RubricItem | str:
    """One item, or why the line is refused. `heading` is the dimension of the section the line is in."""
    text = _clean(line)
    head, _, tail = text.rpartition("?")
    target = _answer(tail)
    if target is None:
        return "no yes/no answer after the question" if not _BOTH.search(tail) else "both yes and no offered"
    label, question = _split_label(head)
    dim = dimension_of(label) if label else None
    if label and dim is None:
        if heading is None:
            return f"unknown dimension {label!r}; valid: {', '.join(DIMENSIONS)}"
        question = head  # "Is there a cat - a black one?" under a heading: no label, all question
    question = re.sub(r"^(?:question|q)\s*:\s*", "", question.strip(), flags=re.IGNORECASE)
    dim = dim or heading
    if dim is None:
        return "no dimension (label the line, or put it under a dimension heading)"
    if len(question.split()) < 2 or not question[:1].isalpha():
        return f"no question in {line.strip()!r}"
    return RubricItem(dim, question + "?", target)


def _json_items(data, heading: str | None = None) -> list[RubricItem | tuple[str, str]]:
    """Items of a decoded JSON rubric: a list of records, {"questions": [...]}, or {dimension: [...]}."""
    if isinstance(data, dict):
        for key in ("rubric", "questions", "items"):
            if key in data:
                return _json_items(data[key], heading)
        if any(k in data for k in _KEYS["question"]):
            data = [data]
        else:
            return [x for label, sub in data.items() for x in _json_items(sub, dimension_of(str(label)) or heading)]
    if not isinstance(data, list):
        return [(str(data), "not a list of questions")]
    out = []
    for record in data:
        if isinstance(record, str):
            item = read_line(record, heading)
            out.append(item if isinstance(item, RubricItem) else (record, item))
            continue
        if not isinstance(record, dict):
            out.append((str(record), "not a question record"))
            continue
        get = {role: next((record[k] for k in keys if k in record), None) for role, keys in _KEYS.items()}
        answer = {True: "yes", False: "no"}.get(get["answer"], get["answer"])
        question = str(get["question"] or "").strip()
        question += "" if question.endswith("?") else "?"  # a field needs no question mark to be a question
        line = f"{get['dimension']} | {question} | {answer}" if get["dimension"] else f"{question} | {answer}"
        item = read_line(line, heading)
        out.append(item if isinstance(item, RubricItem) else (json.dumps(record), item))
    return out


def _json_block(text: str):
    """The JSON value in `text` (fenced or bare; else its complete flat records), or None."""
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    candidates = [fenced.group(1)] if fenced else []
    for open_, close in (("[", "]"), ("{", "}")):
        if open_ in text and close in text:
            candidates.append(text[text.index(open_): text.rindex(close) + 1])
    for block in candidates:
        try:
            return json.loads(block)
        except json.JSONDecodeError:
            continue
    # cut off by the token budget mid-array: the records that are complete still count
    records = []
    for flat in re.findall(r"\{[^{}]*\}", text):
        try:
            records.append(json.loads(flat))
        except json.JSONDecodeError:
            continue
    return [r for r in records if isinstance(r, dict)] or None


def read_chat_rubric(text: str) -> ChatRubric:
    """Every item a chat model's rubric text holds, and the lines refused (with why)."""
    data = _json_block(text)
    found = _json_items(data) if isinstance(data, (list, dict)) else None
    if found is None:
        found, heading = [], None
        for raw in re.split(r"[\n;]", text):
            line = _clean(raw)
            if "?" not in line:
                if line.rstrip(":").count(" ") < 4:  # a short line: a heading when it names a dimension
                    heading = dimension_of(line) or heading
                continue  # prose ("Here is the rubric:") is not an item
            if set(line) <= set("|-: "):
                continue
            item = read_line(raw, heading)
            found.append(item if isinstance(item, RubricItem) else (raw.strip(), item))
    items = [x for x in found if isinstance(x, RubricItem)]
    return ChatRubric(items, [x for x in found if not isinstance(x, RubricItem)])


def parse_chat_text(text: str) -> tuple[list[RubricItem], int]:
    """(items, lines refused) of a chat model's rubric; RubricParseError when no item can be read."""
    if not text.strip():
        raise RubricParseError("empty rubric")
    rubric = read_chat_rubric(text)
    if not rubric.items:
        why = f"{rubric.refused[0][0]!r}: {rubric.refused[0][1]}" if rubric.refused else "no question in the text"
        raise RubricParseError(f"no rubric item could be read ({why})")
    return rubric.items, len(rubric.refused)


def parse_chat_rubric(text: str) -> list[RubricItem]:
    return parse_chat_text(text)[0]


@dataclass(frozen=True)
class Dialect:
    instruction: str
    max_new_tokens: int  # the budget when rubric.max_new_tokens is 0
    parse: Callable[[str], tuple[list[RubricItem], int]]  # text -> (items, lines refused); raises when unreadable
    alignment_question: str  # reward.judge=reward_model's one question per image ({prompt} filled in)


DIALECTS = {"toy": Dialect(SCHEMA_INSTRUCTION, 96, parse_strictly, "does the image show : {prompt} ?"),
            "chat": Dialect(CHAT_INSTRUCTION, CHAT_MAX_NEW_TOKENS, parse_chat_text,
                            'Does this image match the description "{prompt}"?')}


def dialect(name: str) -> Dialect:
    if name not in DIALECTS:
        raise ValueError(f"rubric dialect {name!r} is not one of {', '.join(DIALECTS)}")
    return DIALECTS[name]


def token_budget(name: str, max_new_tokens: int) -> int:
    """rubric.max_new_tokens, or the dialect's own budget when it is 0."""
    return max_new_tokens or dialect(name).max_new_tokens
