"""The chat dialect's rubric parser against the table of real-style outputs (tests/fixtures/chat_rubrics.py),
the instruction's own example, and the dialect registry."""

import pytest

from rewards.dialects import CHAT_INSTRUCTION, DIALECTS, dimension_of, parse_chat_rubric, read_chat_rubric, \
    token_budget
from rewards.rubric import RubricItem, RubricParseError
from tests.fixtures.chat_rubrics import CASES


def test_the_table_is_large_enough():
    assert len(CASES) >= 30
    assert len({name for name, *_ in CASES}) == len(CASES)


@pytest.mark.parametrize("name, text, expected, refused", CASES, ids=[c[0] for c in CASES])
def test_each_output_reads_to_its_items_or_is_refused_with_a_reason(name, text, expected, refused):
    if isinstance(expected, str):
        with pytest.raises(RubricParseError, match=expected):
            parse_chat_rubric(text)
        return
    rubric = read_chat_rubric(text)
    assert rubric.items == [RubricItem(*item) for item in expected]
    assert len(rubric.refused) == refused
    assert all(why for _, why in rubric.refused)


def test_the_instructions_own_example_parses_to_its_seven_items():
    example = CHAT_INSTRUCTION.split("cup\":\n", 1)[1].rsplit("\nPrompt:", 1)[0]
    items = parse_chat_rubric(example)
    assert [i.dimension for i in items] == ["object", "object", "count", "attribute", "attribute", "spatial",
                                            "spatial"]
    assert items[-1] == RubricItem("spatial", "Are the apples to the right of the cup?", "no")


def test_the_instruction_names_the_six_dimensions_and_the_format():
    for dim in ("object", "attribute", "count", "spatial", "relation", "style"):
        assert f"{dim} (" in CHAT_INSTRUCTION
    assert "dimension | question | yes or no" in CHAT_INSTRUCTION and "at most 16" in CHAT_INSTRUCTION


@pytest.mark.parametrize("label, dim", [("Spatial relationships", "spatial"), ("**Colour**:", "attribute"),
                                        ("Object presence", "object"), ("Counting", "count"),
                                        ("Relation", "relation"), ("Art style", "style"), ("Emotion", None)])
def test_dimension_labels_by_hand(label, dim):
    assert dimension_of(label) == dim


def test_budgets_per_dialect():
    assert token_budget("toy", 0) == 96 and token_budget("chat", 0) == 384 and token_budget("chat", 50) == 50
    assert set(DIALECTS) == {"toy", "chat"}
    with pytest.raises(ValueError, match="not one of"):
        token_budget("klingon", 0)


def test_the_format_files_dialects_are_the_parsers():
    from models.janus_formats import RUBRIC_DIALECTS
    assert RUBRIC_DIALECTS == tuple(DIALECTS)


def test_janus_pro_writes_in_chat_the_toy_format_in_toy_and_a_bad_dialect_is_named(tmp_path):
    import json

    from models.janus import JanusAdapter
    from models.janus_formats import ADAPTER_FILE, load_format
    from models.toy import TEMPLATES
    from tests.fixtures.janus_pro_like import build, build_tokenizer

    assert load_format(tmp_path, build_tokenizer())["rubric_dialect"] == "chat"  # no meta_ttrl.json: Janus-Pro
    (tmp_path / ADAPTER_FILE).write_text(json.dumps({"templates": TEMPLATES}))
    assert load_format(tmp_path, None)["rubric_dialect"] == "toy"  # files from before the key: the toy model's
    (tmp_path / ADAPTER_FILE).write_text(json.dumps({"templates": TEMPLATES, "rubric_dialect": "pirate"}))
    with pytest.raises(ValueError, match="rubric_dialect 'pirate' is not one of toy, chat"):
        load_format(tmp_path, None)
    model, tok = build()
    saved = tmp_path / "saved"
    pro = JanusAdapter(model, tok, **load_format(tmp_path / "none", tok))
    pro.save_pretrained(saved)
    assert JanusAdapter.from_pretrained(saved).rubric_dialect == "chat"


def test_the_writer_asks_in_the_adapters_dialect_with_its_budget():
    import torch

    from rewards.judges import model_writer

    class Chatty:
        rubric_dialect = "chat"
        asked = None

        def write(self, prompts, instruction, max_new_tokens, temperature, generator):
            self.asked = (instruction, max_new_tokens, temperature)
            return ["object | Is there a dog? | yes"] * len(prompts)

    chatty = Chatty()
    assert model_writer(chatty, 0, torch.Generator())(["a dog"], 1) == ["object | Is there a dog? | yes"]
    assert chatty.asked == (CHAT_INSTRUCTION, 384, 1.0)
    model_writer(chatty, 200, torch.Generator())(["a dog"], 0)
    assert chatty.asked == (CHAT_INSTRUCTION, 200, 0.0)


def test_a_chat_rubric_book_reads_chat_text_and_keeps_the_first_16_of_a_long_rubric():
    from rewards.introspection import MAX_ITEMS, RubricBook

    lines = "Here you go:\n" + "\n".join(f"{k + 1}. object | Is there a thing number {k} in the image? | yes"
                                         for k in range(20))
    book = RubricBook(lambda ps, a: [lines] * len(ps), retries=0, parse=DIALECTS["chat"].parse)
    got = book.get(["twenty things"])[0]
    assert len(got) == MAX_ITEMS == 16 and got[0].question == "Is there a thing number 0 in the image?"
    assert dict(book.counts) == {"written": 1, "repaired": 1, "fallback": 0}
    one_refused = "object | Is there a dog? | yes\ncount | Is there one dog?"
    book = RubricBook(lambda ps, a: [one_refused] * len(ps), retries=0, parse=DIALECTS["chat"].parse)
    assert book.get(["a dog"])[0] == [RubricItem("object", "Is there a dog?", "yes")]
    assert book.counts["repaired"] == 1 and book.counts["fallback"] == 0
