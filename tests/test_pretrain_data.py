"""Training data of the toy UMM: isolated question segments and patch-type labels, checked by hand."""
import pytest
import torch

from toyworld.pretrain import IGNORE, JointData, patch_types, text_loss
from toyworld.scene import Obj


def _segments(data):
    return [[[("<cap>", False), ("a red circle <eos>", True)],
             [("<q> is there a circle ? <a>", False), ("yes", True)],
             [("<q> is there a square ? <a>", False), ("no", True)]]]


def test_segments_see_the_prefix_and_themselves_only(tiny_adapter):
    data = JointData(tiny_adapter, seed=0)
    b = data.segment_batch("<bos> <a>", _segments(data))
    tok = tiny_adapter.tok
    words = tok.convert_ids_to_tokens(b.ids[0].tolist())
    # prefix of 2 tokens, then segments of 5, 8, 8 tokens; each segment restarts at position 2.
    assert words[:3] == ["<bos>", "<a>", "<cap>"] and len(words) == 2 + 5 + 8 + 8
    assert b.positions[0, :7].tolist() == list(range(7))
    assert b.positions[0, 7:15].tolist() == list(range(2, 10)) and b.positions[0, 15:].tolist() == list(range(2, 10))
    attend = b.attend[0, 0]
    first_q, second_q = 7, 15
    assert attend[second_q, :2].all() and not attend[second_q, 2:second_q].any() and attend[second_q, second_q]
    assert attend[first_q + 7, first_q:first_q + 8].all() and not attend[first_q + 7, first_q + 8:].any()
    supervised = [w for w, lab in zip(words, b.labels[0].tolist()) if lab != IGNORE]
    assert supervised == ["a", "red", "circle", "<eos>", "yes", "no"]


def test_a_segment_loss_does_not_depend_on_other_segments(tiny_adapter):
    data = JointData(tiny_adapter, seed=0)
    rows = _segments(data)
    other = [[rows[0][0], [("<q> are there two circles ? <a>", False), ("yes", True)], rows[0][2]]]
    a, b = data.segment_batch("<bos>", rows), data.segment_batch("<bos>", other)
    for batch in (a, b):  # supervise only the last segment
        batch.labels[0, :15] = IGNORE  # prefix, caption and first question
    with torch.no_grad():
        la = text_loss(tiny_adapter, a.ids, a.labels, positions=a.positions, attend=a.attend)
        lb = text_loss(tiny_adapter, b.ids, b.labels, positions=b.positions, attend=b.attend)
    assert torch.isclose(la, lb, atol=1e-6)


def test_patch_types_label_each_quadrant_of_an_object():
    # A red square centred at (16, 24): tokens (x 1-2, y 2-3) of the 8 x 8 grid; blue circle at (48, 48).
    types = patch_types([[Obj("square", "red", 16, 24, 16), Obj("circle", "blue", 48, 48, 16)]])[0].view(8, 8)
    red_square = 1 + (0 * 3 + 0) * 4  # colour index 0, shape index 0
    blue_circle = 1 + (3 * 3 + 1) * 4
    assert types[2, 1] == red_square and types[2, 2] == red_square + 1
    assert types[3, 1] == red_square + 2 and types[3, 2] == red_square + 3
    assert types[5, 5] == blue_circle and types[6, 6] == blue_circle + 3
    assert (types > 0).sum() == 8 and types.max() < 1 + 5 * 3 * 4


def test_every_labelled_answer_is_the_truth_for_its_own_image(tiny_adapter):
    from toyworld.questions import answer

    data = JointData(tiny_adapter, seed=1, questions_per_image=4)
    batch, _, objs = data.understanding(12)
    tok = tiny_adapter.tok
    checked = 0
    for row in range(len(objs)):
        words = tok.convert_ids_to_tokens(batch.ids[row].tolist())
        for start in (i for i, w in enumerate(words) if w == "<q>"):
            end = words.index("<a>", start)
            assert answer(objs[row], " ".join(words[start + 1:end])) == words[end + 1]
            assert batch.labels[row, end + 1] == batch.ids[row, end + 1]  # the answer is supervised
            checked += 1
    assert checked >= 40


