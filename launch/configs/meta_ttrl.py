"""Meta-TTRL job config (OmegaConf structured; `key=value` dotlist overrides on the command line).

The defaults are the embedded toy world: the committed toy UMM, test-time RL on the `test` split, CPU actors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ModelConfig:
    path: str = str(ROOT / "models" / "toy_umm")
    threads: int = 1  # torch CPU threads per actor
    dtype: str = "auto"  # auto (bfloat16 on GPU, float32 on CPU) | float32 | bfloat16 | float16
    # a flow pipeline whose text encoders cannot see images (SD3, FLUX): the Qwen2.5-VL directory that writes and
    # answers its rubrics (Qwen-Image and Janus models understand with their own weights: leave empty)
    understanding_path: str = ""


@dataclass
class DataConfig:
    split: str = "test"  # where test-time RL runs: a built-in split or a GenEval-format .jsonl
    heldout: Optional[str] = "heldout"  # measured before and after, never trained on (`data.heldout=` to skip)
    prompts_per_step: int = 8
    eval_samples: int = 8  # images per prompt in the before/after evaluation (some tags have only 3 prompts)
    eval_max_prompts: int = 0  # 0 = every prompt


@dataclass
class RolloutConfig:
    actors: int = 1
    group_size: int = 8  # G candidates per prompt
    guidance: float = 3.0  # CFG scale, identical in sampling and in the training log-prob
    temperature: float = 1.0


@dataclass
class RubricConfig:
    source: str = "introspector"  # introspector (the frozen model writes it) | metadata (GenEval-format builder)
    retries: int = 1  # extra attempts (sampled, not greedy) before the one-question fallback
    max_new_tokens: int = 96


@dataclass
class RewardConfig:
    # rubric: Meta-TTRL (the judge model's own rubric, Eq. 5-6) | vqa_rubric: that rubric answered by a GIT VQA model
    # | srum: rubric reward as global score plus per-region local scores, as dense maps (for trainer.algorithm=srum)
    # | gvu: the prompt's likelihood as a caption of the image | oracle: the toy world's evaluator (RL leakage: an
    # upper bound, not test-time legal) | server: whatever a reward server's method returns (rewards/judges.py)
    judge: str = "rubric"
    model_path: str = ""  # the judge model (Janus layout); "" = the policy's own frozen copy, else E-TTRL
    vqa_path: str = ""  # GIT directory (Hugging Face layout) answering the rubric, for judge=vqa_rubric
    server: str = ""  # tcp://host:port of a reward server (launch/reward_server.py), for judge=server
    server_method: str = "rubric"
    server_secret_env: str = "META_TTRL_REWARD_SECRET"  # environment variable holding the HMAC secret ("" = none)
    server_timeout_s: float = 60.0
    # transformers (in-process, any device) | vllm (GPU only, `meta-ttrl[vllm]`): writes and answers rubrics with a
    # vLLM engine over reward.model_path (a VLM vLLM serves, e.g. Qwen2.5-VL); judges rubric / srum
    backend: str = "transformers"
    vllm_gpu_memory: float = 0.4  # fraction of the introspector's GPU the vLLM engine may take


@dataclass
class GRPOConfig:
    lr: float = 5e-5  # defaults measured in docs/results/meta_ttrl.md
    beta: float = 0.02  # k3 KL weight to the frozen reference
    clip_low: float = 0.2
    clip_high: float = 0.28
    epochs: int = 1  # passes over each step's samples
    minibatch: int = 16  # sequences per optimiser step
    max_grad_norm: float = 1.0
    weight_decay: float = 0.0
    warmup_steps: int = 0  # optimiser steps of linear lr warm-up (0: constant lr)
    aggregation: str = "token-mean"


@dataclass
class PlacementConfig:
    """Resources of one actor of a role; each role gets its own placement group of `actors` such bundles."""
    num_cpus: float = 1.0
    num_gpus: float = 0.0


@dataclass
class ResourcesConfig:
    rollout: PlacementConfig = field(default_factory=PlacementConfig)
    introspector: PlacementConfig = field(default_factory=PlacementConfig)
    learner: PlacementConfig = field(default_factory=PlacementConfig)
    strategy: str = "PACK"  # Ray placement strategy for every role's group


@dataclass
class SyncConfig:
    backend: str = "auto"  # auto (nccl on GPU, gloo on CPU) | gloo | nccl
    bucket_mb: float = 64.0


@dataclass
class TrainerConfig:
    steps: int = 100  # T
    # grpo (Eq. 7-8) | srum (reward-weighted likelihood on the judge's reward maps; needs reward.judge=srum)
    algorithm: str = "grpo"
    converge_window: int = 0  # stop early when the mean reward over this many steps stops rising (0: off)
    converge_tol: float = 1e-3
    async_mode: bool = True  # overlap rollout of step t+1 with the update of step t (false: strictly on-policy)
    max_staleness: int = 1  # async: samples at most this many weight versions old; the pipeline runs this far ahead
    learners: int = 1  # K data-parallel learner ranks
    strategy: str = "torch"  # torch (AdamW, bucketed gradient all-reduce) | deepspeed (ZeRO over the learner ranks)
    zero_stage: int = 2  # deepspeed: 1 (optimizer states sharded), 2 (+ gradients) or 3 (+ parameters)
    # deepspeed: merged into the DeepSpeed config the learner builds (e.g. {zero_optimization:
    # {stage3_param_persistence_threshold: 0}}); batch sizes, clipping, optimizer and precision stay the job's
    deepspeed: dict = field(default_factory=dict)
    introspectors: int = 1
    max_actor_restarts: int = 3  # per actor: Ray restarts a dead actor this often; the driver brings it up to date
    max_recoveries: int = 5  # actor failures the run survives in all (a learner's death rolls back to a checkpoint)


@dataclass
class GuardConfig:
    """Stop the run when a failure's fraction over the last `window` steps passes its threshold (rollout.health).
    Defaults measured on the toy job (docs/results/meta_ttrl.md): a healthy run stays well below them."""
    window: int = 10
    max_nonfinite_rewards: float = 0.05
    max_flat_groups: float = 0.9
    max_degenerate_images: float = 0.5
    max_fallback_rubrics: float = 0.5


@dataclass
class RunConfig:
    name: str = "meta-ttrl"
    root: str = "runs"  # run directory: <root>/<timestamp>-<name>/ unless `dir` is set
    dir: str = ""
    resume: str = ""  # "" new run | auto (newest valid checkpoint under run.dir, else start) | a checkpoint dir
    checkpoint_every: int = 10  # steps between checkpoints (and one after the last step); 0: only the last
    keep_checkpoints: int = 3  # newest K kept
    seed: int = 0
    ray_address: str = ""  # "" = the RAY_ADDRESS a job was submitted with, else a new local cluster
    grid_prompts: int = 4  # fixed prompts (one per tag) drawn as image grids over training (0: none)
    grid_every: int = 10  # steps between grids (and one before the first step and one after the last)
    wandb: str = "auto"  # auto (online with WANDB_API_KEY, else offline in the run dir) | online | offline | disabled
    wandb_project: str = "meta-ttrl"


@dataclass
class MetaTTRLConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    rubric: RubricConfig = field(default_factory=RubricConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    run: RunConfig = field(default_factory=RunConfig)
