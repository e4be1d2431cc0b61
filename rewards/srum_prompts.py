"""SRUM's scoring prompts (the paper's form, Tables 6-7: a score in [-1, 1] with a reason) and the parser of what a
model answers to them. Used by the SRUM judge with `reward.srum_scores=text` (rewards/judges.py): the global score
of the whole image (layout and composition; a neutral band when the prompt states no layout), the local score of
each foreground region shown alone, and the background's score with the foreground painted over.

The wording is ours (written from the paper's description, not copied); the answer format is the paper's:
"Score: <number in [-1, 1]>" then "Reason: <text>". The parser accepts what chat models emit around it (markdown,
"score = 0.5", "0.7/1", a bare number first) and an explicit other scale ("8/10" is 2 x 8/10 - 1); a number outside
[-1, 1] without a scale, or no number, is refused with its reason (the judge then falls back to yes/no scores).
"""

from __future__ import annotations

import re

FORMAT = "Answer in two lines: \"Score: <a number from -1 to 1>\" and \"Reason: <one sentence>\"."
GLOBAL = ('This image was generated for the prompt "{prompt}". Rate its overall layout and composition: are the '
          "objects the prompt names there, in the numbers, places and arrangement it asks? -1: it contradicts the "
          "prompt, 1: it matches it exactly. If the prompt says nothing about layout (no positions, counts or "
          "arrangement), give a score between -0.2 and 0.2. " + FORMAT)
LOCAL = ('This image shows one region of a picture generated for the prompt "{prompt}"; everything else is painted '
         "over. Rate the object in this region against what the prompt asks of it (what it is, its colour, shape and "
         "details): -1: wrong or malformed, 1: exactly as asked. " + FORMAT)
BACKGROUND = ('This image shows the background of a picture generated for the prompt "{prompt}"; the main objects '
              "are painted over. Rate the background: does it fit the prompt, free of stray objects and artefacts? "
              "-1: not at all, 1: fully. " + FORMAT)

_NUMBER = r"([-+\u2212]?\d*\.?\d+)"
_SCORE = re.compile(r"score[\s:=]{0,4}" + _NUMBER + r"(?:\s*/\s*(\d+(?:\.\d+)?))?", re.IGNORECASE)
_LEADING = re.compile(r"^[^\w\-+\u2212.]{0,4}" + _NUMBER + r"(?:\s*/\s*(\d+(?:\.\d+)?))?")
_REASON = re.compile(r"reason[\s:=]{0,4}(.+)", re.IGNORECASE | re.DOTALL)


class ScoreParseError(ValueError):
    pass


def parse_score(text: str) -> tuple[float, str]:
    """(score in [-1, 1], reason) from a model's answer to a scoring prompt; ScoreParseError says why not."""
    clean = text.replace("**", "").replace("`", "").strip()
    m = _SCORE.search(clean) or _LEADING.search(clean)
    if not m:
        raise ScoreParseError(f"no score in {text.strip()[:60]!r}")
    value = float(m.group(1).replace("\u2212", "-"))
    if m.group(2) and float(m.group(2)) != 1:  # another scale: "7/10" -> 2 x 0.7 - 1 ("0.7/1" is the asked one)
        scale = float(m.group(2))
        if scale <= 0 or not 0 <= value <= scale:
            raise ScoreParseError(f"score {m.group(0)!r} is not on its own scale")
        value = 2 * value / scale - 1
    if not -1 <= value <= 1:
        raise ScoreParseError(f"score {value:g} is outside [-1, 1]")
    reason = _REASON.search(clean)
    return value, (reason.group(1).strip() if reason else "")
