"""Two Meta-TTRL steps at a real model's shapes (few layers, random weights) on whatever GPUs this machine has,
then the stage timings per step:
- Janus-Pro (`width=janus_pro_7b|janus_pro_1b`): 576 image tokens at 384 px, the real vocabulary, codebook, widths;
- Qwen-Image (`width=qwen_image`): the 20B MMDiT's widths, its VAE, a Qwen2.5-VL-7B-wide text encoder and judge,
  512 px (1024 latent tokens), 10 SDE steps.

    python tests/gpu_smoke.py [width=janus_pro_7b|janus_pro_1b|qwen_image|tiny|qwen_image_tiny] [layers=2]
                               [steps=2] [key=value ...]

Other `key=value` pairs pass to the job (e.g. trainer.strategy=deepspeed). Placement: with three or more GPUs
each role gets one; with one or two, the roles share GPU 0 (fractions) and the weight sync uses gloo through
host memory (NCCL refuses two ranks on one device). On a machine without a GPU it runs on the CPU; `width=tiny`
(narrow, for the test suite) keeps that short.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the project, and the test fixtures that build the models

import driver  # noqa: E402,F401  (first: a local Ray cluster binds loopback, which must precede `import ray`)
from driver.cli import UserError, run_main  # noqa: E402

WIDTHS = {  # Janus-Pro's text, vision and VQ widths (layers are set separately)
    "janus_pro_7b": dict(hidden=4096, heads=32, intermediate=11008),
    "janus_pro_1b": dict(hidden=2048, heads=16, intermediate=5632),
    "tiny": dict(hidden=32, heads=2),
}
FLOW_WIDTHS = {"qwen_image": "1024 latent tokens at 512 px", "qwen_image_tiny": "256 latent tokens at 64 px"}
STAGES = ("rollout_s", "judge_s", "wait_s", "train_s", "sync_s", "step_s")


def build_model(path: Path, width: str, layers: int, dtype: torch.dtype) -> None:
    from fixtures import flow_like, janus_pro_like
    if width == "qwen_image":
        return flow_like.qwen_image_shape(path, layers, dtype)
    if width == "qwen_image_tiny":
        return flow_like.build(path, family="qwen_image")
    shape = dict(WIDTHS[width], layers=layers)
    if width != "tiny":
        shape |= dict(vocab_size=janus_pro_like.REAL["vocab_size"], codebook=janus_pro_like.REAL["codebook"],
                      vision_hidden=janus_pro_like.REAL["vision_hidden"], vision_heads=janus_pro_like.REAL["vision_heads"],
                      vision_layers=layers, vq_channels=128)
    model, tok = janus_pro_like.build(seed=0, **shape)
    model.to(dtype).save_pretrained(path)
    tok.save_pretrained(path)


def placement(gpus: int) -> list[str]:
    if gpus >= 3:
        share, backend = 1, "nccl"
    elif gpus >= 1:
        share, backend = 0.3, "gloo"
    else:
        return ["sync.backend=gloo"]
    return [f"resources.{role}.num_gpus={share}" for role in ("rollout", "introspector", "learner")] + \
        [f"sync.backend={backend}"]


def main(argv: list[str]) -> dict:
    own = {"width": "janus_pro_7b", "layers": "2", "steps": "2"}
    passed = []
    for arg in argv:
        key, _, value = arg.partition("=")
        if key in own:
            own[key] = value
        else:
            passed.append(arg)
    if own["width"] not in WIDTHS | FLOW_WIDTHS:
        raise UserError(f"width {own['width']!r} is not one of: {', '.join(WIDTHS | FLOW_WIDTHS)}")
    from launch import meta_ttrl
    gpus = torch.cuda.device_count()
    dtype = torch.bfloat16 if gpus else torch.float32
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        build_model(Path(tmp) / "model", own["width"], int(own["layers"]), dtype)
        built = time.perf_counter() - t0
        run_dir = Path(tmp) / "run"
        meta_ttrl.main([f"model.path={Path(tmp) / 'model'}", f"trainer.steps={own['steps']}", "data.prompts_per_step=2",
                        "rollout.group_size=4", "data.heldout=", "data.eval_max_prompts=1", "data.eval_samples=1",
                        "run.grid_prompts=0", "run.wandb=disabled", "rubric.max_new_tokens=32",
                        f"run.dir={run_dir}"] + placement(gpus) + passed)
        metrics = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    device = torch.cuda.get_device_name(0) if gpus else "CPU"
    shape = FLOW_WIDTHS.get(own["width"], "576 image tokens at 384 px")
    print(f"\ngpu smoke: {own['width']} widths, {own['layers']} layers, {shape}, {gpus} GPU(s) "
          f"({device}); model built and saved in {built:.1f} s")
    print("step " + " ".join(f"{s:>10}" for s in STAGES))
    for m in metrics:
        print(f"{m['step']:>4} " + " ".join(f"{m.get(s, float('nan')):>10.2f}" for s in STAGES))
    result = {"width": own["width"], "layers": int(own["layers"]), "gpus": gpus, "device": device,
              "steps": [{s: m.get(s) for s in ("step", "updates", "kl") + STAGES} for m in metrics]}
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    run_main(main)
