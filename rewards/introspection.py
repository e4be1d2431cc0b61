"""The introspector's rubrics: written by the frozen model, parsed, validated, cached per prompt, with a
documented fallback (Meta-TTRL's rubric construction; DESIGN.md §2).

Fallback, per prompt: the greedy rubric; if it does not parse or fails validation, `retries` sampled attempts;
then the single question "does the image show : <prompt> ?" with target yes. Every fallback is counted.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

from rewards.rubric import RubricItem, RubricParseError, parse_rubric, rubric_from_metadata

Parser = Callable[[str], tuple[list[RubricItem], int]]  # text -> (items, lines refused) (rewards/dialects.py)


def parse_strictly(text: str) -> tuple[list[RubricItem], int]:
    return parse_rubric(text), 0  # the toy form: one bad item refuses the text

MAX_ITEMS = 16


def fallback_rubric(prompt: str) -> list[RubricItem]:
    return [RubricItem("object", f"does the image show : {prompt} ?", "yes")]


def validate(items: list[RubricItem]) -> list[RubricItem]:
    """A usable rubric: 1..MAX_ITEMS items, at least one object question. A question asked twice with the same
    target is kept once; one asked with both targets is contradictory and dropped entirely (the rest of the
    rubric is still good: measured, the toy introspector writes "is A above B ? no" for the converse of a
    spatial question in ~25% of position prompts). Items past MAX_ITEMS are dropped (a chat model asked for
    at most 16 may write 20: the first 16 are a rubric, a one-question fallback would not be)."""
    targets: dict[str, set[str]] = {}
    for item in items:
        targets.setdefault(item.question, set()).add(item.target)
    seen, kept = set(), []
    for item in items:
        if len(targets[item.question]) == 1 and item.question not in seen:
            kept.append(item)
            seen.add(item.question)
    if not kept:
        raise RubricParseError("rubric has no usable items")
    kept = kept[:MAX_ITEMS]
    if not any(i.dimension == "object" for i in kept):
        raise RubricParseError("rubric has no object question")
    return kept


# writer(prompts, attempt) -> texts; attempt 0 is greedy, later attempts sample.
Writer = Callable[[list[str], int], list[str]]


class RubricBook:
    """Rubrics per prompt, written once (the introspector is frozen) and cached."""

    def __init__(self, writer: Writer | None, retries: int = 1, metadata: dict[str, dict] | None = None,
                 style: str = "toy", parse: Parser = parse_strictly):
        if writer is None and metadata is None:
            raise ValueError("a rubric book needs a writer (source=introspector) or metadata (source=metadata)")
        self.writer, self.retries, self.metadata, self.style = writer, retries, metadata, style  # style: metadata's
        self.parse = parse  # the writer's dialect's parser (rewards/dialects.py)
        self.cache: dict[str, list[RubricItem]] = {}
        self.counts = Counter()  # written, retried, repaired (duplicates dropped), fallback

    def get(self, prompts: list[str]) -> list[list[RubricItem]]:
        missing = list(dict.fromkeys(p for p in prompts if p not in self.cache))
        if missing:
            self.cache.update(self._build(missing))
        return [self.cache[p] for p in prompts]

    def _build(self, prompts: list[str]) -> dict[str, list[RubricItem]]:
        if self.writer is None:
            unknown = [p for p in prompts if p not in self.metadata]
            if unknown:
                raise KeyError(f"rubric.source=metadata but no metadata for prompt {unknown[0]!r}")
            return {p: rubric_from_metadata(self.metadata[p], self.style) for p in prompts}
        done, todo = {}, prompts
        for attempt in range(self.retries + 1):
            if not todo:
                break
            self.counts["retried" if attempt else "written"] += len(todo)
            failed = []
            for prompt, text in zip(todo, self.writer(todo, attempt)):
                try:
                    parsed, refused = self.parse(text)
                    done[prompt] = validate(parsed)
                except RubricParseError:
                    failed.append(prompt)
                    continue
                if refused or len(done[prompt]) != len(parsed):  # lines refused, duplicates or extras dropped
                    self.counts["repaired"] += 1
            todo = failed
        for prompt in todo:
            done[prompt] = fallback_rubric(prompt)
        self.counts["fallback"] += len(todo)
        return done

    def state(self) -> dict:
        """Everything needed to restore the cache exactly (checkpoints)."""
        return {"cache": {p: [vars(i) for i in items] for p, items in self.cache.items()}, "counts": dict(self.counts)}

    def load_state(self, state: dict) -> None:
        self.cache = {p: [RubricItem(**i) for i in items] for p, items in state["cache"].items()}
        self.counts = Counter(state["counts"])


# rubric.source: who writes the rubrics -> (model writer, its parser, retries, metadata, style) -> RubricBook;
# style is the benchmark's (rewards/rubric.py: "toy" for the toy model, "english" for a real VLM)
RUBRIC_SOURCES = {
    "introspector": lambda writer, parse, retries, metadata, style: RubricBook(writer, retries, parse=parse),
    "metadata": lambda writer, parse, retries, metadata, style: RubricBook(None, retries, metadata, style),
}
