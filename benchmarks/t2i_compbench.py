"""T2I-CompBench's evaluator per category (SCORING.md): BLIP-VQA on the prompt's noun phrases (color, shape,
texture), a detector and the benchmark's 2D spatial rule (spatial), per-object counts (numeracy), CLIPScore
(non_spatial), and their average (complex). 3d_spatial needs a monocular depth model and is refused before a run
starts (benchmarks/registry.py).

The published code finds noun phrases and nouns with spaCy, which this machine lacks; `noun_phrases` is a small
rule-based chunker for the benchmark's templated prompts ("a green bench and a blue bowl", "a cat on the left of
a dog", "three apples and two cats"), tested on them.
"""

from __future__ import annotations

import re

import numpy as np

from benchmarks.base import Scored
from rewards.rubric import singular
from models.adapter import resolve_device

ARTICLES = ("a", "an", "the", "one")
# words that end a noun phrase: conjunctions, verbs and prepositions of the benchmark's prompts
BREAKS = {"and", "with", "on", "in", "of", "near", "next", "to", "beside", "under", "over", "behind", "at", "by",
          "is", "are", "was", "were", "sits", "sitting", "stands", "standing", "lies", "lying", "rests", "resting",
          "hanging", "hung", "placed", "inside", "above", "below", "from", "into", "onto", "while", "that", "which",
          "through", "for", "their", "its", "both", "completed", "decorated", "decorate", "provided", "blew", "strode",
          "carrying", "reaching", "jot", "were"}
SPATIAL = {"on the left of": "left", "on the right of": "right", "on the top of": "top", "on top of": "top",
           "on the bottom of": "bottom", "on side of": "side", "next to": "side", "near": "side", "left of": "left",
           "right of": "right", "above": "top", "below": "bottom"}
NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
           "ten": 10, "a": 1, "an": 1}
DETECT_THRESHOLD = 0.3  # a detection counts above this confidence (GenEval's threshold)
IOU_FREE = 0.1  # spatial: boxes overlapping less than this score the relation fully


def _words(prompt: str) -> list[str]:
    return re.findall(r"[a-z0-9'-]+|,", prompt.lower())


RELATION_WORDS = {"top", "bottom", "left", "right", "side", "front"}
STARTS = set(ARTICLES) | set(NUMBERS)


def noun_phrases(prompt: str) -> list[str]:
    """The prompt's noun phrases: runs of words between break words and commas that open with an article or a
    number, or open the prompt or follow "and" or a comma ("rubber sole shoes and fluffy clouds"); a run that
    is only a relation word ("the top" of "on the top of") is not one."""
    phrases, current, open_ok = [], [], True
    for w in _words(prompt) + [","]:
        if w in BREAKS or w == ",":
            if current and not set(current[1:] if current[0] in STARTS else current) <= RELATION_WORDS:
                phrases.append(" ".join(current))
            current, open_ok = [], w in ("and", ",")
        elif w in STARTS and current:
            phrases.append(" ".join(current)) if len(current) > 1 else None
            current = [w]
        elif current or open_ok or w in STARTS:
            current.append(w)
    return phrases or [prompt.strip().rstrip(".").lower()]


def _head(phrase: str) -> str:
    """The object a phrase names: its last word (a plural's -s kept: detectors are asked by name)."""
    return phrase.split()[-1]


def spatial_relation(prompt: str) -> tuple[str, str, str] | None:
    """(first object, relation, second object) of a 2D spatial prompt; None when it names no relation."""
    text = " ".join(w for w in _words(prompt) if w != ",")
    for phrase in sorted(SPATIAL, key=len, reverse=True):
        left, sep, right = text.partition(f" {phrase} ")
        if sep and left and right:
            a, b = noun_phrases(left), noun_phrases(right)
            return _head(a[-1]), SPATIAL[phrase], _head(b[0])
    return None


