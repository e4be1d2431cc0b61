"""The method family as job overrides, shared by launch/compare.py (one seed) and launch/sweep.py (seeds): the
trained methods and the reward controls are the Meta-TTRL job with other keys; Best-of-N and MILR run without
training on the same sample budget."""

from __future__ import annotations

import time

# trained methods: overrides of the Meta-TTRL job (a {key} is filled from the caller's own arguments)
TRAINED = {"meta_ttrl": ["reward.judge=rubric"], "gvu": ["reward.judge=gvu"],
           "srum": ["reward.judge=srum", "trainer.algorithm=srum"],
           "vqa_rubric": ["reward.judge=vqa_rubric", "reward.vqa_path={vqa_path}"],
           "e_ttrl": ["reward.judge=rubric", "reward.model_path={external}"],
           "oracle_grpo": ["reward.judge=oracle"],
           "reward_model": ["reward.judge=reward_model", "reward.model_path={external}"]}
# reward controls (rewards/judges.py), Meta-TTRL on rubrics built from the prompt's metadata, Meta-TTRL on LoRA
CONTROLS = {"random": ["reward.judge=random"], "shuffled": ["reward.judge=shuffled"],
            "metadata_rubric": ["reward.judge=rubric", "rubric.source=metadata"],
            # Meta-TTRL training LoRA adapters (rank 16 on the toy's 192-wide language model) at 10x the full lr
            "meta_ttrl_lora": ["reward.judge=rubric", "model.lora.rank=16", "model.lora.alpha=32", "grpo.lr=5e-4"]}
# method -> the argument it cannot run without
NEEDS = {"vqa_rubric": "vqa_path", "e_ttrl": "external", "reward_model": "external"}
MILR_SAMPLES = 2  # images per MILR step: the fewest a REINFORCE baseline works with, so K can be largest


def best_of_n_n(budget: int, n_prompts: int) -> int:
    """Candidates per prompt spending `budget` samples over the split (at least 2: one is no choice)."""
    return max(2, round(budget / n_prompts))


def milr_k(budget: int, n_prompts: int) -> int:
    """MILR's step limit K: K x MILR_SAMPLES images per prompt spend at most `budget` (early stops use fewer)."""
    return max(1, budget // (n_prompts * MILR_SAMPLES))


def per_split(run, overrides: list[str], extra: list[str]) -> dict:
    """A no-training method (`run(argv) -> table`) on test and on heldout."""
    t0, result = time.time(), {}
    for split in ("test", "heldout"):
        result[split] = run(overrides + extra + [f"data.split={split}", "data.heldout="])
    return result | {"wall_s": time.time() - t0}
