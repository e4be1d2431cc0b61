"""GenEval's rules (rewards/geneval.py) on scenes given as boxes, each verdict worked out by hand from
shared/benchmarks/SCORING.md. The toy oracle and the GenEval evaluator both score through these rules."""
import pytest

from rewards.geneval import Detection, relations_between, relative_offset, score


def det(label, box, conf=0.95, color=None):
    return Detection(label, color, tuple(float(v) for v in box), conf)


def test_offsets_are_shrunk_by_a_tenth_of_the_summed_sizes_then_divided_by_the_raw_length():
    # centres (5, 5) and (17, 5): offset (-12, 0); x shrinks by 0.1 x (10 + 10) = 2 -> -10; / 12 = -0.8333
    dx, dy = relative_offset((0, 0, 10, 10), (12, 0, 22, 10))
    assert dx == pytest.approx(-10 / 12) and dy == 0.0
    assert relations_between((0, 0, 10, 10), (12, 0, 22, 10)) == {"left of"}
    # offset (-3, 0) -> shrunk -1 -> -1/3: inside the 0.5 cutoff, no relation
    assert relative_offset((0, 0, 10, 10), (3, 0, 13, 10)) == pytest.approx((-1 / 3, 0.0))
    assert relations_between((0, 0, 10, 10), (3, 0, 13, 10)) == set()
    # offset (-1, 0) shrinks to 0 on both axes: no relation at all
    assert relative_offset((0, 0, 10, 10), (1, 0, 11, 10)) is None
    # offset (-6, -8): shrunk (-4, -6), / 10 = (-0.4, -0.6): above, and not left of
    assert relations_between((0, 0, 10, 10), (6, 8, 16, 18)) == {"above"}


def test_counting_keeps_only_detections_above_0_9_and_excludes_n_plus_1():
    meta = {"tag": "counting", "include": [{"class": "cat", "count": 2}], "exclude": [{"class": "cat", "count": 3}]}
    cats = [det("cat", (0, 0, 5, 5), 0.95), det("cat", (10, 0, 15, 5), 0.92), det("cat", (20, 0, 25, 5), 0.85)]
    assert score(cats, meta).correct  # 0.85 is not kept: two cats, not three
    sure = cats[:2] + [det("cat", (20, 0, 25, 5), 0.91)]
    verdict = score(sure, meta)
    assert not verdict.correct and verdict.clauses[1]["reason"] == "found 3 cat, must be < 3"
    # outside counting the threshold is 0.3: the same three cats fail "exactly one" (include 1, exclude 2)
    single = {"tag": "single_object", "include": [{"class": "cat", "count": 1}], "exclude": [{"class": "cat", "count": 2}]}
    assert not score(cats, single).correct
    assert score(cats, {"tag": "single_object", "include": [{"class": "dog", "count": 1}]}).clauses[0]["reason"] \
        == "found 0 dog, need 1"


def test_colour_is_checked_on_the_count_most_confident_only_and_asked_only_for_them():
    cars = [det("car", (0, 0, 5, 5), 0.9, "red"), det("car", (10, 0, 15, 5), 0.5, "blue")]
    asked = []

    def color_of(d):
        asked.append(d.conf)
        return d.color
    red = {"tag": "colors", "include": [{"class": "car", "count": 1, "color": "red"}]}
    assert score(cars, red, color_of).correct and asked == [0.9]
    blue = {"tag": "colors", "include": [{"class": "car", "count": 1, "color": "blue"}]}
    assert score(cars, blue).clauses[0]["reason"] == "colours ['red'], need blue"
    two_red = {"tag": "colors", "include": [{"class": "car", "count": 2, "color": "red"}]}
    assert not score(cars, two_red).correct  # the second car is blue


def test_position_holds_for_every_pair_and_needs_its_reference_to_pass():
    meta = {"tag": "position", "include": [{"class": "dog", "count": 1},
                                           {"class": "cat", "count": 1, "position": ["left of", 0]}]}
    dog = det("dog", (12, 0, 22, 10))
    assert score([dog, det("cat", (0, 0, 10, 10))], meta).correct  # dx = -0.833
    near = score([dog, det("cat", (9, 0, 19, 10))], meta)  # offset -3: dx = -1/3, within the margin
    assert not near.correct and near.clauses[1]["reason"] == "not left of the dog"
    alone = score([det("cat", (0, 0, 10, 10))], meta)
    assert alone.clauses[1]["reason"] == "reference clause 0 failed"


def test_at_most_16_detections_of_a_class_are_kept():
    many = [det("kite", (i * 3, 0, i * 3 + 2, 2)) for i in range(20)]
    meta = {"tag": "counting", "include": [{"class": "kite", "count": 17}]}
    assert score(many, meta).clauses[0]["reason"] == "found 16 kite, need 17"