def test_symbolic_scene_holds_colour_shape_and_centre_words_on_object_tokens_only(tiny_adapter):
    from toyworld.pretrain import symbolic_features, without_background

    square = Obj("square", "red", 16, 24, 16)
    feats = symbolic_features(tiny_adapter, [[square]])[0].view(8, 8, -1)
    table = tiny_adapter.model.get_input_embeddings().weight
    red, sq, right, below = (tiny_adapter.tok.convert_tokens_to_ids(w) for w in ("red", "square", "right", "below"))
    # centre (16, 24) on the 64-px canvas -> x = 2 * 16 / 64 - 1 = -0.5, y = 2 * 24 / 64 - 1 = -0.25
    for y, x in ((2, 1), (2, 2), (3, 1), (3, 2)):
        assert torch.allclose(feats[y, x], table[red] + table[sq] - 0.5 * table[right] - 0.25 * table[below])
    assert feats.abs().sum() > 0 and feats[0, 0].abs().sum() == 0 and (feats.abs().sum(-1) > 0).sum() == 4

    data = JointData(tiny_adapter, seed=0)
    batch = data.segment_batch(tiny_adapter._fill("image"), [[[("<q> is there a square ? <a>", False), ("yes", True)]]])
    attend = without_background(tiny_adapter, batch, [[square]])[0, 0]
    last = int((batch.ids[0] != tiny_adapter.pad_id).sum()) - 1
    image_keys = attend[last, 1:65].view(8, 8)  # keys 1..64 are the image tokens after <bos>
    assert image_keys.sum() == 4 and image_keys[2, 1] and image_keys[3, 2] and attend[last, 0]


def test_consolidated_codebook_puts_each_type_at_its_own_index_and_copies_synonyms():
    import pytest

    from toyworld.pretrain import N_PATCH_TYPES, code_usage, consolidate_codebook

    n_codes = 80
    codebook = torch.arange(n_codes * 2, dtype=torch.float32).view(n_codes, 2)  # every row distinct
    canonical = [(7 * t) % N_PATCH_TYPES for t in range(N_PATCH_TYPES)]  # a permutation of 0..60
    types = torch.tensor(list(range(N_PATCH_TYPES)) * 5 + [3, 0, 0])
    codes = torch.tensor(canonical * 5 + [70, 75, 75])  # code 70: a synonym of type 3, code 75 of background
    usage = code_usage(codes, types, n_codes)
    assert usage[3, 21] == 5 and usage[3, 70] == 1 and usage[0, 75] == 2 and usage.sum() == len(codes)
    out = consolidate_codebook(codebook, usage)
    for t in range(N_PATCH_TYPES):
        assert torch.equal(out[t], codebook[canonical[t]])
    assert torch.equal(out[70], codebook[21])  # type 3's canonical entry (7 * 3 = 21)
    assert torch.equal(out[75], codebook[0]) and torch.equal(out[61], codebook[0])  # background's; 61 was unused
    usage[5] = 0
    with pytest.raises(ValueError, match=r"patch types \[5\] never occurred"):
        consolidate_codebook(codebook, usage)
    with pytest.raises(ValueError, match="fewer codes"):
        consolidate_codebook(codebook[:32], code_usage(codes % 32, types, 32))



