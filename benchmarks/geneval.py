"""GenEval's evaluator (SCORING.md): an instance segmenter (Mask2Former, as published; or an open-vocabulary
detector such as OWLv2) finds the objects, CLIP names the colour of each crop a colour clause uses (the mask
pasted on grey, zero-shot among GenEval's ten colours), then GenEval's rules (rewards/geneval.py, the same code
that scores the toy world)."""

from __future__ import annotations

import numpy as np

from benchmarks.base import Scored
from benchmarks.registry import GENEVAL_COLORS
from models.adapter import resolve_device
from models.evaluators import ClipScorer, Detector, Found
from rewards.geneval import Detection, score

GREY = 128  # GenEval pastes a crop's mask on a mid-grey background before classifying its colour


def crop_on_grey(image: np.ndarray, found: Found) -> np.ndarray | None:
    """The detection's box, pixels outside its mask grey; None when the box is empty."""
    h, w = image.shape[:2]
    x0, y0 = max(int(found.box[0]), 0), max(int(found.box[1]), 0)
    x1, y1 = min(int(np.ceil(found.box[2])), w), min(int(np.ceil(found.box[3])), h)
    if x1 <= x0 or y1 <= y0:
        return None
    pasted = image if found.mask is None else np.where(found.mask[..., None], image, np.uint8(GREY))
    return np.ascontiguousarray(pasted[y0:y1, x0:x1]).astype(np.uint8)


class GenEvalEvaluator:
    def __init__(self, eval_cfg):
        device = str(resolve_device(eval_cfg.device))
        self.detector, self.clip = Detector(eval_cfg.detector, device), ClipScorer(eval_cfg.clip, device)

    def color(self, image: np.ndarray, found: Found) -> str | None:
        crop = crop_on_grey(image, found)
        if crop is None:
            return None
        texts = [f"a photo of a {c} {found.label}" for c in GENEVAL_COLORS]
        return GENEVAL_COLORS[self.clip.classify([crop], texts)[0]]

    def score(self, images: list[np.ndarray], records: list[dict]) -> list[Scored]:
        classes = sorted({c["class"] for r in records for c in r["include"] + r.get("exclude", [])})
        out = []
        for image, rec, found in zip(images, records, self.detector.detect(images, classes)):
            dets = [Detection(f.label, None, f.box, f.score) for f in found]
            source = {id(d): f for d, f in zip(dets, found)}
            verdict = score(dets, rec, color_of=lambda d: self.color(image, source[id(d)]))
            failed = [c["reason"] for c in verdict.clauses if not c["passed"]]
            out.append(Scored(float(verdict.correct), {"correct": verdict.correct, "reason": "; ".join(failed)}))
        return out
