"""The judges a reward server (rewards/server.py) serves, behind its wire format (items {"prompt", "image"} -> one
float each): a benchmark's own evaluator (the toy world's oracle by default), and an external model's rubric judge
(E-TTRL's judge outside the cluster) and alignment rating (the external reward model's row)."""

from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np
import torch

from driver.cli import UserError
import benchmarks
from driver.inputs import EvalSet, load_adapter, load_benchmark, load_prompts
from driver.preflight import check_evaluation
from rewards import wire
from rewards.dialects import dialect
from rewards.introspection import RubricBook
from rewards.judges import AlignmentJudge, RubricJudge, model_writer
from rewards.server import RewardServer, is_loopback


def oracle_method(evaluator: benchmarks.Evaluator, metadata: dict[str, dict]):
    def judge(items: list) -> list[float]:
        if not all(isinstance(item, dict) and item.get("prompt") in metadata for item in items):
            raise wire.WireError("each item needs a 'prompt' the server knows and an 'image'")
        images = [wire.decode_image(item.get("image")) for item in items]
        return [s.score for s in evaluator.score(images, [metadata[item["prompt"]] for item in items])]
    return judge


def model_methods(model_path: str, threads: int) -> dict:
    """An external model's judges: `rubric` (rewards.judges.RubricJudge: it writes each prompt's rubric, cached, and
    answers it, Eq. 5-6) and `reward_model` (rewards.judges.AlignmentJudge: P(yes) to one alignment question)."""
    torch.set_num_threads(threads)
    adapter = load_adapter(model_path)
    spoken = dialect(adapter.rubric_dialect)
    book = RubricBook(model_writer(adapter, 0, adapter.generator(0)), parse=spoken.parse)
    judges = {"rubric": RubricJudge(book, adapter), "reward_model": AlignmentJudge(adapter, spoken.alignment_question)}
    size = (adapter.image_size, adapter.image_size, 3)

    def serving(judge):
        def serve(items: list) -> list[float]:
            if not all(isinstance(i, dict) and isinstance(i.get("prompt"), str) and i["prompt"] for i in items):
                raise wire.WireError("each item needs a non-empty 'prompt' string and an 'image'")
            images = [wire.decode_image(i.get("image")) for i in items]
            if any(im.shape != size for im in images):
                raise wire.WireError(f"the model judges {size[0]} x {size[1]} RGB images, got {images[0].shape}...")
            with torch.no_grad():
                batch = SimpleNamespace(prompts=[i["prompt"] for i in items], images=np.stack(images))
                return judge(batch).rewards.tolist()
        return serve
    return {name: serving(judge) for name, judge in judges.items()}


def build_server(cfg) -> RewardServer:
    """`oracle` (the benchmark's evaluator) on its splits' prompts and `cfg.prompts`; `rubric` with `cfg.model`.
    Beyond loopback only with a shared secret (read from the environment variable `cfg.secret_env`)."""
    bench = load_benchmark(cfg.benchmark)
    metas = [m for split in bench.splits for m in bench.load(split)]
    metas += load_prompts(cfg.benchmark, cfg.prompts) if cfg.prompts else []
    if bench.evaluator is not None:
        check_evaluation(cfg.eval, EvalSet(cfg.benchmark, cfg.benchmark, metas))
    elif not cfg.model:
        raise UserError(f"benchmark={cfg.benchmark} has no evaluator to serve as `oracle`: give model=<dir> to "
                        f"serve the rubric judge")
    secret = os.environ.get(cfg.secret_env, "").encode() if cfg.secret_env else b""
    if not is_loopback(cfg.host) and not secret:
        raise UserError(f"host={cfg.host} is beyond loopback: set a shared secret in ${cfg.secret_env or '<secret_env>'}"
                        " (clients sign every request with it), or bind 127.0.0.1")
    handlers = {"oracle": oracle_method(bench.evaluator(cfg.eval), {m["prompt"]: m for m in metas})} \
        if bench.evaluator else {}
    if cfg.model:
        handlers |= model_methods(cfg.model, cfg.threads)
    return RewardServer(handlers, cfg.host, cfg.port, secret or None, int(cfg.max_mb * 2**20),
                        max_batch=cfg.max_batch, batch_window_s=cfg.batch_window_ms / 1000)
