"""Model-side benchmarks (`make bench`, sections `scoring` and `sampler`), each against the naive way in the same
process, one thread, the best of `repeats`:

- scoring: one judge call of the default step (the rubric questions of 8 prompts x 8 images) three ways: each
  image encoded once and every question continuing the image's cached prefix (what the job runs); encoded once,
  each question's whole text through the model; each question encoding its own image (naive).
- sampler: the Janus adapter's KV-cached CFG sampler (which also returns each token's guided log-prob) vs
  transformers' own `JanusForConditionalGeneration.generate(generation_mode="image")` with the same guidance,
  both decoding their images, on a Janus-Pro-layout checkpoint (576 image tokens).
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import torch


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up: first-call allocations are not the steady state
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


@contextmanager
def no_prefix_sharing(adapter):
    adapter._image_prefix = lambda rows: 0
    try:
        yield
    finally:
        del adapter._image_prefix


def scoring_rows(adapter, images, questions: list[str], index: list[int], repeats: int = 3) -> list[dict]:
    """Seconds per judge call three ways; every way's answers equal the job's to 1e-5."""
    with torch.no_grad():
        shared = adapter.answer_probs(images, questions, index)
        t_shared = best_of(lambda: adapter.answer_probs(images, questions, index), repeats)
        with no_prefix_sharing(adapter):
            once = adapter.answer_probs(images, questions, index)
            t_once = best_of(lambda: adapter.answer_probs(images, questions, index), repeats)
            naive = adapter.answer_probs(images[index], questions)
            t_naive = best_of(lambda: adapter.answer_probs(images[index], questions), repeats)
    for other in (once, naive):
        if not torch.allclose(shared, other, atol=1e-5):
            raise RuntimeError(f"scoring ways disagree by {(shared - other).abs().max():.2e}")
    n = f"{len(images)} images, {len(questions)} questions"
    return [{"way": f"encode once, shared prefix ({n})", "s": t_shared, "x_naive": t_naive / t_shared},
            {"way": "encode once, whole text per question", "s": t_once, "x_naive": t_naive / t_once},
            {"way": "encode per question (naive)", "s": t_naive, "x_naive": 1.0}]


def hf_generate(adapter, prompts: list[str], guidance: float, seed: int):
    """transformers' own CFG image generation on the same prompt format, then the same VQ decode."""
    from transformers import GenerationConfig
    tok, model = adapter.tok, adapter.model
    ids, _, mask = adapter.generation_prompts(prompts)
    boi = ids[0, -1].item()  # the generation template ends with <begin_of_image>
    config = GenerationConfig(do_sample=True, guidance_scale=guidance, bos_token_id=ids[0][mask[0].bool()][0].item(),
                              pad_token_id=tok.pad_token_id, generation_kwargs={"boi_token_id": boi},
                              max_new_tokens=adapter.n_image_tokens)
    torch.manual_seed(seed)
    tokens = model.generate(ids, attention_mask=mask, generation_mode="image", generation_config=config)
    return adapter.decode(tokens)


def sampler_rows(adapter, prompts: list[str], guidance: float = 5.0, repeats: int = 2) -> list[dict]:
    ours = best_of(lambda: adapter.sample(prompts, 1, guidance, 1.0, adapter.generator(0)), repeats)
    try:
        theirs = best_of(lambda: hf_generate(adapter, prompts, guidance, 0), repeats)
    except Exception as e:  # a transformers version whose Janus generate takes other arguments: say so, go on
        return [{"way": "adapter.sample (KV cache, CFG, log-probs)", "s": ours, "x_theirs": float("nan")},
                {"way": f"transformers generate failed: {type(e).__name__}: {e}"[:160], "s": float("nan"),
                 "x_theirs": float("nan")}]
    n = f"{len(prompts)} images x {adapter.n_image_tokens} tokens"
    return [{"way": f"adapter.sample (KV cache, CFG, log-probs; {n})", "s": ours, "x_theirs": theirs / ours},
            {"way": "transformers generate(generation_mode='image')", "s": theirs, "x_theirs": 1.0}]
