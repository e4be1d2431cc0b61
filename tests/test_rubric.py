import pytest

from rewards.rubric import RubricItem, RubricParseError, parse_rubric, rubric_from_metadata, rubric_text
from toyworld.prompts import universe


def test_builder_position_with_colours_by_hand():
    meta = {"tag": "position", "prompt": "a photo of a red circle left of a blue square",
            "include": [{"class": "square", "count": 1, "color": "blue"},
                        {"class": "circle", "count": 1, "color": "red", "position": ["left of", 0]}]}
    assert rubric_text(rubric_from_metadata(meta)) == (
        "object : is there a square ? yes ; object : is there a circle ? yes ; "
        "attribute : is the square blue ? yes ; attribute : is the circle red ? yes ; "
        "spatial : is the red circle left of the blue square ? yes ; "
        "spatial : is the red circle right of the blue square ? no")


def test_builder_counting_and_color_attr_by_hand():
    count = {"tag": "counting", "prompt": "a photo of three red circles",
             "include": [{"class": "circle", "count": 3, "color": "red"}], "exclude": [{"class": "circle", "count": 4}]}
    assert rubric_from_metadata(count) == [RubricItem("object", "is there a circle ?", "yes"),
                                           RubricItem("count", "are there three red circles ?", "yes")]
    same = {"tag": "color_attr", "prompt": "a photo of a green square and a green triangle",
            "include": [{"class": "square", "count": 1, "color": "green"},
                        {"class": "triangle", "count": 1, "color": "green"}]}
    assert rubric_from_metadata(same)[-1] == RubricItem(
        "relation", "are the square and the triangle the same color ?", "yes")


def test_parser_round_trips_every_universe_rubric():
    for meta in universe():
        items = rubric_from_metadata(meta)
        assert parse_rubric(rubric_text(items)) == items


def test_parser_is_tolerant_of_case_spacing_and_trailing_separator():
    text = "Object: Is there a   circle?Yes ;  COUNT : are there two circles ? No ;"
    assert parse_rubric(text) == [RubricItem("object", "is there a circle ?", "yes"),
                                  RubricItem("count", "are there two circles ?", "no")]


@pytest.mark.parametrize("text, message", [
    ("", "empty rubric"),
    ("object : is there a circle ? maybe", "not yes/no"),
    ("colour : is there a circle ? yes", "unknown dimension"),
    ("object is there a circle yes", "is not 'dimension"),
])
def test_parser_names_the_bad_item(text, message):
    with pytest.raises(RubricParseError, match=message):
        parse_rubric(text)
