"""`make bench`: the performance benchmarks, each a ratio measured side by side in this one run, printed as tables
and written (with the command, the host and the commit) to docs/results/performance.md.

    python launch/bench.py [sections=step,sync,async,scaling,overhead,scoring,sampler,lora] [baseline=<commit>]
                           [steps=12] [sizes=25,100,400] [buckets=16,64,256] [janus_pro=<dir>] [flow=<dir>]
                           [out=<file.md>]

Sections (driver/bench_*.py say what each measures): step (the default job, `baseline` commit vs this checkout, and
on-policy), sync (weight sync four ways at `sizes` million parameters), async and scaling (simulated stage costs on
a simulated three-node cluster), overhead (the framework's cost per step), scoring (a judge call three ways),
sampler (our CFG sampler vs transformers' generate on the Janus-Pro layout in `janus_pro`; skipped without it),
lora (full-weight vs LoRA sync: measured on the tiny layouts in `janus_pro` and `flow`, counted at published widths).
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import driver  # noqa: F401  (a local Ray cluster binds loopback)
from driver.cli import UserError, own_args, run_main

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("step", "sync", "async", "scaling", "overhead", "scoring", "sampler", "lora")
DEFAULTS = {"sections": ",".join(SECTIONS), "baseline": "751b552", "steps": "12", "sizes": "25,100,400",
            "buckets": "16,64,256", "janus_pro": "", "flow": "",
            "out": str(ROOT / "docs" / "results" / "performance.md")}
# LoRA settings of the lora section: small for the tiny layouts; at the published widths verl's Flow-GRPO example
# for Qwen-Image (rank 64, alpha 128; examples/flowgrpo_trainer/run_flowgrpo.sh)
TINY_LORA, PUBLISHED_LORA = dict(rank=4, alpha=8.0), dict(rank=64, alpha=128.0)
# Simulated stage costs, seconds per step on one actor per role: the shares a GPU step shows when sampling
# dominates (rollout 50%, update 25%, judging 20%, weight sync 5%), scaled to a 1 s on-policy step.
GPU_LIKE = dict(rollout=0.50, judge=0.20, train=0.25, sync=0.05)
# For scaling over rollout actors: a sampling-heavy step of a real model's length (a 7B sampler's 576 tokens under
# CFG against one update: 6.6 s on-policy), so that more rollout actors help up to 8 before the learner bounds it.
SAMPLING_HEAVY = dict(rollout=4.0, judge=2.0, train=0.5, sync=0.1)


def parse(argv: list[str]) -> dict:
    args = own_args(argv, DEFAULTS)
    unknown = set(args["sections"].split(",")) - set(SECTIONS)
    if unknown:
        raise UserError(f"unknown section(s) {', '.join(sorted(unknown))}; valid: {', '.join(SECTIONS)}")
    if not args["steps"].isdigit() or int(args["steps"]) < 4:
        raise UserError(f"steps must be an integer >= 4 (two warm-up steps are not counted), got {args['steps']!r}")
    return args


def table(title: str, rows: list[dict]) -> str:
    """A markdown table of `rows` (floats to 3 significant digits)."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    fmt = lambda v: f"{v:.3g}" if isinstance(v, float) else str(v)
    lines = [f"### {title}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def host() -> str:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else "?"
    import os

    import torch
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, Python {platform.python_version()}, "
            f"commit {commit}")


def toy_judge_call():
    """The default step's judge workload: 8 test prompts x 8 sampled images and their rubric questions."""
    import numpy as np

    from models.loading import load_adapter
    from models.toy import EMBEDDED
    from rewards.introspection import RUBRIC_SOURCES
    from rewards.judges import model_writer
    from toyworld.prompts import load_split
    import benchmarks
    a = load_adapter(str(EMBEDDED))
    a.freeze()
    prompts = [m["prompt"] for m in load_split("test")[:8]]
    images = a.sample(prompts, 8, 3.0, 1.0, a.generator(0)).images
    book = RUBRIC_SOURCES["introspector"](model_writer(a, 0, a.generator(0)), dialect(a.rubric_dialect).parse, 1,
                                          None, benchmarks.get("toyworld").rubric_style)
    rubrics = book.get([p for p in prompts for _ in range(8)])
    asked = [(i, item.question) for i, items in enumerate(rubrics) for item in items]
    return a, np.asarray(images), [q for _, q in asked], [i for i, _ in asked]


def simulated_cluster(nodes: int = 3, cpus: int = 8):
    """Three worker nodes of `cpus` logical CPUs on this machine (loopback), the head holding none."""
    import ray
    from ray.cluster_utils import Cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "node_ip_address": "127.0.0.1",
                                                            "include_dashboard": False})
    for _ in range(nodes):
        cluster.add_node(num_cpus=cpus, node_ip_address="127.0.0.1")
    ray.init(address=cluster.address, log_to_driver=False,
             runtime_env={"env_vars": {"GLOO_SOCKET_IFNAME": "lo", "PYTHONPATH": str(ROOT)}})
    return cluster