def test_retargeted_codes_carry_the_generator_rows_of_their_type():
    from toyworld.pretrain import N_PATCH_TYPES, code_usage, retarget_codes

    n_codes = 80
    canonical = [(7 * t) % N_PATCH_TYPES for t in range(N_PATCH_TYPES)]  # type t's most-used code
    types = torch.tensor(list(range(N_PATCH_TYPES)) * 5 + [3, 0])
    usage = code_usage(torch.tensor(canonical * 5 + [70, 75]), types, n_codes)  # 70: type 3's synonym, 75: bg's
    old = [torch.arange(n_codes * k, dtype=torch.float32).view(n_codes, k) for k in (2, 3, 4)]
    codebook, embeddings, head = (t.clone() for t in old)
    bias = torch.arange(n_codes, dtype=torch.float32)
    retarget_codes(codebook, embeddings, head, bias, usage)
    for new, before in zip((codebook, embeddings, head), old):
        assert torch.equal(new[22], before[32])  # type 22's most-used code: 7 * 22 % 61 = 32
        assert torch.equal(new[70], before[21])  # a synonym copies its type's (3 -> 21) entry
        assert torch.equal(new[66], before[0])  # an unused code copies background's (0 -> 0)
    assert bias[22] == 32 and bias[5] == 35 and (bias[N_PATCH_TYPES:] == -30).all()


def test_type_factored_table_is_colour_plus_shape_quadrant_and_bakes_into_plain_weights():
    from torch.nn.utils import parametrize

    from toyworld.pretrain_stages import factored_generator
    from toyworld.pretrain import N_PATCH_TYPES, TypeFactored

    color = torch.arange(5, dtype=torch.float32)[:, None] * 100  # colour c adds 100 c
    shape_quadrant = torch.arange(12, dtype=torch.float32)[None, :]  # (shape, quadrant) k adds k
    table = torch.full((64, 1), 7.0)
    table[1:N_PATCH_TYPES, 0] = (color + shape_quadrant).flatten()
    assert torch.allclose(TypeFactored(table)(table), table)  # additive: reproduced exactly, free rows kept
    bumped = table.clone()
    bumped[1 + 2 * 12 + 5, 0] += 60.0  # one (colour 2, shape-quadrant 5) entry off the additive pattern
    fitted = TypeFactored(bumped)(bumped)
    # two-way means: the bump spreads as 60/12 (its colour) + 60/5 (its shape-quadrant) - 60/60 (grand mean)
    assert fitted[1 + 2 * 12 + 5, 0].item() == pytest.approx(table[1 + 2 * 12 + 5, 0].item() + 16.0)
    assert fitted[1 + 2 * 12 + 6, 0].item() == pytest.approx(table[1 + 2 * 12 + 6, 0].item() + 4.0)  # 60/12 - 1
    assert fitted[0, 0] == 7.0 and fitted[63, 0] == 7.0

    torch.manual_seed(0)
    head, embeddings = torch.nn.Linear(3, 64), torch.nn.Embedding(64, 3)
    model = torch.nn.Module()
    model.model = torch.nn.Module()
    model.model.generation_head = torch.nn.Module()
    model.model.generation_head.vision_head, model.model.generation_embeddings = head, embeddings
    with factored_generator(model, True):
        assert parametrize.is_parametrized(head, "weight") and parametrize.is_parametrized(embeddings, "weight")
        before = embeddings.weight.detach().clone()
        embeddings.parametrizations.weight[0].factors.data[0] += 1.0  # colour red's factor moves every red row
        inside = embeddings.weight.detach().clone()
    assert torch.allclose(inside[1:13], before[1:13] + 1, atol=1e-6) and torch.equal(inside[13:], before[13:])
    assert not parametrize.is_parametrized(embeddings) and torch.equal(embeddings.weight, inside)
    assert isinstance(embeddings.weight, torch.nn.Parameter)
    red, blue = embeddings.weight[1:13], embeddings.weight[1 + 3 * 12: 1 + 4 * 12]
    # the same (shape, quadrant) pattern per colour; float sums near 0: an absolute tolerance, not a relative one
    assert torch.allclose(red - red.mean(0), blue - blue.mean(0), atol=1e-6)


