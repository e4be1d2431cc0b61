"""The checks that need the model, the disk or an installed extra, run after the config's own rules (launch/configs)
and before a cluster starts, each a one-line UserError: the policy and judge models load (their structure only:
device "meta"), the judge's needs are among the models' declared capabilities (models/adapter.Capabilities, per
judge in rewards/judges.JUDGES), the chosen extras are installed, every prompt file reads and fits the context."""

from __future__ import annotations

from driver.cli import UserError
from driver.inputs import check_prompts, load_adapter, load_prompts
from models.loading import backend_of
from rewards.judges import JUDGES

# what a judge or method needs, in a user's words, by models/adapter.Capabilities field
NEEDS = {"understanding": "a model that understands images (a VLM)", "prompt_likelihood": "a token-based generator",
         "image_tokens": "a token-based generator", "latent_search": "a token-based generator"}


def either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def check_job(cfg, policy_needs: tuple[str, ...] = (), method: str = ""):
    """The policy's structure (weights unread), after checking it, the judge and the extras; `policy_needs`:
    capabilities `method` needs of the policy besides the judge's (e.g. MILR's latent search)."""
    policy = load_adapter(cfg.model.path, device="meta", understanding=cfg.model.understanding_path)
    missing = [c for c in policy_needs if not getattr(policy.capabilities, c)]
    if missing:
        raise UserError(f"{method} optimises a token model's latents (the Janus adapter); {cfg.model.path} is a "
                        f"{backend_of(cfg.model.path)} model")
    check_judge(cfg, policy, judge_model(cfg.reward, policy))
    if cfg.trainer.strategy == "deepspeed":
        from learners.deepspeed_optim import require_deepspeed
        try:
            require_deepspeed()
        except RuntimeError as e:
            raise UserError(str(e)) from None
    return policy


def judge_model(r, policy):
    """The structure of the model that judges: the policy's frozen copy, reward.model_path, or a vLLM engine."""
    if r.backend == "vllm":
        from models.vllm_introspector import VLLMIntrospector, VLLMUnavailable, require_vllm
        try:
            require_vllm(need_gpu=False)  # the driver may have no GPU; the introspector's actor checks for one
        except VLLMUnavailable as e:
            raise UserError(str(e)) from None
        return VLLMIntrospector
    if r.model_path:
        return load_adapter(r.model_path, device="meta")
    return policy


def check_judge(cfg, policy, judge) -> None:
    r, kind, path = cfg.reward, JUDGES[cfg.reward.judge], cfg.model.path
    if r.judge == "vqa_rubric":
        from models.git import GitVQA
        try:
            GitVQA.from_pretrained(r.vqa_path)
        except Exception as e:  # the user's directory: any failure to read it is theirs
            raise UserError(f"reward.vqa_path {r.vqa_path!r} could not be loaded as a GIT model "
                            f"({type(e).__name__}: {(str(e).splitlines() or [''])[0]})") from None
    for model, needs in ((judge, kind.judge_needs), (policy, kind.policy_needs)):
        missing = [c for c in needs if not getattr(model.capabilities, c)]
        if not missing:
            continue
        if model is not policy:
            raise UserError(f"reward.judge={r.judge} needs {NEEDS[missing[0]]} to judge: reward.model_path "
                            f"{r.model_path} is not one")
        if missing == ["understanding"]:
            raise UserError(f"{path} has no VLM (an SD3/FLUX pipeline) and reward.judge={r.judge} asks the policy's "
                            f"own understanding: set model.understanding_path=<a Qwen2.5-VL directory>")
        usable = [name for name, k in JUDGES.items()
                  if all(getattr(policy.capabilities, c) for c in k.judge_needs + k.policy_needs)]
        raise UserError(f"reward.judge={r.judge} needs {NEEDS[missing[-1]]} (the Janus adapter); {path} is a "
                        f"{backend_of(path)} model: use {either(usable)}")


def job_prompts(cfg, policy) -> tuple[list[dict], list[dict]]:
    """The split trained on and the heldout one (may be empty), each prompt checked to fit the context."""
    metas = load_prompts(cfg.data.split)
    heldout = load_prompts(cfg.data.heldout) if cfg.data.heldout else []
    check_prompts(policy, metas, cfg.data.split, cfg.rubric.max_new_tokens)
    check_prompts(policy, heldout, str(cfg.data.heldout), cfg.rubric.max_new_tokens)
    return metas, heldout