def lora_tables(args: dict, emit) -> None:
    """Full-weight vs LoRA sync: measured on the tiny layouts given (`janus_pro`, `flow`), counted at the
    published widths."""
    from driver import bench_lora
    from models.loading import load_adapter
    from models.lora import LoraSettings
    tiny = {label: (lambda p=path: load_adapter(p)) for label, path in
            (("tiny Janus-Pro layout", args["janus_pro"]), ("tiny Qwen-Image layout", args["flow"])) if path}
    if tiny:
        emit(f"LoRA vs full-weight sync, measured (2 actors over gloo on loopback, 64 MB buckets, sampled check; "
             f"best of 5; LoRA {TINY_LORA})", bench_lora.measured_rows(tiny, LoraSettings(**TINY_LORA)))
    emit(f"LoRA vs full-weight sync, bytes at the published widths (counted on the meta device; LoRA "
         f"{PUBLISHED_LORA})", bench_lora.published_width_rows(LoraSettings(**PUBLISHED_LORA)))


def run_sections(args: dict) -> list[str]:
    """Each asked section's markdown table, printed as it is measured."""
    from driver import bench_models, bench_pipeline, bench_step, bench_sync
    wanted, out, steps = args["sections"].split(","), [], int(args["steps"])
    emit = lambda title, rows: (out.append(table(title, rows)), print(out[-1], flush=True))
    step_s, added = {}, {}  # a layout's measured step; what the framework added to it beyond the stage costs
    if "step" in wanted:  # first, with no cluster of this process running beside the jobs
        rows, evals = bench_step.step_rows(ROOT, args["baseline"], steps)
        emit(f"Default job step, {steps} steps (means over steps 3..{steps}; x_baseline: baseline step / this step)",
             rows)
        emit("Evaluate-only job (`trainer.steps=0 data.heldout=`: start-up and the test split's table before and "
             "after, 2 x 1160 images)", evals)
        step_s["toy default (1 rollout, 1 introspector, 1 learner)"] = rows[1]["step_s"]
    costs = bench_pipeline.StageCosts(**GPU_LIKE)
    if any(s in wanted for s in ("sync", "async", "scaling", "overhead", "lora")):
        import ray
        cluster = simulated_cluster()
        try:
            if "sync" in wanted:
                emit("Weight sync, 2 processes over gloo on loopback (best of 3; x_floor: time / memcpy time)",
                     bench_sync.run([int(s) for s in args["sizes"].split(",")],
                                    [float(b) for b in args["buckets"].split(",")]))
            if "lora" in wanted:
                lora_tables(args, emit)
            if "async" in wanted:
                emit(f"Async vs on-policy, simulated stage costs {GPU_LIKE} s", bench_pipeline.async_rows(costs, 14))
            if "scaling" in wanted:
                rows = bench_pipeline.scaling_rows(bench_pipeline.StageCosts(**SAMPLING_HEAVY), [1, 2, 4, 8], 10)
                emit(f"Scaling over rollout actors (as many introspectors), async, simulated stage costs "
                     f"{SAMPLING_HEAVY} s", rows)
                step_s["simulated 8 rollouts + 8 introspectors + 1 learner"] = rows[-1]["step_s"]
                added["simulated 8 rollouts + 8 introspectors + 1 learner"] = rows[-1]["step_s"] - rows[-1][
                    "predicted_step_s"]
            if "overhead" in wanted:
                step_s.setdefault("simulated 8 rollouts + 8 introspectors + 1 learner",
                                  bench_pipeline.StageCosts(**SAMPLING_HEAVY).predicted_step(8, 8))
                step_s.setdefault("toy default (1 rollout, 1 introspector, 1 learner)", float("nan"))
                layouts = {"toy default (1 rollout, 1 introspector, 1 learner)": 1,
                           "simulated 8 rollouts + 8 introspectors + 1 learner": 8}
                emit("Framework overhead per step (zero-cost stages, real payloads; share of the layout's step)",
                     bench_pipeline.overhead_rows(layouts, 24, step_s, added))
        finally:
            ray.shutdown()
            cluster.shutdown()
    if "scoring" in wanted:
        emit("Scoring one judge call of the default step (one thread)",
             bench_models.scoring_rows(*toy_judge_call()))
    if "sampler" in wanted and args["janus_pro"]:
        from models.loading import load_adapter
        adapter = load_adapter(args["janus_pro"])
        emit("Sampler on the Janus-Pro layout (one thread)",
             bench_models.sampler_rows(adapter, ["a photo of a red circle", "a photo of two blue squares"]))
    return out


def main(argv: list[str]) -> None:
    import torch
    torch.set_num_threads(1)
    args = parse(argv)
    t0 = time.time()
    tables = run_sections(args)
    command = "python launch/bench.py " + " ".join(argv) if argv else "make bench"
    doc = (f"# Performance\n\nMeasured by `{command}` ({time.time() - t0:.0f} s) on {host()}, "
           f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Every ratio compares runs of this one "
           f"invocation.\n\n" + "\n".join(tables))
    Path(args["out"]).parent.mkdir(parents=True, exist_ok=True)
    Path(args["out"]).write_text(doc)
    print(f"written: {args['out']}")


if __name__ == "__main__":
    run_main(main)
