"""How well the frozen judge monitors the policy's own images, per prompt tag (Meta-TTRL's "metacognitive synergy":
gains should come where the monitoring is accurate). Measured on images the policy samples, against the oracle:

- reward_auc: P(rubric reward of a correct image > that of a wrong one) within the tag (ties half), the
  image-level accuracy a GRPO judge needs;
- group_concordance: the same, over pairs inside one prompt's group only (what GRPO's advantage compares);
- per question dimension: accuracy of the judge's yes/no (Eq. 5 score of "yes" >= 0.5) and AUC of that score,
  against the question's answer on the oracle's detections (questions the toy world cannot answer on the image
  are skipped and counted).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from rewards.introspection import RubricBook
from rewards.judges import RubricJudge, model_writer
from rollout.batch import RolloutBatch
from toyworld.evaluation import ranking_auc
from toyworld.oracle import detect, evaluate
from toyworld.questions import answer
from toyworld.scene import Obj

CONF = 0.3  # GenEval's detection threshold


def detected_scene(image: np.ndarray) -> list[Obj]:
    """The oracle's confident detections as scene objects (centre and size from the box), for `answer`."""
    return [Obj(d.label, d.color, (d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2,
                max(d.box[2] - d.box[0], d.box[3] - d.box[1])) for d in detect(image) if d.conf >= CONF]


def truth(image: np.ndarray, question: str) -> str | None:
    try:
        return answer(detected_scene(image), question)
    except (ValueError, StopIteration, KeyError):  # a written question outside the toy world's grammar
        return None


def group_concordance(rewards: list[float], correct: list[bool], groups: list[int]) -> tuple[float, int]:
    """Fraction of (correct, wrong) pairs of the same group the reward orders right (ties half), and the count."""
    right, pairs = 0.0, 0
    by_group = defaultdict(list)
    for r, c, g in zip(rewards, correct, groups):
        by_group[g].append((r, c))
    for members in by_group.values():
        for r_pos, c_pos in members:
            for r_neg, c_neg in members:
                if c_pos and not c_neg:
                    pairs += 1
                    right += 1.0 if r_pos > r_neg else 0.5 if r_pos == r_neg else 0.0
    return (right / pairs if pairs else float("nan")), pairs


@torch.no_grad()
def monitoring(adapter, metas: list[dict], samples: int = 8, guidance: float = 3.0, temperature: float = 1.0,
               seed: int = 0, batch_prompts: int = 16) -> dict:
    """Per tag: oracle score, reward_auc, group_concordance; per question dimension: accuracy and AUC."""
    gen = adapter.generator(seed)
    judge = RubricJudge(RubricBook(model_writer(adapter, 96, gen)), adapter)
    images_by_tag = defaultdict(lambda: {"reward": [], "correct": [], "group": []})
    questions = defaultdict(lambda: {"yes": [], "no": [], "hits": [], "skipped": 0})
    for start in range(0, len(metas), batch_prompts):
        chunk = metas[start: start + batch_prompts]
        out = adapter.sample([m["prompt"] for m in chunk], samples, guidance, temperature, gen)
        batch = RolloutBatch([m["prompt"] for m in chunk for _ in range(samples)], out.tokens, out.logprobs,
                             out.images, 0, samples)
        rewards = judge(batch).rewards.tolist()
        rubrics = judge.book.get(batch.prompts)
        asked = [(i, item) for i, items in enumerate(rubrics) for item in items]
        yes = judge.scores(batch.images, [it.question for _, it in asked], [i for i, _ in asked],
                           [True] * len(asked)).tolist()
        for i, (image, reward) in enumerate(zip(batch.images, rewards)):
            meta = chunk[i // samples]
            row = images_by_tag[meta["tag"]]
            row["reward"].append(reward)
            row["correct"].append(evaluate(image, meta).correct)
            row["group"].append(start + i // samples)
        for (i, item), s_yes in zip(asked, yes):
            q = questions[(chunk[i // samples]["tag"], item.dimension)]
            said = truth(batch.images[i], item.question)
            if said is None:
                q["skipped"] += 1
                continue
            q[said].append(s_yes)
            q["hits"].append((s_yes >= 0.5) == (said == "yes"))
    return summarise(images_by_tag, questions)


def summarise(images_by_tag: dict, questions: dict) -> dict:
    table = {}
    for tag, row in images_by_tag.items():
        pos = [r for r, c in zip(row["reward"], row["correct"]) if c]
        neg = [r for r, c in zip(row["reward"], row["correct"]) if not c]
        concordance, pairs = group_concordance(row["reward"], row["correct"], row["group"])
        table[tag] = {"oracle": float(np.mean(row["correct"])), "images": len(row["correct"]),
                      "reward_auc": ranking_auc(pos, neg), "group_concordance": concordance, "group_pairs": pairs,
                      "questions": {}}
    for (tag, dimension), q in questions.items():
        table[tag]["questions"][dimension] = {
            "accuracy": float(np.mean(q["hits"])) if q["hits"] else float("nan"), "auc": ranking_auc(q["yes"], q["no"]),
            "answered": len(q["hits"]), "skipped": q["skipped"]}
    return table
