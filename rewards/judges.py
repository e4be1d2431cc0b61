"""The judges an introspector runs (`reward.judge`), as plain objects over model adapters (no Ray): each maps a
rollout batch to rewards, per-sample fallback flags and, for SRUM, dense reward maps.

- rubric (Meta-TTRL; E-TTRL when the judge model is an external one): the judge model writes each prompt's rubric
  (cached in a RubricBook) and answers it (Eq. 5-6).
- vqa_rubric: the same rubric, answered by a separate VQA model (models/git.py).
- srum: the rubric reward as global score, plus oracle-free regions (rewards/regions.py) scored alone on the
  prompt's object questions, painted on the token grid (learners/srum.py).
- gvu: the prompt's likelihood as a caption of the image (rewards/scoring.gvu_rewards).
- oracle: the benchmark's own evaluator, given by the caller (RL leakage: an upper bound, not test-time legal).
- server: whatever a reward server (rewards/server.py) serves, e.g. an external model's rubric judge.
- random, shuffled: reward controls. random draws each reward uniform in [0, 1), blind to image and prompt;
  shuffled hands each group the rubric rewards another group earned (rewards/scoring.groups_swapped). Meta-TTRL
  minus a control, at equal budget, is what the judge's reading of the images adds over GRPO's sharpening alone.

`JUDGES` is the registry (`reward.judge`): each kind's builder and the adapter capabilities it needs
(models/adapter.Capabilities) of the model that judges and of the policy, which the driver checks before a
cluster starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from rewards.introspection import RubricBook, Writer, fallback_rubric
from rewards import srum_prompts
from rewards.regions import isolate, segment, without
from rewards.dialects import dialect, token_budget
from rewards.scoring import groups_swapped, gvu_rewards, question_scores, rubric_rewards
from rewards.srum import region_scores, reward_map, to_score


def model_writer(adapter, max_new_tokens: int, generator: torch.Generator) -> Writer:
    """Rubric writing by a model (RubricBook's writer) in its dialect's instruction and budget (0: the dialect's
    own): greedy first, sampled on retries."""
    instruction, budget = dialect(adapter.rubric_dialect).instruction, token_budget(adapter.rubric_dialect,
                                                                                    max_new_tokens)

    def write(prompts: list[str], attempt: int) -> list[str]:
        return adapter.write(prompts, instruction, budget, temperature=0.0 if attempt == 0 else 1.0,
                             generator=generator)
    return write


@dataclass
class Scored:
    rewards: torch.Tensor  # (N,)
    fallback: list[bool]  # scored on the one-question fallback rubric
    reward_maps: torch.Tensor | None = None  # (N, T) SRUM only


class RubricJudge:
    """Rubrics from `book`; answers (yes/no probabilities) from `answerer`, any models.adapter.Understanding."""

    def __init__(self, book: RubricBook, answerer, chunk: int = 256):
        self.book, self.answerer, self.chunk = book, answerer, chunk

    @torch.no_grad()
    def scores(self, images: np.ndarray, questions: list[str], index: list[int], target: list[bool]) -> torch.Tensor:
        """Eq. 5 score of each question about image `index[q]` (each image encoded once)."""
        features, c = self.answerer.image_features(images), self.chunk
        probs = torch.cat([self.answerer.answer_probs(images, questions[s: s + c], index[s: s + c], features)
                           for s in range(0, len(questions), c)])
        return question_scores(probs.float(), torch.tensor(target))

    def __call__(self, batch) -> Scored:
        rubrics = self.book.get(batch.prompts)
        asked = [(i, item) for i, items in enumerate(rubrics) for item in items]
        scores = self.scores(batch.images, [it.question for _, it in asked], [i for i, _ in asked],
                             [it.target == "yes" for _, it in asked])
        rewards = rubric_rewards(scores, torch.tensor([i for i, _ in asked]), len(batch.prompts))
        return Scored(rewards, [items == fallback_rubric(p) for items, p in zip(rubrics, batch.prompts)])


class SRUMJudge(RubricJudge):
    """One map per image on the policy's rows x cols reward grid. `scoring="yes_no"`: the global score 2 r - 1 from
    the rubric reward r, each region's local score from the prompt's yes-target object and attribute questions
    asked of that region alone, the global score where no region is. `scoring="text"` (the paper's form; a model
    that `ask`s): the scoring prompts of rewards/srum_prompts.py answered in text, for the whole image, each region
    and the background (painted where no region is); an unreadable answer falls back to 2 r - 1 (counted)."""

    def __init__(self, book: RubricBook, answerer, grid: tuple[int, int], scoring: str = "yes_no",
                 max_new_tokens: int = 64):
        super().__init__(book, answerer)
        self.grid, self.scoring, self.max_new_tokens = grid, scoring, max_new_tokens
        self.fallbacks = {"global": 0, "local": 0, "background": 0}

    def __call__(self, batch) -> Scored:
        if self.scoring == "text":
            return self.text_scored(batch)
        scored = super().__call__(batch)
        regions, questions, index, owners = [], [], [], []
        for i, (image, items) in enumerate(zip(batch.images, self.book.get(batch.prompts))):
            asked = [it.question for it in items if it.target == "yes" and it.dimension in ("object", "attribute")]
            for box in segment(image) if asked else []:  # no object question: the map is the global score
                owners.append((i, box, len(asked)))
                questions += asked
                index += [len(regions)] * len(asked)
                regions.append(isolate(image, box))
        scores = self.scores(np.stack(regions), questions, index, [True] * len(questions)) if regions else None
        boxes, local = [[] for _ in batch.prompts], [[] for _ in batch.prompts]
        start = 0
        for i, box, n in owners:  # each region's n question scores -> its local score
            boxes[i].append(box)
            local[i].append(region_scores(scores[start: start + n][None])[0])
            start += n
        maps = [reward_map(float(to_score(r)), torch.tensor(np.array(b, np.float32)).reshape(-1, 4),
                           torch.stack(s) if s else torch.zeros(0), *self.grid).flatten()
                for r, b, s in zip(scored.rewards, boxes, local)]
        return Scored(scored.rewards, scored.fallback, torch.stack(maps))


    def text_scored(self, batch) -> Scored:
        scored = super().__call__(batch)  # the rubric reward: the fallback of an unreadable answer
        boxes = [segment(image) for image in batch.images]
        asked = []  # (image, question, kind, owner)
        for i, (image, prompt) in enumerate(zip(batch.images, batch.prompts)):
            asked.append((image, srum_prompts.GLOBAL.format(prompt=prompt), "global", i))
            asked += [(isolate(image, box), srum_prompts.LOCAL.format(prompt=prompt), "local", i) for box in boxes[i]]
            if len(boxes[i]):
                asked.append((without(image, boxes[i]), srum_prompts.BACKGROUND.format(prompt=prompt), "background", i))
        texts = self.answerer.ask(np.stack([a[0] for a in asked]), [a[1] for a in asked], list(range(len(asked))),
                                  self.max_new_tokens)
        fallback = to_score(scored.rewards)
        found = {"global": {}, "local": [[] for _ in batch.prompts], "background": {}}
        for (_, _, kind, i), text in zip(asked, texts):
            try:
                score = srum_prompts.parse_score(text)[0]
            except srum_prompts.ScoreParseError:
                self.fallbacks[kind] += 1
                score = None
            if kind == "local":
                found[kind][i].append(float(fallback[i]) if score is None else score)
            elif score is not None:
                found[kind][i] = score
        glob = torch.tensor([found["global"].get(i, float(fallback[i])) for i in range(len(batch.prompts))])
        maps = [reward_map(found["background"].get(i, float(glob[i])), torch.tensor(boxes[i]).reshape(-1, 4),
                           torch.tensor(found["local"][i]), *self.grid).flatten() for i in range(len(batch.prompts))]
        return Scored((glob + 1) / 2, scored.fallback, torch.stack(maps))


class GvUJudge:
    def __init__(self, adapter, chunk: int = 64):
        self.adapter, self.chunk = adapter, chunk

    @torch.no_grad()
    def __call__(self, batch) -> Scored:
        logprobs, c = [], self.chunk
        for s in range(0, len(batch.prompts), c):
            logprobs += self.adapter.prompt_logprobs(batch.images[s: s + c], batch.prompts[s: s + c])
        return Scored(gvu_rewards(logprobs), [False] * len(batch.prompts))


class AlignmentJudge:
    """An external reward model's rating of prompt-image alignment, the judge of Meta-TTRL's RL-leakage row (there
    UnifiedReward): one holistic question per image, `question` with the prompt filled in, and the reward is Eq. 5's
    score of "yes", P(yes) / (P(yes) + P(no)) (a yes/no reading of an alignment rating, as VQAScore takes it)."""

    def __init__(self, answerer, question: str, chunk: int = 256):
        self.answerer, self.question, self.chunk = answerer, question, chunk

    @torch.no_grad()
    def __call__(self, batch) -> Scored:
        n, c = len(batch.prompts), self.chunk
        questions = [self.question.format(prompt=p) for p in batch.prompts]
        features = self.answerer.image_features(batch.images)
        probs = torch.cat([self.answerer.answer_probs(batch.images, questions[s: s + c], list(range(s, min(n, s + c))),
                                                      features) for s in range(0, n, c)])
        return Scored(question_scores(probs.float(), torch.ones(n, dtype=torch.bool)), [False] * n)


class OracleJudge:
    """`evaluate(image, metadata) -> bool` of a benchmark, on prompts with metadata."""

    def __init__(self, metadata: dict[str, dict], evaluate: Callable[[np.ndarray, dict], bool]):
        self.metadata, self.evaluate = metadata, evaluate

    def __call__(self, batch) -> Scored:
        missing = [p for p in batch.prompts if p not in self.metadata]
        if missing:
            raise KeyError(f"reward.judge=oracle needs GenEval metadata for prompt {missing[0]!r}")
        verdicts = [self.evaluate(img, self.metadata[p]) for img, p in zip(batch.images, batch.prompts)]
        return Scored(torch.tensor(verdicts, dtype=torch.float32), [False] * len(batch.prompts))


class RandomJudge:
    """Control: a reward uniform in [0, 1) per sample from the introspector's seeded generator, never looking at the
    batch beyond its size (same seed, same rewards, whatever the images)."""

    def __init__(self, generator: torch.Generator):
        self.gen = generator

    def __call__(self, batch) -> Scored:
        n = len(batch.prompts)
        return Scored(torch.rand(n, generator=self.gen, device=self.gen.device).cpu(), [False] * n)


class ShuffledJudge:
    """Control: `inner`'s rewards (the rubric judge), each group's handed to another group of the batch."""

    def __init__(self, inner: RubricJudge, generator: torch.Generator):
        self.inner, self.gen = inner, generator

    def __call__(self, batch) -> Scored:
        scored = self.inner(batch)
        return Scored(groups_swapped(scored.rewards, batch.group_size, self.gen), scored.fallback)


class ServerJudge:
    """Rewards from a reward server's `method`: items {"prompt", "image"} -> one float each."""

    def __init__(self, client, method: str):
        self.client, self.method = client, method

    def __call__(self, batch) -> Scored:
        from rewards import wire
        items = [{"prompt": p, "image": wire.encode_image(img)} for p, img in zip(batch.prompts, batch.images)]
        rewards = self.client.call(self.method, items)
        if not all(isinstance(r, (int, float)) and not isinstance(r, bool) for r in rewards):
            raise ValueError(f"reward server method {self.method!r} answered non-numbers: {rewards[:3]!r}...")
        return Scored(torch.tensor(rewards, dtype=torch.float32), [False] * len(batch.prompts))


@dataclass(frozen=True)
class JudgeContext:
    """What a judge is built from inside an introspector: the reward config, the rubric book, the model that judges
    (the policy's frozen copy, or an external one for E-TTRL), the policy's token grid, the prompts' metadata and
    the benchmark evaluator (for the oracle)."""
    reward_cfg: object
    book: RubricBook
    model: object
    reward_grid: tuple[int, int] | None  # SRUM's maps: the policy's image tokens or flow latents
    metadata: dict
    evaluate: Callable[[np.ndarray, dict], bool] | None = None
    generator: torch.Generator | None = None  # the controls' randomness (checkpointed with the introspector)


def _vqa_rubric(c: JudgeContext):
    from models.git import GitVQA
    return RubricJudge(c.book, GitVQA.from_pretrained(c.reward_cfg.vqa_path))


def _server(c: JudgeContext):
    import os

    from rewards.client import RewardClient
    r = c.reward_cfg
    secret = os.environ.get(r.server_secret_env, "") if r.server_secret_env else ""
    return ServerJudge(RewardClient(r.server, secret.encode() or None, timeout_s=r.server_timeout_s), r.server_method)


@dataclass(frozen=True)
class JudgeKind:
    build: Callable[[JudgeContext], object]
    judge_needs: tuple[str, ...] = ()  # Capabilities the judging model must have
    policy_needs: tuple[str, ...] = ()  # Capabilities the policy must have


JUDGES: dict[str, JudgeKind] = {
    "rubric": JudgeKind(lambda c: RubricJudge(c.book, c.model), judge_needs=("understanding",)),
    "vqa_rubric": JudgeKind(_vqa_rubric, judge_needs=("understanding",)),  # the judge model writes the rubric
    "srum": JudgeKind(lambda c: SRUMJudge(c.book, c.model, c.reward_grid, c.reward_cfg.srum_scores),
                      judge_needs=("understanding",), policy_needs=("reward_maps",)),
    "gvu": JudgeKind(lambda c: GvUJudge(c.model), judge_needs=("prompt_likelihood",)),
    "reward_model": JudgeKind(lambda c: AlignmentJudge(c.model, dialect(c.model.rubric_dialect).alignment_question),
                              judge_needs=("understanding",)),  # reward.model_path: the external reward model
    "oracle": JudgeKind(lambda c: OracleJudge(c.metadata, c.evaluate)),
    "server": JudgeKind(_server),
    "random": JudgeKind(lambda c: RandomJudge(c.generator)),
    "shuffled": JudgeKind(lambda c: ShuffledJudge(RubricJudge(c.book, c.model), c.generator),
                          judge_needs=("understanding",)),
}


def build_judge(context: JudgeContext):
    """The judge `reward.judge` names; VQA models and reward-server clients are created only when selected."""
    kind = context.reward_cfg.judge
    if kind not in JUDGES:
        raise ValueError(f"reward.judge {kind!r} is not one of: {', '.join(JUDGES)}")
    return JUDGES[kind].build(context)
