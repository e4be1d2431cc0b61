"""GenEval's rules on detections (shared/benchmarks/SCORING.md): count, colour and position with its margin.

One implementation for every evaluator that speaks GenEval metadata: the toy world's pixel oracle
(toyworld/oracle.py) detects objects by hue and template, the GenEval evaluator (benchmarks/geneval.py) with an
instance segmenter and CLIP; both hand their detections to `score`. Pure: boxes and labels in, verdicts out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

RELATIONS = ("left of", "right of", "above", "below")
MAX_PER_CLASS = 16  # GenEval keeps at most 16 detections of a class
THRESHOLD, COUNTING_THRESHOLD = 0.3, 0.9  # confidence to keep a detection; counting prompts are stricter
POSITION_MARGIN, POSITION_CUTOFF = 0.1, 0.5


@dataclass(frozen=True)
class Detection:
    label: str  # the class (a COCO name, or a toy shape)
    color: str | None  # None: not classified yet (score asks `color_of` for the detections it uses)
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels (x1, y1 exclusive); y grows downward
    conf: float


@dataclass
class Verdict:
    correct: bool
    clauses: list[dict] = field(default_factory=list)  # per clause: {"clause", "passed", "reason"}


def relative_offset(box_a, box_b, threshold: float = POSITION_MARGIN) -> tuple[float, float] | None:
    """GenEval's normalised, shrunk offset of box A from box B: each axis is shrunk toward 0 by threshold x
    (size A + size B) on that axis, then divided by the length of the raw offset. None when both shrunk
    components vanish (no relation)."""
    ca = ((box_a[0] + box_a[2]) / 2, (box_a[1] + box_a[3]) / 2)
    cb = ((box_b[0] + box_b[2]) / 2, (box_b[1] + box_b[3]) / 2)
    dims = [(box_a[2] - box_a[0]) + (box_b[2] - box_b[0]), (box_a[3] - box_a[1]) + (box_b[3] - box_b[1])]
    offset = [ca[0] - cb[0], ca[1] - cb[1]]
    shrunk = [max(abs(o) - threshold * d, 0.0) * (1 if o > 0 else -1 if o < 0 else 0) for o, d in zip(offset, dims)]
    if all(abs(s) < 1e-3 for s in shrunk):
        return None
    norm = (offset[0] ** 2 + offset[1] ** 2) ** 0.5
    return shrunk[0] / norm, shrunk[1] / norm


def relations_between(box_a, box_b, cutoff: float = POSITION_CUTOFF) -> set[str]:
    """GenEval's relations of A to B: |component| > cutoff (0.5 in GenEval) on an axis gives that relation."""
    off = relative_offset(box_a, box_b)
    if off is None:
        return set()
    dx, dy = off
    rels = set()
    if dx < -cutoff:
        rels.add("left of")
    if dx > cutoff:
        rels.add("right of")
    if dy < -cutoff:
        rels.add("above")
    if dy > cutoff:
        rels.add("below")
    return rels


def _kept(dets: list[Detection], cls: str, threshold: float) -> list[Detection]:
    """A class's detections above the threshold, most confident first, at most MAX_PER_CLASS."""
    ranked = sorted((d for d in dets if d.label == cls and d.conf > threshold), key=lambda d: -d.conf)
    return ranked[:MAX_PER_CLASS]


def _own_color(d: Detection) -> str | None:
    return d.color


def score(dets: list[Detection], meta: dict, color_of: Callable[[Detection], str | None] = _own_color) -> Verdict:
    """GenEval's rules for one image: every include clause passes and no exclude clause fires. `color_of` names
    a detection's colour (GenEval classifies only the crops a colour clause uses)."""
    threshold = COUNTING_THRESHOLD if meta["tag"] == "counting" else THRESHOLD
    verdict, used = Verdict(True), []
    for clause in meta["include"]:
        kept = _kept(dets, clause["class"], threshold)
        chosen = kept[: clause["count"]]
        used.append(chosen)
        reason = ""
        colors = [color_of(d) for d in chosen] if "color" in clause and len(kept) >= clause["count"] else []
        if len(kept) < clause["count"]:
            reason = f"found {len(kept)} {clause['class']}, need {clause['count']}"
        elif any(c != clause["color"] for c in colors):
            reason = f"colours {colors}, need {clause['color']}"
        elif "position" in clause:
            rel, j = clause["position"]
            if not verdict.clauses[j]["passed"]:
                reason = f"reference clause {j} failed"
            elif not all(rel in relations_between(a.box, b.box) for a in chosen for b in used[j]):
                reason = f"not {rel} the {meta['include'][j]['class']}"
        verdict.clauses.append({"clause": clause, "passed": not reason, "reason": reason})
    for clause in meta.get("exclude", []):
        n = len(_kept(dets, clause["class"], threshold))
        fired = n >= clause["count"]
        verdict.clauses.append({"clause": {"exclude": clause}, "passed": not fired,
                                "reason": f"found {n} {clause['class']}, must be < {clause['count']}" if fired else ""})
    verdict.correct = all(c["passed"] for c in verdict.clauses)
    return verdict
