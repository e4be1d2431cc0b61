"""The learning-algorithm registry (`trainer.algorithm`): how a learner rank turns a step's judgements into an
update, each behind GRPOTrainer's interface (`step`, `state`, `load_state`, `params`, `optim`)."""

from __future__ import annotations

from learners.grpo_trainer import GRPOTrainer
from learners.srum_trainer import SRUMTrainer

TRAINERS = {
    "grpo": GRPOTrainer,  # Eq. 7-8
    "srum": SRUMTrainer,  # reward-weighted likelihood on the judge's reward maps (needs reward.judge=srum)
}