def test_tag_balanced_generation_data_draws_each_tag_equally_and_codes_can_be_patch_types(tiny_adapter):
    from collections import Counter

    from toyworld.prompts import TAGS

    def tag_shares(data, n=1200):
        seen = Counter(m["tag"] for m in data.generation_metas(n))
        return {t: seen[t] / n for t in TAGS}

    balanced = tag_shares(JointData(tiny_adapter, seed=0, tag_balanced=True))
    assert all(abs(share - 1 / 6) < 0.04 for share in balanced.values()), balanced
    assert tag_shares(JointData(tiny_adapter, seed=0))["position"] > 0.7  # the train split is mostly position
    ids, mask, codes = JointData(tiny_adapter, seed=0, codes_are_types=True).generation(5)
    assert codes.shape == (5, 64) and (codes > 0).any() and codes.max() < 61 and len(ids) == 5


def test_names_a_color_reads_the_colour_of_any_clause():
    from toyworld.prompts import _colors, _counting, _position, _single, _two, names_a_color

    assert not names_a_color(_single("triangle")) and not names_a_color(_two("circle", "square"))
    assert not names_a_color(_counting("square", 3)) and not names_a_color(_position("circle", "above", "square"))
    assert names_a_color(_colors("triangle", "purple")) and names_a_color(_counting("square", 2, "red"))
    assert names_a_color(_position("circle", "left of", "square", "blue", "green"))


def test_generation_prompts_can_be_narrowed_to_colourless_train_ones_only(tiny_adapter):
    from toyworld.prompts import load_split, names_a_color

    data = JointData(tiny_adapter, seed=0, tag_balanced=True)
    train = data.train_pool
    data.use_generation_prompts([m for m in train if not names_a_color(m)])
    drawn = data.generation_metas(400)
    assert not any(names_a_color(m) for m in drawn)
    assert {m["tag"] for m in drawn} == {"single_object", "two_object", "counting", "position"}  # tag by tag still
    data.use_generation_prompts(train)
    assert sum(names_a_color(m) for m in data.generation_metas(400)) > 150  # colours, colour_attr and most others
    with pytest.raises(ValueError, match="no generation prompts"):
        data.use_generation_prompts([])
    heldout = load_split("heldout")[0]
    with pytest.raises(ValueError, match=f"1 generation prompts are not train prompts, e.g. '{heldout['prompt']}'"):
        data.use_generation_prompts(train + [heldout])


def test_color_only_rows_hide_the_shape_words_of_colour_naming_prompts_only(tiny_adapter):
    """color_only_p=1: every colour-naming row loses its shape words to <pad> (colour and relation words kept);
    colourless rows are untouched; p=0 draws exactly what a stream without the option draws."""
    from toyworld.prompts import load_split, names_a_color

    train = load_split("train")
    colored = next(m for m in train if m["tag"] == "position" and all("color" in c for c in m["include"]))
    plain = next(m for m in train if m["tag"] == "counting" and not names_a_color(m))
    data = JointData(tiny_adapter, seed=0)
    data.use_generation_prompts([colored, plain])
    data.uncond_p, data.color_only_p = 0.0, 1.0
    ids, mask, _ = data.generation(12)
    tok = tiny_adapter.tok
    words = [[w for w in tok.convert_ids_to_tokens(row[m.bool()].tolist()) if w != "<pad>"]
             for row, m in zip(ids, mask)]
    seen = {" ".join(w) for w in words}
    shape = colored["include"][1]["class"]
    hidden = colored["prompt"].replace(" " + colored["include"][0]["class"], "").replace(" " + shape, "")
    assert seen == {f"<bos> {hidden} <boi>", f"<bos> {plain['prompt']} <boi>"}, seen
    assert colored["include"][0]["color"] in hidden and colored["include"][1]["position"][0] in hidden

    def stream(p):
        d = JointData(tiny_adapter, seed=3)
        d.color_only_p = p
        return d.generation(6)[0]

    base = JointData(tiny_adapter, seed=3).generation(6)[0]
    assert torch.equal(stream(0.0), base) and not torch.equal(stream(1.0), base)
