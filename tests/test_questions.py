import random
from collections import Counter

from toyworld.prompts import load_split, scene_for
from toyworld.questions import KINDS, ask
from toyworld.scene import Obj

# A red circle left of a blue square (same row), and a red triangle below the square.
SCENE = [Obj("circle", "red", 12, 20, 14), Obj("square", "blue", 44, 20, 14), Obj("triangle", "red", 44, 50, 14)]


def _answers(kind, want, n=200, seed=0):
    rng = random.Random(seed)
    return [q for q in (ask(SCENE, rng, kind=kind, want=want) for _ in range(n)) if q]


def test_every_generated_answer_matches_the_scene_by_hand():
    truth = {
        "is there a circle ?": "yes", "is there a red triangle ?": "yes", "is there a blue circle ?": "no",
        "is the square blue ?": "yes", "is the circle blue ?": "no",
        "are there two circles ?": "no", "are there two red circles ?": "no",
        "is the circle left of the square ?": "yes", "is the circle right of the square ?": "no",
        "is the triangle below the square ?": "yes", "is the square above the triangle ?": "yes",
        "are the circle and the triangle the same color ?": "yes",
        "are the circle and the square the same color ?": "no",
    }
    seen = 0
    for kind in KINDS:
        for want in ("yes", "no"):
            for q in _answers(kind, want):
                assert q.answer == want and q.kind == kind
                if q.text in truth:
                    seen += 1
                    assert truth[q.text] == q.answer, q.text
    assert seen > 50


def test_negatives_are_hard_when_the_scene_allows():
    negatives = [q for k in ("attribute", "count", "spatial", "relation") for q in _answers(k, "no")]
    assert negatives and all(q.hard for q in negatives)


def test_object_negative_is_impossible_when_all_shapes_present():
    assert _answers("object", "no", n=5) == []


def test_question_stream_on_test_split_is_balanced_and_covers_kinds():
    rng = random.Random(1)
    qs = [ask(scene_for(m, rng), rng) for m in load_split("test") for _ in range(4)]
    qs = [q for q in qs if q]
    answers = Counter(q.answer for q in qs)
    assert abs(answers["yes"] - answers["no"]) / len(qs) < 0.1
    assert set(Counter(q.kind for q in qs)) == set(KINDS)