def counted_objects(prompt: str) -> list[tuple[str, int]]:
    """(object, count) per counted phrase, the object singular as a detector is asked for it:
    "three apples and two cats" -> [("apple", 3), ("cat", 2)]."""
    return [(singular(_head(p)), NUMBERS[p.split()[0]]) for p in noun_phrases(prompt) if p.split()[0] in NUMBERS]


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def spatial_score(box_a, conf_a: float, box_b, conf_b: float, relation: str) -> float:
    """0.25 conf A + 0.25 conf B + 0.5 position, 0 below 0.5. Position: the centres' offset must point the
    relation's way and be larger on that axis than on the other; then 1 if IoU < 0.1, else 0.1 / IoU."""
    dx = (box_a[0] + box_a[2]) / 2 - (box_b[0] + box_b[2]) / 2
    dy = (box_a[1] + box_a[3]) / 2 - (box_b[1] + box_b[3]) / 2  # y grows downward: "top" means dy < 0
    holds = {"left": dx < 0 and abs(dx) > abs(dy), "right": dx > 0 and abs(dx) > abs(dy),
             "top": dy < 0 and abs(dy) > abs(dx), "bottom": dy > 0 and abs(dy) > abs(dx),
             "side": abs(dx) > abs(dy)}[relation]
    iou = _iou(box_a, box_b)
    position = (1.0 if iou < IOU_FREE else IOU_FREE / iou) if holds else 0.0
    total = 0.25 * conf_a + 0.25 * conf_b + 0.5 * position
    return total if total >= 0.5 else 0.0


def numeracy_score(counts: dict[str, int], wanted: list[tuple[str, int]]) -> float:
    """Per counted object, +0.5/M when it is detected at all, +0.5/M more when the count is exact."""
    m = len(wanted)
    return sum(0.5 / m * (counts.get(obj, 0) > 0) + 0.5 / m * (counts.get(obj, 0) == n) for obj, n in wanted)


class T2ICompBenchEvaluator:
    """Loads only the models eval.* names (the categories of a run decide which it needs: registry.T2I_NEEDS)."""

    def __init__(self, eval_cfg):
        from models.evaluators import BlipVQA, ClipScorer, Detector
        device = str(resolve_device(eval_cfg.device))
        self.vqa = BlipVQA(eval_cfg.vqa, device) if eval_cfg.vqa else None
        self.clip = ClipScorer(eval_cfg.clip, device) if eval_cfg.clip else None
        self.detector = Detector(eval_cfg.detector, device) if eval_cfg.detector else None

    def _vqa(self, image, prompt: str) -> tuple[float, dict]:
        phrases = noun_phrases(prompt)
        probs = self.vqa.yes_probability([image] * len(phrases), [f"{p}?" for p in phrases])
        return float(np.prod(probs)), dict(zip(phrases, probs))

    def _best(self, found, name: str):
        hits = [f for f in found if f.label == name and f.score > DETECT_THRESHOLD]
        return max(hits, key=lambda f: f.score) if hits else None

    def _spatial(self, image, prompt: str) -> tuple[float, dict]:
        rel = spatial_relation(prompt)
        if rel is None:
            return 0.0, {"reason": "no spatial relation found in the prompt"}
        a, relation, b = rel
        found = self.detector.detect([image], [a, b])[0]
        fa, fb = self._best(found, a), self._best(found, b)
        if fa is None or fb is None:
            return 0.0, {"relation": rel, "reason": f"{a if fa is None else b} not detected"}
        return spatial_score(fa.box, fa.score, fb.box, fb.score, relation), {"relation": rel}

    def _numeracy(self, image, prompt: str) -> tuple[float, dict]:
        wanted = counted_objects(prompt)
        if not wanted:
            return 0.0, {"reason": "no counted object found in the prompt"}
        found = self.detector.detect([image], [o for o, _ in wanted])[0]
        counts = {o: sum(f.label == o and f.score > DETECT_THRESHOLD for f in found) for o, _ in wanted}
        return numeracy_score(counts, wanted), {"counts": counts, "wanted": dict(wanted)}

    def _clip(self, image, prompt: str) -> tuple[float, dict]:
        return float(self.clip.similarity([image], [prompt])[0, 0]), {}

    def _complex(self, image, prompt: str) -> tuple[float, dict]:
        parts = {"vqa": self._vqa(image, prompt)[0], "clip": self._clip(image, prompt)[0]}
        if spatial_relation(prompt):
            parts["spatial"] = self._spatial(image, prompt)[0]
        return float(np.mean(list(parts.values()))), parts

    def score(self, images: list[np.ndarray], records: list[dict]) -> list[Scored]:
        by = {"color": self._vqa, "shape": self._vqa, "texture": self._vqa, "spatial": self._spatial,
              "numeracy": self._numeracy, "non_spatial": self._clip, "complex": self._complex}
        return [Scored(*by[rec["tag"]](image, rec["prompt"])) for image, rec in zip(images, records)]
