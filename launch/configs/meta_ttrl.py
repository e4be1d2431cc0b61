"""Meta-TTRL job config (OmegaConf structured; `key=value` dotlist overrides on the command line).

The defaults are the embedded toy world: the committed toy UMM, test-time RL on the `test` split, CPU actors.
Every section checks its own values in `__post_init__` (a floor per count, a range per fraction, each choice
against the registry that implements it), and `MetaTTRLConfig.__post_init__` checks the rules that span
sections; driver.cli.parse_config runs them all before anything starts. What needs the model or the disk (a
checkpoint that loads, a prompt file, an installed extra, a judge the model can serve) is checked by
driver/preflight.py.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from actors.placement import STRATEGIES as PLACEMENT_STRATEGIES
from actors.weight_sync import BACKENDS as SYNC_BACKENDS
from benchmarks import BENCHMARKS
from driver.cli import UserError
from driver.tracking import WANDB_MODES
from launch.configs.checks import above, at_least, fraction, one_of
from learners.grpo import AGGREGATIONS
from learners.strategies import STRATEGIES as UPDATE_STRATEGIES
from learners.trainers import TRAINERS
from models.adapter import resolve_dtype
from models.loading import JUDGE_BACKENDS
from models.lora import LoraSettings
from models.toy import EMBEDDED
from rewards.introspection import RUBRIC_SOURCES
from rewards.judges import JUDGES
from rollout.milr import STRATEGIES as MILR_STRATEGIES
from rollout.milr import VARIANTS as MILR_VARIANTS
from rollout.milr import MILRSettings

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class LoraSection(LoraSettings):
    """model.lora: LoRA adapters through peft (models/lora.py); rank 0 trains every generator weight."""

    def __post_init__(self):
        at_least("model.lora", self, rank=(0, "0: off"))
        above("model.lora", self, alpha=0.0)
        if not 0 <= self.dropout < 1:
            raise UserError(f"model.lora.dropout must lie in [0, 1), got {self.dropout}")


@dataclass
class ModelConfig:
    path: str = str(EMBEDDED)
    threads: int = 1  # torch CPU threads per actor
    dtype: str = "auto"  # auto (bfloat16 on GPU, float32 on CPU) | float32 | bfloat16 | float16
    # a flow pipeline whose text encoders cannot see images (SD3, FLUX): the Qwen2.5-VL directory that writes and
    # answers its rubrics (Qwen-Image and Janus models understand with their own weights: leave empty)
    understanding_path: str = ""
    lora: LoraSection = field(default_factory=LoraSection)

    def __post_init__(self):
        at_least("model", self, threads=1)
        try:
            resolve_dtype(self.dtype, torch.device("cpu"))
        except ValueError as e:
            raise UserError(str(e)) from None


@dataclass
class DataConfig:
    # the prompts' benchmark (benchmarks/registry.py): toyworld | geneval | t2i_compbench | geneval_plus_plus |
    # dpg_bench | prompts (a plain text file, one prompt a line: no metadata, no evaluator)
    benchmark: str = "toyworld"
    split: str = ""  # where test-time RL runs: one of the benchmark's splits or a file in its format ("": default)
    # measured before and after, never trained on: a split of the same benchmark; auto = the benchmark's own
    # heldout split (the toy world's `heldout`; real benchmarks have none); "" = none
    heldout: Optional[str] = "auto"
    # other benchmarks measured before and after (cross-benchmark transfer): "benchmark" or "benchmark:split"
    transfer: list[str] = field(default_factory=list)
    prompts_per_step: int = 8
    eval_samples: int = 8  # images per prompt in the before/after evaluation (some tags have only 3 prompts)
    eval_max_prompts: int = 0  # 0 = every prompt

    def __post_init__(self):
        one_of("data.benchmark", self.benchmark, BENCHMARKS)
        for spec in self.transfer:
            one_of("data.transfer", spec.partition(":")[0], BENCHMARKS)
        at_least("data", self, prompts_per_step=1, eval_samples=1, eval_max_prompts=(0, "0: every prompt"))


@dataclass
class EvalConfig:
    """The benchmark's evaluator (benchmarks/): metrics only, the reward never sees it."""
    every: int = 1  # the per-step `eval` metric on the step's rollouts every this many steps (0: off)
    final: bool = True  # the benchmark's table before and after training (and on heldout / transfer)
    # local model directories (transformers layout; nothing is downloaded): GenEval: detector (Mask2Former or
    # OWLv2) + clip; T2I-CompBench: vqa (BLIP-VQA) for color/shape/texture, detector for spatial/numeracy, clip for
    # non_spatial; GenEval++ and DPG-Bench: vlm (Qwen2.5-VL) and, for DPG-Bench, dpg_questions (its question csv)
    detector: str = ""
    clip: str = ""
    vqa: str = ""
    vlm: str = ""
    dpg_questions: str = ""
    device: str = "auto"  # auto: the GPU Ray gave the evaluator actor, else the CPU
    actors: int = 1  # evaluator actors per model-based benchmark
    batch_prompts: int = 16  # prompts whose images one evaluator call scores in the before/after evaluation

    def __post_init__(self):
        at_least("eval", self, every=(0, "0: off"), actors=1, batch_prompts=1)


