"""Tests of the toy-world oracle: GenEval's rules (hand-computed), pixel/symbolic agreement, robustness."""

import random
import time

import numpy as np
import pytest

from fixtures import oracle_check as oc
from toyworld.oracle import Detection, detect, score
from toyworld.prompts import TAGS, scene_for, universe
from toyworld.render import render
from toyworld.scene import relations_between


# ---------------------------------------------------------------- relations_between (SCORING.md formula)

def test_relation_left_of():
    # cA = (5, 5), cB = (25, 5): offset = (-20, 0); sizes summed = (20, 20) -> shrink 2 per axis -> (-18, 0)
    # |offset| = 20 -> dx = -18/20 = -0.9 < -0.5 -> "left of"; dy = 0
    assert relations_between((0, 0, 10, 10), (20, 0, 30, 10)) == {"left of"}
    # and the converse: offset (20, 0) -> dx = +0.9 -> "right of"
    assert relations_between((20, 0, 30, 10), (0, 0, 10, 10)) == {"right of"}


def test_relation_diagonal():
    # cA = (5, 5), cB = (25, 25): offset (-20, -20), shrunk (-18, -18), |offset| = 28.28
    # dx = dy = -18/28.28 = -0.636 -> both "left of" and "above"
    assert relations_between((0, 0, 10, 10), (20, 20, 30, 30)) == {"left of", "above"}


def test_relation_shrunk_to_nothing():
    # cA = (5, 5), cB = (6, 6): offset (-1, -1); shrink 0.1 * 20 = 2 > 1 -> (0, 0): both < 1e-3 -> no relation
    assert relations_between((0, 0, 10, 10), (1, 1, 11, 11)) == set()
    # cA = (5, 5), cB = (11, 11): offset (-6, -6) -> shrunk (-4, -4); |offset| = 8.49 -> dx = dy = -0.471:
    # neither passes 0.5 (without the shrink it would be -0.707: left of and above)
    assert relations_between((0, 0, 10, 10), (6, 6, 16, 16)) == set()


def test_relation_unequal_sizes_one_axis_only():
    # cA = (2, 2), cB = (20, 10): offset (-18, -8); sizes (4+20, 4+20) -> shrink 2.4 -> (-15.6, -5.6)
    # |offset| = sqrt(324 + 64) = 19.70 -> dx = -0.792 (left of), dy = -0.284 (not above)
    assert relations_between((0, 0, 4, 4), (10, 0, 30, 20)) == {"left of"}


def test_relation_below_above_y_down():
    # A lower on the image (larger y): cA = (5, 25), cB = (5, 5): offset (0, 20) -> shrunk (0, 18) -> dy = 0.9 -> below
    assert relations_between((0, 20, 10, 30), (0, 0, 10, 10)) == {"below"}
    assert relations_between((0, 0, 10, 10), (0, 20, 10, 30)) == {"above"}


# ---------------------------------------------------------------- score on hand-made detections

def D(shape, color, box=(0, 0, 10, 10), conf=1.0):
    return Detection(shape, color, tuple(float(v) for v in box), conf)


COUNT2 = {"tag": "counting", "prompt": "a photo of two circles",
          "include": [{"class": "circle", "count": 2}], "exclude": [{"class": "circle", "count": 3}]}


def test_counting_is_exactly_n():
    two = [D("circle", "red"), D("circle", "blue")]
    assert score(two, COUNT2).correct
    v1 = score(two[:1], COUNT2)
    assert not v1.correct and "found 1 circle, need 2" in v1.clauses[0]["reason"]
    v3 = score(two + [D("circle", "green")], COUNT2)
    assert not v3.correct
    assert v3.clauses[0]["passed"] and not v3.clauses[1]["passed"]  # include passes, exclude (>= 3) fires
    assert "must be < 3" in v3.clauses[1]["reason"]
    # other classes do not count
    assert score(two + [D("square", "red"), D("triangle", "red")], COUNT2).correct


def test_confidence_thresholds():
    # counting keeps conf > 0.9: a third circle at 0.85 is dropped, so there are exactly two
    dets = [D("circle", "red", conf=0.95), D("circle", "red", conf=0.92), D("circle", "red", conf=0.85)]
    assert score(dets, COUNT2).correct
    # exactly 0.9 is not > 0.9
    assert not score([D("circle", "red", conf=0.9), D("circle", "red", conf=0.95)], COUNT2).correct
    single = {"tag": "single_object", "prompt": "a photo of a circle", "include": [{"class": "circle", "count": 1}]}
    assert score([D("circle", "red", conf=0.31)], single).correct  # > 0.3 outside counting
    assert not score([D("circle", "red", conf=0.3)], single).correct
    assert not score([D("square", "red", conf=1.0)], single).correct


COLOR = {"tag": "colors", "prompt": "a photo of a red square", "include": [{"class": "square", "count": 1, "color": "red"}]}


def test_colour_uses_only_the_count_most_confident():
    # detections are given most-confident-first (as detect returns them)
    assert score([D("square", "red", conf=0.9), D("square", "blue", conf=0.5)], COLOR).correct
    v = score([D("square", "blue", conf=0.9), D("square", "red", conf=0.5)], COLOR)
    assert not v.correct and "need red" in v.clauses[0]["reason"]
    two_red = {"tag": "counting", "prompt": "a photo of two red squares",
               "include": [{"class": "square", "count": 2, "color": "red"}], "exclude": [{"class": "square", "count": 3}]}
    assert score([D("square", "red"), D("square", "red")], two_red).correct
    assert not score([D("square", "red"), D("square", "green")], two_red).correct


