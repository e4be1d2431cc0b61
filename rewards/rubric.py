"""Rubrics: Q(x) = {(dimension, [(question, target)])}, their text form, a parser and a metadata builder.

Text form (what the introspector writes and what `parse_rubric` reads), one item per `;`:
    object : is there a red circle ? yes ; spatial : is the red circle left of the square ? yes
Parsing is tolerant of case, spacing and a trailing `;`; an item that does not parse is reported, not guessed.
The metadata builder turns GenEval-format records into the same rubric deterministically; it is both the
`rubric.source=metadata` alternative and the reference the parser is tested against.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DIMENSIONS = ("object", "attribute", "count", "spatial", "relation", "style")
ANSWERS = ("yes", "no")
CONVERSE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}
COUNT_WORDS = {1: "one", 2: "two", 3: "three", 4: "four"}
# The schema prompt the introspector writes a rubric from (the toy model was pretrained on exactly this).
SCHEMA_INSTRUCTION = "write a rubric of yes or no questions with dimensions " + " , ".join(DIMENSIONS) + " for :"


@dataclass(frozen=True)
class RubricItem:
    dimension: str
    question: str  # lower-case words, ends with " ?"
    target: str  # "yes" or "no"

    def text(self) -> str:
        return f"{self.dimension} : {self.question} {self.target}"


class RubricParseError(ValueError):
    pass


def rubric_text(items: list[RubricItem]) -> str:
    return " ; ".join(item.text() for item in items)


_ITEM = re.compile(r"^\s*(\w+)\s*:\s*(.+?\?)\s*(\w+)\s*$")


def parse_rubric(text: str) -> list[RubricItem]:
    """Parse rubric text into items; raises RubricParseError naming the first bad item."""
    body = text.strip().strip(";").strip()
    if not body:
        raise RubricParseError("empty rubric")
    items = []
    for raw in body.split(";"):
        m = _ITEM.match(raw.lower())
        if not m:
            raise RubricParseError(f"rubric item {raw.strip()!r} is not 'dimension : question ? yes|no'")
        dim, question, target = m.group(1), " ".join(m.group(2).replace("?", " ?").split()), m.group(3)
        if dim not in DIMENSIONS:
            raise RubricParseError(f"unknown dimension {dim!r}; valid: {', '.join(DIMENSIONS)}")
        if target not in ANSWERS:
            raise RubricParseError(f"target {target!r} is not yes/no in {raw.strip()!r}")
        items.append(RubricItem(dim, question, target))
    return items


def _ref(clause: dict) -> str:
    return f"{clause['color']} {clause['class']}" if clause.get("color") else clause["class"]


def rubric_from_metadata(meta: dict) -> list[RubricItem]:
    """The deterministic rubric for a GenEval-format record (toy world and shared/benchmarks/geneval)."""
    inc, tag = meta["include"], meta["tag"]
    items = [RubricItem("object", f"is there a {c['class']} ?", "yes") for c in inc]
    if tag == "counting":
        c = inc[0]
        n, words = c["count"], (f"{c['color']} {c['class']}s" if c.get("color") else f"{c['class']}s")
        items.append(RubricItem("count", f"are there {COUNT_WORDS.get(n, n)} {words} ?", "yes"))
        return items
    for c in inc:
        if c.get("color"):
            items.append(RubricItem("attribute", f"is the {c['class']} {c['color']} ?", "yes"))
    if tag == "position":
        for c in inc:
            if "position" in c:
                rel, j = c["position"]
                a, b = _ref(c), _ref(inc[j])
                items.append(RubricItem("spatial", f"is the {a} {rel} the {b} ?", "yes"))
                items.append(RubricItem("spatial", f"is the {a} {CONVERSE[rel]} the {b} ?", "no"))
    if tag == "color_attr" and len(inc) == 2:
        same = "yes" if inc[0]["color"] == inc[1]["color"] else "no"
        items.append(RubricItem("relation", f"are the {inc[0]['class']} and the {inc[1]['class']} the same color ?", same))
    return items