@dataclass
class RolloutConfig:
    actors: int = 1
    group_size: int = 8  # G candidates per prompt
    guidance: float = 3.0  # CFG scale, identical in sampling and in the training log-prob
    temperature: float = 1.0

    def __post_init__(self):
        at_least("rollout", self, actors=1, group_size=(2, "GRPO compares candidates"), guidance=0.0)
        above("rollout", self, temperature=0.0)


@dataclass
class RubricConfig:
    source: str = "introspector"  # introspector (the frozen model writes it) | metadata (GenEval-format builder)
    retries: int = 1  # extra attempts (sampled, not greedy) before the one-question fallback
    max_new_tokens: int = 0  # the rubric's token budget; 0: the writer's dialect's own (toy 96, chat 384)

    def __post_init__(self):
        one_of("rubric.source", self.source, RUBRIC_SOURCES)
        at_least("rubric", self, retries=0, max_new_tokens=0)


@dataclass
class RewardConfig:
    # rubric: Meta-TTRL (the judge model's own rubric, Eq. 5-6) | vqa_rubric: that rubric answered by a GIT VQA model
    # | srum: rubric reward as global score plus per-region local scores, as dense maps (for trainer.algorithm=srum)
    # | gvu: the prompt's likelihood as a caption of the image | oracle: the toy world's evaluator (RL leakage: an
    # upper bound, not test-time legal) | server: whatever a reward server's method returns | random, shuffled:
    # reward controls (uniform noise; the rubric rewards of another prompt's group) | reward_model: an external
    # reward model (reward.model_path) rating prompt-image alignment, P(yes) to one question (rewards/judges.py)
    judge: str = "rubric"
    model_path: str = ""  # the judge model (Janus layout); "" = the policy's own frozen copy, else E-TTRL
    vqa_path: str = ""  # GIT directory (Hugging Face layout) answering the rubric, for judge=vqa_rubric
    server: str = ""  # tcp://host:port of a reward server (launch/reward_server.py), for judge=server
    server_method: str = "rubric"
    server_secret_env: str = "META_TTRL_REWARD_SECRET"  # environment variable holding the HMAC secret ("" = none)
    server_timeout_s: float = 60.0
    # transformers (in-process, any device) | vllm (GPU only, `meta-ttrl[vllm]`): writes and answers rubrics with a
    # vLLM engine over reward.model_path (a VLM vLLM serves, e.g. Qwen2.5-VL); judges rubric / srum
    # judge=srum's global and local scores: yes_no (2s - 1 of rubric answers) | text (the paper's scoring prompts
    # answered in text with a reason, rewards/srum_prompts.py; a judge model with an `ask` template, e.g. Janus-Pro)
    srum_scores: str = "yes_no"
    backend: str = "transformers"
    vllm_gpu_memory: float = 0.4  # fraction of the introspector's GPU the vLLM engine may take

    VLLM_JUDGES = ("rubric", "srum")  # what a vLLM engine serves: it writes and answers rubrics

    def __post_init__(self):
        one_of("reward.judge", self.judge, JUDGES)
        one_of("reward.backend", self.backend, JUDGE_BACKENDS)
        one_of("reward.srum_scores", self.srum_scores, ("yes_no", "text"))
        above("reward", self, server_timeout_s=0.0)
        fraction("reward.vllm_gpu_memory", self.vllm_gpu_memory, low_open=True)
        if self.backend == "vllm" and self.judge not in self.VLLM_JUDGES:
            raise UserError(f"reward.backend=vllm writes and answers rubrics: it serves reward.judge="
                            f"{' or '.join(self.VLLM_JUDGES)}, not {self.judge}")
        if self.backend == "vllm" and not self.model_path:
            raise UserError("reward.backend=vllm needs reward.model_path: a VLM directory vLLM serves "
                            "(e.g. Qwen2.5-VL)")
        if self.judge == "reward_model" and not self.model_path:
            raise UserError("reward.judge=reward_model needs reward.model_path: the external reward model's directory "
                            "(a VLM that answers yes/no: Janus layout, Qwen2.5-VL)")
        if self.judge == "vqa_rubric" and not self.vqa_path:
            raise UserError("reward.judge=vqa_rubric needs reward.vqa_path: a GIT model directory")
        if self.judge == "server" and not self.server.startswith(("tcp://", "ipc://")):
            raise UserError(f"reward.judge=server needs reward.server=tcp://host:port, got {self.server!r}")


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
    adam_eps: float = 1e-8  # AdamW's epsilon (torch's default)
    adam_beta1: float = 0.9  # AdamW's betas (torch's defaults; SRUM's paper: 0.9, 0.95)
    adam_beta2: float = 0.999
    aggregation: str = "token-mean"

    def __post_init__(self):
        one_of("grpo.aggregation", self.aggregation, AGGREGATIONS)
        at_least("grpo", self, epochs=1, minibatch=1, beta=0.0, clip_low=0.0, clip_high=0.0, weight_decay=0.0,
                 warmup_steps=(0, "0: constant lr"))
        above("grpo", self, lr=0.0, max_grad_norm=0.0, adam_eps=0.0)
        if not (0 <= self.adam_beta1 < 1 and 0 <= self.adam_beta2 < 1):
            raise UserError(f"grpo.adam_beta1 and grpo.adam_beta2 lie in [0, 1), got {self.adam_beta1}, "
                            f"{self.adam_beta2}")


