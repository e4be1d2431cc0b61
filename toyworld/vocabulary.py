"""The toy UMM's tokenizer: a closed word-level vocabulary of every word the toy world's prompts, questions,
captions and rubrics use, plus the special tokens of the toy model's prompt templates (models/toy.py), built
locally with `tokenizers` (no hub). A saved toy checkpoint carries its tokenizer; this builds it from scratch
(pretraining, tests)."""

from __future__ import annotations

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from models.toy import SPECIAL
from rewards.rubric import DIMENSIONS, SCHEMA_INSTRUCTION, rubric_from_metadata, rubric_text
from toyworld.prompts import universe
from toyworld.scene import COLORS, RELATIONS, SHAPES

RUBRIC_INSTRUCTION = SCHEMA_INSTRUCTION
QUESTION_WORDS = "is there a are the and same color one two three four yes no ? : ; ,".split()


def vocabulary() -> list[str]:
    words = set(QUESTION_WORDS) | set(DIMENSIONS) | set(COLORS) | set(RELATIONS[0].split())
    words |= {w for s in SHAPES for w in (s, s + "s")} | {w for r in RELATIONS for w in r.split()}
    words |= set(RUBRIC_INSTRUCTION.split())
    for meta in universe():
        words |= set(meta["prompt"].split())
        words |= set(rubric_text(rubric_from_metadata(meta)).split())
    return list(SPECIAL) + sorted(words - set(SPECIAL))


def build_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    # Split on whitespace and keep special tokens like "<image>" whole.
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>", additional_special_tokens=list(SPECIAL[4:]))
