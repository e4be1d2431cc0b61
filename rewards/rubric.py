"""Rubrics: Q(x) = {(dimension, [(question, target)])}, their text form, a parser and a metadata builder.

Text form (what the introspector writes and what `parse_rubric` reads), one item per `;`:
    object : is there a red circle ? yes ; spatial : is the red circle left of the square ? yes
Parsing is tolerant of case, spacing and a trailing `;`; an item that does not parse is reported, not guessed.
The metadata builder turns GenEval-format records into the same rubric deterministically; it is both the
`rubric.source=metadata` alternative and the reference the parser is tested against. It writes in one of two
styles: "toy", the toy model's lower-case tokens ("is there a circle ?"), and "english", natural questions for a
real VLM ("Is there an apple in the image?", "Are there two toothbrushes in the image?").
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
    question: str  # toy style: lower-case words ending " ?"; english style: a sentence ending "?"
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


IRREGULAR_PLURALS = {"person": "people", "mouse": "mice", "knife": "knives", "sheep": "sheep", "skis": "skis",
                     "scissors": "scissors", "child": "children", "man": "men", "woman": "women", "foot": "feet",
                     "broccoli": "broccoli"}
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine",
                10: "ten"}
ENGLISH_RELATIONS = {"left of": "to the left of", "right of": "to the right of", "above": "above", "below": "below"}


def singular(noun: str) -> str:
    """The inverse of `plural` on its last word: "apples" -> "apple", "boxes" -> "box", "knives" -> "knife"."""
    *head, last = noun.split()
    irregular = {p: s for s, p in IRREGULAR_PLURALS.items()}
    if last in irregular:
        word = irregular[last]
    elif last.endswith("ies") and len(last) > 4:
        word = last[:-3] + "y"
    elif last.endswith(("ses", "xes", "zes", "ches", "shes")):
        word = last[:-2]
    elif last.endswith("s") and not last.endswith("ss"):
        word = last[:-1]
    else:
        word = last
    return " ".join([*head, word])


def plural(noun: str) -> str:
    """English plural of a (possibly compound) noun: its last word inflected."""
    *head, last = noun.split()
    if last in IRREGULAR_PLURALS:
        word = IRREGULAR_PLURALS[last]
    elif last.endswith(("s", "x", "z", "ch", "sh")):
        word = last + "es"
    elif last.endswith("y") and last[-2:-1] not in ("a", "e", "i", "o", "u"):
        word = last[:-1] + "ies"
    else:
        word = last + "s"
    return " ".join([*head, word])


def with_article(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def _english(meta: dict) -> list[RubricItem]:
    """The same rubric as the toy style, asked as a real VLM reads questions."""
    inc, tag = meta["include"], meta["tag"]
    items = [RubricItem("object", f"Is there {with_article(c['class'])} in the image?", "yes") for c in inc]
    for c in inc:
        n = c.get("count", 1)
        noun = " ".join(w for w in (c.get("color", ""), plural(c["class"])) if w)
        if n > 1 or tag == "counting":
            items.append(RubricItem("count", f"Are there exactly {NUMBER_WORDS.get(n, n)} {noun} in the image?"
                                    if n > 1 else f"Is there exactly one {_ref(c)} in the image?", "yes"))
        if c.get("color") and n == 1:
            items.append(RubricItem("attribute", f"Is the {c['class']} {c['color']}?", "yes"))
        if c.get("region"):
            side = {"left": "on the left side", "right": "on the right side", "above": "in the upper part",
                    "below": "in the lower part"}[c["region"]]
            items.append(RubricItem("spatial", f"Is the {_ref(c)} {side} of the image?", "yes"))
        if "position" in c:
            rel, j = c["position"]
            items.append(RubricItem("spatial", f"Is the {_ref(c)} {ENGLISH_RELATIONS[rel]} the {_ref(inc[j])}?", "yes"))
            items.append(RubricItem("spatial", f"Is the {_ref(c)} {ENGLISH_RELATIONS[CONVERSE[rel]]} the "
                                               f"{_ref(inc[j])}?", "no"))
    sized = [c for c in inc if c.get("size") == "larger"], [c for c in inc if c.get("size") == "smaller"]
    for big in sized[0]:
        for small in sized[1]:
            items.append(RubricItem("relation", f"Is the {big['class']} larger than the {small['class']}?", "yes"))
    if tag == "color_attr" and len(inc) == 2:
        same = "yes" if inc[0]["color"] == inc[1]["color"] else "no"
        items.append(RubricItem("relation", f"Are the {inc[0]['class']} and the {inc[1]['class']} the same color?",
                                same))
    return items


def _ref(clause: dict) -> str:
    return f"{clause['color']} {clause['class']}" if clause.get("color") else clause["class"]


STYLES = ("toy", "english")


def rubric_from_metadata(meta: dict, style: str = "toy") -> list[RubricItem]:
    """The deterministic rubric for a GenEval-format record (toy world, GenEval, GenEval++), in `style`."""
    if style == "english":
        return _english(meta)
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
