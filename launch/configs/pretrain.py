"""Configs of the toy world's trainers: the toy UMM's pretraining (launch/pretrain_toy.py) and the toy GIT's
(launch/train_toy_vqa.py). Bad tail options fail at once, not after half an hour of pretraining."""

from __future__ import annotations

from dataclasses import dataclass

from driver.cli import UserError
from launch.configs.checks import above, at_least, fraction
from models.toy import EMBEDDED
from toyworld.pretrain import N_PATCH_TYPES
from toyworld.pretrain_stages import question_kinds


@dataclass
class PretrainConfig:
    out: str = str(EMBEDDED)
    seed: int = 0
    threads: int = 2
    hidden: int = 160
    layers: int = 4
    vision_layers: int = 2
    codebook: int = 512
    vq_steps: int = 700
    vq_batch: int = 12
    vq_lr: float = 2e-3
    vq_warmup_fraction: float = 0.0  # autoencoder steps before k-means seeds the codebook (0: off)
    vq_type_loss: bool = True  # auxiliary patch-type classifier on the VQ latents (see toyworld.pretrain.vq_loss)
    consolidate_codes: bool = False  # one code per patch type after VQ (toyworld.pretrain.consolidate_codebook)
    symbolic_steps: int = 500  # understanding + rubrics on scenes written as word embeddings (no generation)
    joint_steps: int = 900  # then all tasks, understanding on the model's own vision features
    tail_steps: int = 300  # then understanding with `tail_kinds` + rubric and generation replay, constant `tail_lr`
    tail_kinds: str = "object,attribute,count,spatial,spatial,relation"  # comma list; a repeated kind is weighted
    tail_lr: float = 5e-4
    tail_gen_batch: int = 24
    tail_gen_tag_balanced: bool = True  # the tail's generation replay drawn tag by tag (see gen_tag_balanced)
    tail_retarget_codes: bool = False  # before the tail, code t means patch type t (retarget_codes) and the
    # generator's head rows and code embeddings train factored by colour and (shape, quadrant) (TypeFactored)
    tail_gen_only_steps: int = 0  # generation-only steps (batch `tail_gen_batch`) after each tail step
    tail_shape_first: float = 0.0  # share of the tail whose generation prompts name no colour (then all train
    # prompts): shape words learned before colour words, so a colour word does not decide the shape
    tail_color_only: float = 0.0  # after the shape-first share, this share of colour-naming generation rows hide
    # their shape words ("a photo of a red <pad>"), so a colour word sets the colour whatever the shape word
    gen_tag_balanced: bool = False  # generation prompts drawn tag by tag (else uniform over train prompts: 76% position)
    hard_negatives_symbolic: float = 0.3  # share of colour-shape negatives that are binding negatives (when the
    hard_negatives: float = 0.5  # scene allows one) in the symbolic phase / in the joint phase
    align_weight: float = 1.0
    gen_batch: int = 24  # ~80 tokens a row: generation gets the smaller share of every step's compute
    und_batch: int = 24  # ~160 tokens a row: image, caption (half the rows) and 8 isolated yes/no questions
    rubric_batch: int = 8
    lr: float = 1.5e-3
    warmup: int = 100
    log_every: int = 100
    eval_prompts: int = 40
    vision_hidden: int = 128
    measure_after: bool = True  # measure understanding, rubrics and generation on test and heldout
    # The composition tail, after the tail: `train_tail` again with these options, the generator retargeted and
    # factored (docs/results/toy_umm.md, "Composition"); lr and batches as the tail's
    compose_steps: int = 300
    compose_kinds: str = "object,attribute,attribute,count,spatial,spatial,relation"
    compose_gen_only_steps: int = 2
    compose_shape_first: float = 0.5
    compose_color_only: float = 0.25

    def __post_init__(self):
        at_least("", self, threads=1, codebook=1, vq_batch=1, und_batch=1, rubric_batch=1, gen_batch=1,
                 tail_gen_batch=0, log_every=1, eval_prompts=1)
        for key in ("vq_warmup_fraction", "hard_negatives", "hard_negatives_symbolic"):
            fraction(key, getattr(self, key))
        for prefix in ("tail", "compose"):
            self.check_tail_options(prefix)
        for wanted, what, off in ((self.consolidate_codes, "consolidate_codes", "consolidate_codes=false"),
                                  (self.tail_retarget_codes and self.tail_steps > 0, "tail_retarget_codes",
                                   "tail_retarget_codes=false"),
                                  (self.compose_steps > 0, "the composition tail", "compose_steps=0")):
            if wanted and self.codebook < N_PATCH_TYPES:
                raise UserError(f"{what} gives each of the {N_PATCH_TYPES} patch types its own code: codebook must "
                                f"be >= {N_PATCH_TYPES} (got {self.codebook}), or set {off}")

    def check_tail_options(self, prefix: str) -> None:
        try:
            question_kinds(getattr(self, f"{prefix}_kinds"), f"{prefix}_kinds")
        except ValueError as e:
            raise UserError(str(e)) from None
        for key in (f"{prefix}_shape_first", f"{prefix}_color_only"):
            if not 0 <= getattr(self, key) <= 1:
                raise UserError(f"{key} is a share: 0 to 1 (got {getattr(self, key)})")
        key = f"{prefix}_gen_only_steps"
        if getattr(self, key) < 0:
            raise UserError(f"{key} counts steps per tail step: >= 0 (got {getattr(self, key)})")


@dataclass
class VQATrainConfig:
    out: str = "models/toy_git"
    minutes: float = 10.0  # wall-clock budget (the run stops at whichever of minutes / steps comes first)
    steps: int = 0  # 0: until the time budget
    batch: int = 64  # images per step, one question each
    lr: float = 5e-4
    hidden: int = 96
    layers: int = 3
    threads: int = 2
    seed: int = 0

    def __post_init__(self):
        at_least("", self, steps=(0, "0: until the time budget"), batch=1, hidden=1, layers=1, threads=1)
        above("", self, minutes=0.0, lr=0.0)