POS = {"tag": "position", "prompt": "a photo of a red circle left of a blue square",
       "include": [{"class": "square", "count": 1, "color": "blue"},
                   {"class": "circle", "count": 1, "color": "red", "position": ["left of", 0]}]}
CIRCLE = D("circle", "red", (20, 20, 36, 36))


def test_position_against_group_j():
    right_sq = D("square", "blue", (44, 20, 60, 36))  # circle centre 28 vs 52: left of
    left_sq = D("square", "blue", (0, 20, 16, 36))  # circle centre 28 vs 8: right of
    assert score([right_sq, CIRCLE], POS).correct
    v = score([left_sq, CIRCLE], POS)
    assert not v.correct and v.clauses[0]["passed"] and "not left of the square" in v.clauses[1]["reason"]
    # only group 0's `count` (= 1) most confident square is the reference
    assert score([D("square", "blue", right_sq.box, 0.9), D("square", "blue", left_sq.box, 0.5), CIRCLE], POS).correct
    assert not score([D("square", "blue", left_sq.box, 0.9), D("square", "blue", right_sq.box, 0.5), CIRCLE],
                     POS).correct


def test_position_fails_when_reference_fails():
    v = score([D("square", "green", (44, 20, 60, 36)), CIRCLE], POS)  # reference has the wrong colour
    assert not v.correct
    assert not v.clauses[0]["passed"] and "need blue" in v.clauses[0]["reason"]
    assert not v.clauses[1]["passed"] and v.clauses[1]["reason"] == "reference clause 0 failed"
    v = score([CIRCLE], POS)  # no reference at all
    assert "found 0 square" in v.clauses[0]["reason"] and v.clauses[1]["reason"] == "reference clause 0 failed"


def test_per_clause_reasons():
    meta = {"tag": "color_attr", "prompt": "a photo of a red square and a blue circle",
            "include": [{"class": "square", "count": 1, "color": "red"}, {"class": "circle", "count": 1, "color": "blue"}]}
    v = score([D("square", "red"), D("circle", "green")], meta)
    assert len(v.clauses) == 2 and not v.correct
    assert v.clauses[0]["passed"] and v.clauses[0]["reason"] == ""
    assert not v.clauses[1]["passed"] and "green" in v.clauses[1]["reason"] and "blue" in v.clauses[1]["reason"]
    assert v.clauses[1]["clause"] == meta["include"][1]
    assert len(score([], COUNT2).clauses) == 2  # one include + one exclude


# ---------------------------------------------------------------- pixel path

def test_detect_rejects_non_rgb():
    with pytest.raises(ValueError):
        detect(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError):
        detect(np.zeros((64, 64, 4), np.uint8))


def test_near_miss_is_a_minimal_failing_prompt():
    rng = random.Random(3)
    for tag in TAGS:
        meta = rng.choice([m for m in universe() if m["tag"] == tag])
        objects = scene_for(meta, rng)
        other = oc.near_miss(meta, objects, rng)
        truth = oc.scene_detections(objects)
        wrong = [m for m in universe() if m["tag"] == tag and not score(truth, m).correct]
        assert other is not None and other["tag"] == tag and not score(truth, other).correct
        assert oc.word_distance(meta["prompt"], other["prompt"]) == min(
            oc.word_distance(meta["prompt"], m["prompt"]) for m in wrong)
    assert oc.word_distance("a photo of two red circles", "a photo of three blue circles") == 2


@pytest.mark.parametrize("corrupt", [oc.blur, oc.color_shift, oc.noise, oc.jpeg, oc.all_corruptions])
def test_corruptions_change_pixels_keep_format(corrupt):
    rng = random.Random(0)
    image = render(scene_for(universe()[0], rng))
    out = corrupt(image, rng)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (out != image).any(-1).mean() > 0.02  # at least 2% of pixels changed


AGREEMENT_SIZES = [  # renders per tag: (clean, corrupted); the acceptance sizes run in the slow set
    pytest.param((100, 60), id="quick"),
    pytest.param((500, 200), id="acceptance", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("sizes", AGREEMENT_SIZES)
def test_oracle_agrees_on_clean_and_corrupted_renders(sizes):
    """Matching (prompt, render) pairs pass and near-miss pairs fail, per tag, on clean renders (>= 99%) and under
    blur + colour shift + noise + JPEG (>= 97% per tag, within 2 points of clean overall)."""
    n_clean, n_noisy = sizes
    t = time.perf_counter()
    clean = oc.agreement(n_clean, seed=0)
    print(f"\nclean agreement({n_clean}): {time.perf_counter() - t:.1f} s; "
          + "; ".join(f"{k}: {v['match_pass']:.3f}/{v['mismatch_fail']:.3f}" for k, v in clean["per_tag"].items()))
    for tag in TAGS:
        stats = clean["per_tag"][tag]
        assert stats["n"] == n_clean
        assert stats["match_pass"] >= 0.99, (tag, stats)
        assert stats["mismatch_fail"] >= 0.99, (tag, stats)
    noisy = oc.agreement(n_noisy, seed=1, corrupt=oc.all_corruptions)
    print(f"corrupted agreement({n_noisy}): "
          + "; ".join(f"{k}: {v['match_pass']:.3f}/{v['mismatch_fail']:.3f}" for k, v in noisy["per_tag"].items()))
    assert noisy["match_pass"] >= clean["match_pass"] - 0.02
    assert noisy["mismatch_fail"] >= clean["mismatch_fail"] - 0.02
    for tag in TAGS:
        assert noisy["per_tag"][tag]["match_pass"] >= 0.97, (tag, noisy["per_tag"][tag])
        assert noisy["per_tag"][tag]["mismatch_fail"] >= 0.97, (tag, noisy["per_tag"][tag])
