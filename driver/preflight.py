"""The checks that need the model, the disk or an installed extra, run after the config's own rules (launch/configs)
and before a cluster starts, each a one-line UserError: the policy and judge models load (their structure only:
device "meta"), the judge's needs are among the models' declared capabilities (models/adapter.Capabilities, per
judge in rewards/judges.JUDGES), the chosen extras are installed, every prompt file reads and fits the context, the
benchmark can evaluate what is asked of it with the evaluator directories given."""

from __future__ import annotations

from driver.cli import UserError
import benchmarks
from driver.inputs import EvalSet, JobPrompts, check_prompts, load_adapter, load_benchmark, load_prompts
from models import evaluators
from models.loading import backend_of
from rewards.judges import JUDGES

# what a judge or method needs, in a user's words, by models/adapter.Capabilities field
NEEDS = {"understanding": "a model that understands images (a VLM)", "prompt_likelihood": "a token-based generator",
         "image_tokens": "a token-based generator", "latent_search": "a token-based generator",
         "reward_maps": "a generator with image tokens or latents", "reasoning": "a model that writes reasoning"}


def either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def check_job(cfg, policy_needs: tuple[str, ...] = (), method: str = ""):
    """The policy's structure (weights unread), after checking it, the judge and the extras; `policy_needs`:
    capabilities `method` needs of the policy besides the judge's (e.g. MILR's latent search)."""
    policy = load_adapter(cfg.model.path, device="meta", understanding=cfg.model.understanding_path)
    missing = [c for c in policy_needs if not getattr(policy.capabilities, c)]
    if missing == ["reasoning"]:
        raise UserError(f"{method} as published (milr.variant=paper) needs a model that writes reasoning before the "
                        f"image (a 'reason' template: Janus-Pro's format has one); {cfg.model.path} has none: use "
                        f"milr.variant=ours")
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
    if r.judge == "srum" and r.srum_scores == "text" and not judge.capabilities.describes:
        raise UserError("reward.srum_scores=text asks the judge model SRUM's scoring prompts in free text: it needs "
                        "an 'ask' template (Janus-Pro's format has one); this model has none: use "
                        "reward.srum_scores=yes_no")
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


def job_prompts(cfg, policy) -> JobPrompts:
    """The split trained on, the heldout one and the transfer benchmarks, each prompt checked to fit the context;
    the evaluators they need checked too (directories of the right kind, a question file that covers them)."""
    d, e = cfg.data, cfg.eval
    bench = load_benchmark(d.benchmark)
    train = EvalSet(d.split or bench.default_split or "prompts", d.benchmark, load_prompts(d.benchmark, d.split),
                    "test")
    held = bench.heldout_split if d.heldout == "auto" else d.heldout
    heldout = EvalSet("heldout", d.benchmark, load_prompts(d.benchmark, held), "heldout") if held else None
    transfer = []
    for spec in d.transfer:
        name, _, split = spec.partition(":")
        transfer.append(EvalSet(spec, name, load_prompts(name, split), spec))
    prompts = JobPrompts(train, heldout, transfer)
    if cfg.rubric.source == "metadata" and "include" not in train.records[0]:
        raise UserError(f"rubric.source=metadata builds rubrics from GenEval-format metadata; {d.benchmark} "
                        f"prompts have none: use rubric.source=introspector")
    if transfer and not e.final:
        raise UserError("data.transfer benchmarks are measured before and after training: it needs eval.final=true")
    if cfg.reward.judge == "oracle":
        check_evaluation(e, train, why="reward.judge=oracle rewards the benchmark's evaluator")
    for measured in prompts.measured() if e.final else [train] if e.every else []:
        check_evaluation(e, measured, hint="or set eval.every=0 eval.final=false to train without measuring")
    for measured in prompts.measured():
        check_prompts(policy, measured.records, measured.label, cfg.rubric.max_new_tokens)
    return prompts


def check_evaluation(eval_cfg, prompts: EvalSet, why: str = "", hint: str = "") -> None:
    """The benchmark can evaluate these prompts with the eval.* settings given, each directory of the right kind.
    `why`: what asks for the evaluation (leads the message); `hint`: how to do without it (ends it)."""
    bench = load_benchmark(prompts.benchmark)
    try:
        bench.check_evaluator(eval_cfg, prompts.records)
        for key in bench.evaluator_needs(prompts.records):
            if key in evaluators.KINDS:
                kind = evaluators.check_dir(key, getattr(eval_cfg, key))
                if key == "detector":
                    check_labels(getattr(eval_cfg, key), kind, prompts)
        if "dpg_questions" in bench.evaluator_needs(prompts.records):
            from benchmarks.vlm_judged import read_dpg_questions
            questions = read_dpg_questions(eval_cfg.dpg_questions)
            missing = [r["id"] for r in prompts.records if r["id"] not in questions]
            if missing:
                raise benchmarks.BenchmarkError(f"eval.dpg_questions {eval_cfg.dpg_questions!r} has no questions for "
                                                f"{len(missing)} prompt(s), e.g. item_id {missing[0]!r}")
    except (benchmarks.BenchmarkError, evaluators.EvaluatorModelError) as err:
        raise UserError(f"{why + ': ' if why else ''}{err}{' (' + hint + ')' if hint else ''}") from None


def check_labels(path: str, kind: str, prompts: EvalSet) -> None:
    """A closed-set detector (Mask2Former) must know every class the prompts name (GenEval's COCO names)."""
    names = evaluators.closed_set_labels(path) if kind == "mask2former" else None
    if names is None:
        return
    wanted = {c["class"] for r in prompts.records for c in r.get("include", []) + r.get("exclude", [])}
    unknown = sorted(wanted - names)
    if unknown:
        raise evaluators.EvaluatorModelError(f"eval.detector {path!r} does not detect {', '.join(unknown[:5])} "
                                             f"(its config's id2label): use a COCO instance model, or OWLv2")