@dataclass
class PlacementConfig:
    """Resources of one actor of a role; each role gets its own placement group of `actors` such bundles."""
    num_cpus: float = 1.0
    num_gpus: float = 0.0
    strategy: str = ""  # this role's placement strategy ("": resources.strategy)
    # pin the role to the nodes that advertise this custom resource (`ray start --resources='{"<name>": 1}'`);
    # each actor asks a token 0.001 of it, so it labels nodes without capping how many actors they take
    node_resource: str = ""

    def check(self, role: str) -> None:
        at_least(f"resources.{role}", self, num_cpus=0.0, num_gpus=0.0)
        if self.strategy:
            one_of(f"resources.{role}.strategy", self.strategy, PLACEMENT_STRATEGIES)
        if self.node_resource and (self.node_resource in ("CPU", "GPU", "memory", "object_store_memory")
                                   or not self.node_resource.replace("_", "").replace("-", "").isalnum()):
            raise UserError(f"resources.{role}.node_resource must be a custom resource name (letters, digits, _ "
                            f"and -; not CPU, GPU or memory), got {self.node_resource!r}")


@dataclass
class ResourcesConfig:
    rollout: PlacementConfig = field(default_factory=PlacementConfig)
    introspector: PlacementConfig = field(default_factory=PlacementConfig)
    learner: PlacementConfig = field(default_factory=PlacementConfig)
    evaluator: PlacementConfig = field(default_factory=PlacementConfig)  # a model-based benchmark evaluator's
    strategy: str = "PACK"  # Ray placement strategy for every role's group

    def __post_init__(self):
        one_of("resources.strategy", self.strategy, PLACEMENT_STRATEGIES)
        for role in ("rollout", "introspector", "learner", "evaluator"):
            getattr(self, role).check(role)


@dataclass
class SyncConfig:
    backend: str = "auto"  # auto (nccl on GPU, gloo on CPU) | gloo | nccl
    bucket_mb: float = 64.0
    # a collective that waits longer fails: what frees the survivors of a peer that died mid-broadcast (a lost
    # node), so that the recovery can re-form the group; must exceed the slowest healthy broadcast
    timeout_s: float = 300.0
    # the sync's integrity check: small tensors in full every sync; a big one (>= 1 MiB, sent alone) at one element
    # in check_stride, from an offset that moves every version, so check_stride syncs cover every element
    # (1: every element every sync; measured cost in docs/results/performance.md)
    check_stride: int = 16

    def __post_init__(self):
        one_of("sync.backend", self.backend, SYNC_BACKENDS)
        above("sync", self, bucket_mb=0.0, timeout_s=0.0)
        at_least("sync", self, check_stride=(1, "1: every element every sync"))


@dataclass
class TrainerConfig:
    steps: int = 100  # T
    # grpo (Eq. 7-8) | srum (reward-weighted likelihood on the judge's reward maps; needs reward.judge=srum)
    algorithm: str = "grpo"
    # online: fresh samples every step | offline (SRUM's): the training prompts sampled and judged once, then T
    # steps trained on that set (driver/offline.py); needs trainer.algorithm=srum
    regime: str = "online"
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
    # how long the actors may take to answer after a failure: a dead one restarting (maybe on another node), the
    # survivors freed from a broken collective (after sync.timeout_s): must exceed sync.timeout_s
    restart_timeout_s: float = 600.0

    def __post_init__(self):
        one_of("trainer.algorithm", self.algorithm, TRAINERS)
        one_of("trainer.regime", self.regime, ("online", "offline"))
        one_of("trainer.strategy", self.strategy, UPDATE_STRATEGIES)
        at_least("trainer", self, steps=(0, "0: evaluate only"), max_staleness=0, learners=1, introspectors=1,
                 converge_window=(0, "0: off"), max_actor_restarts=0, max_recoveries=0)
        above("trainer", self, restart_timeout_s=0.0)
        if self.strategy == "deepspeed":
            from learners.deepspeed_optim import ZERO_STAGES, ds_config
            if self.zero_stage not in ZERO_STAGES:
                raise UserError(f"trainer.zero_stage must be one of {ZERO_STAGES}, got {self.zero_stage}")
            try:
                ds_config(1.0, self.zero_stage, torch.float32, dict(self.deepspeed))
            except ValueError as e:
                raise UserError(str(e)) from None


