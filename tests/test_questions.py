import random
from collections import Counter

from toyworld.prompts import load_split, scene_for
from toyworld.questions import KINDS, answer, ask
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


def test_easy_negatives_are_never_binding_negatives_when_asked_for():
    # In SCENE every shape is present, so a binding negative is a red square / blue circle / blue triangle.
    rng = random.Random(3)

    def binding(hard_p):
        asked = [ask(SCENE, rng, kind="attribute", want="no", hard_p=hard_p) for _ in range(300)]
        return [q for q in asked if q and q.text.startswith("is there")]

    easy, hard = binding(0.0), binding(1.0)
    assert easy and hard
    assert all(not q.hard and q.text.split()[3] not in {"red", "blue"} for q in easy)
    assert all(q.hard and q.text.split()[3] in {"red", "blue"} for q in hard)


def test_answer_reproduces_every_generated_answer_and_refuses_what_does_not_apply():
    rng = random.Random(7)
    scenes = [scene_for(m, rng) for m in load_split("test")[:60]]
    checked = 0
    for objs in scenes:
        for _ in range(20):
            q = ask(objs, rng)
            if q:
                assert answer(objs, q.text) == q.answer, q.text
                checked += 1
    assert checked > 1000
    one_circle = [Obj("circle", "red", 12, 20, 16)]
    assert answer(one_circle, "is the square red ?") is None  # no square
    assert answer(one_circle, "are the circle and the square the same color ?") is None
    assert answer(one_circle, "are there two circles ?") == "no" and answer(one_circle, "is there a circle ?") == "yes"
    assert answer(SCENE, "is the red circle left of the square ?") == "yes"
    assert answer(SCENE, "is the red circle above the square ?") == "no"  # same row
    assert answer(SCENE, "is the circle left of the square ?") == "yes"
    assert answer(SCENE, "is the red left of the square ?") is None  # "red" alone refers to nothing


def test_kinds_listed_twice_are_asked_twice_as_often():
    """`ask(kinds=...)` draws uniformly from the tuple and redraws a kind the scene cannot ask with that answer."""
    rng = random.Random(3)
    qs = [ask(SCENE, rng, want="no", kinds=("object", "spatial", "spatial")) for _ in range(3000)]
    counts = Counter(q.kind for q in qs if q)
    assert set(counts) == {"spatial"}  # SCENE holds every shape: an object "no" does not exist, so it retries
    qs = [ask(SCENE, rng, want="no", kinds=("count", "spatial", "spatial")) for _ in range(3000)]
    counts = Counter(q.kind for q in qs if q)
    assert set(counts) == {"spatial", "count"} and abs(counts["spatial"] / counts["count"] - 2) < 0.25