@dataclass
class GuardConfig:
    """Stop the run when a failure's fraction over the last `window` steps passes its threshold (rollout.health).
    Defaults measured on the toy job (docs/results/meta_ttrl.md): a healthy run stays well below them."""
    window: int = 10
    max_nonfinite_rewards: float = 0.05
    max_flat_groups: float = 0.9
    max_degenerate_images: float = 0.5
    max_fallback_rubrics: float = 0.5

    def __post_init__(self):
        at_least("guard", self, window=1)
        for key, limit in vars(self).items():
            if key.startswith("max_"):
                fraction(f"guard.{key}", limit)


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

    def __post_init__(self):
        at_least("run", self, checkpoint_every=(0, "0: only after the last step"), keep_checkpoints=1,
                 grid_prompts=(0, "0: none"), grid_every=(0, "0: before and after only"))
        one_of("run.wandb", self.wandb, WANDB_MODES)
        if self.resume and not self.dir:
            raise UserError("run.resume needs run.dir: the directory of the run to continue")


@dataclass
class MetaTTRLConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    rubric: RubricConfig = field(default_factory=RubricConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    guard: GuardConfig = field(default_factory=GuardConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self):
        """The rules that span sections (each section checked itself already), and the run's place: Ray sets
        RAY_JOB_CONFIG_JSON_ENV_VAR in the driver of a submitted job (checked here, not in RunConfig, whose defaults
        are built before the command line's values arrive)."""
        if os.environ.get("RAY_JOB_CONFIG_JSON_ENV_VAR") and not Path(self.run.dir or self.run.root).is_absolute():
            raise UserError("a submitted Ray job runs in a temporary copy of the working dir: give an absolute "
                            "run.root (or run.dir) on storage that outlives the job, e.g. run.root=/shared/runs")
        if self.trainer.regime == "offline" and self.trainer.algorithm != "srum":
            raise UserError("trainer.regime=offline trains on samples judged once by the initial policy: it is SRUM's "
                            "reward-weighted update (trainer.algorithm=srum); GRPO's ratios need fresh samples")
        if self.trainer.algorithm == "srum" and self.reward.judge != "srum":
            raise UserError("trainer.algorithm=srum trains on reward maps: it needs reward.judge=srum")
        if self.trainer.restart_timeout_s <= self.sync.timeout_s:
            raise UserError(f"trainer.restart_timeout_s ({self.trainer.restart_timeout_s:g}) must exceed "
                            f"sync.timeout_s ({self.sync.timeout_s:g}): the survivors of a lost peer answer only "
                            f"once their collective has timed out")
        if (self.data.prompts_per_step * self.rollout.group_size) % self.trainer.learners:
            raise UserError("prompts_per_step x group_size must divide evenly over trainer.learners")


@dataclass
class BestOfNConfig(MetaTTRLConfig):
    n: int = 8  # candidates per prompt

    def __post_init__(self):
        if self.n < 1:
            raise UserError(f"n must be >= 1, got {self.n}")
        super().__post_init__()


@dataclass
class MILRSection(MILRSettings):
    def __post_init__(self):
        one_of("milr.strategy", self.strategy, MILR_STRATEGIES)
        one_of("milr.variant", self.variant, MILR_VARIANTS)
        if self.steps < 1 or (self.samples is not None and self.samples < 1) or self.reason_tokens < 1:
            raise UserError("milr.steps, milr.samples, milr.reason_tokens and prompts_per_call must be >= 1")
        if self.l2 is not None and self.l2 < 0:
            raise UserError(f"milr.l2 is a penalty weight >= 0, got {self.l2}")
        if not (0 < self.lambda_t <= 1 and 0 < self.lambda_v <= 1) or self.lr <= 0:
            raise UserError("milr.lambda_t and milr.lambda_v are fractions in (0, 1]; milr.lr must be > 0")


@dataclass
class MILRConfig(MetaTTRLConfig):
    milr: MILRSection = field(default_factory=MILRSection)
    prompts_per_call: int = 8  # prompts one actor searches at once (a batch of their samples)

    def __post_init__(self):
        if self.prompts_per_call < 1:
            raise UserError("milr.steps, milr.samples, milr.reason_tokens and prompts_per_call must be >= 1")
        super().__post_init__()
