"""vLLM backend for the introspector's text side (GPU only, optional extra `meta-ttrl[vllm]`): batched rubric
writing and yes/no answer probabilities (Eq. 5) read from the engine's top-k logprobs of the first answer token.

It has the understanding half of the adapter protocol (`image_features`, `answer_probs`, `write`), so
rewards.judges.RubricJudge / SRUMJudge and the RubricBook's writer take it unchanged. vLLM is imported only when
this backend is built; the request building and output parsing below are pure and tested with a fake engine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from models.adapter import Capabilities, answer_token_ids

# Qwen2.5-VL's chat format (the understanding side of Qwen-Image); one image placeholder that vLLM expands.
QWEN2_5_VL = {
    "answer": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
              "<|vision_start|><|image_pad|><|vision_end|>{question} Answer yes or no.<|im_end|>\n"
              "<|im_start|>assistant\n",
    "write": "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
             "{instruction}\n{prompt}<|im_end|>\n<|im_start|>assistant\n",
}


class VLLMUnavailable(RuntimeError):
    """The vLLM backend was selected where it cannot run."""


def require_vllm(need_gpu: bool = True):
    """The vllm module, or one clear error saying why it cannot be used here (a driver without a GPU checks
    only that the extra is installed: `need_gpu=False`)."""
    try:
        import vllm
    except ImportError:
        raise VLLMUnavailable("reward.backend=vllm needs the vllm extra (pip install 'meta-ttrl[vllm]', GPU "
                              "machines only); use reward.backend=transformers on this machine") from None
    if need_gpu and not torch.cuda.is_available():
        raise VLLMUnavailable("reward.backend=vllm needs a CUDA GPU and this process sees none (give the "
                              "introspector role resources.introspector.num_gpus, or use reward.backend=transformers)")
    return vllm


@dataclass
class Unanswered:
    """Questions where neither answer was among the engine's top-k tokens (scored 0.5: no information)."""
    count: int = 0


def answer_requests(templates: dict, images: np.ndarray, questions: list[str], image_index: list[int]) -> list[dict]:
    """One vLLM request per question: the chat-formatted question and its image as multi-modal data."""
    from PIL import Image
    pil = {i: Image.fromarray(np.asarray(images[i], dtype=np.uint8)) for i in set(image_index)}
    return [{"prompt": templates["answer"].format(question=q), "multi_modal_data": {"image": pil[i]}}
            for q, i in zip(questions, image_index)]


def yes_no_from_logprobs(top: dict, yes_ids: list[int], no_ids: list[int], unanswered: Unanswered) -> tuple[float, float]:
    """(p_yes, p_no) from one position's top-k {token id: Logprob or float}, summed over each answer's token
    variants; an answer outside the top k counts 0, and if both are outside, (eps, eps) so that Eq. 5 gives 0.5."""
    def p(ids):
        return sum(math.exp(getattr(top[t], "logprob", top[t])) for t in ids if t in top)
    yes, no = p(yes_ids), p(no_ids)
    if yes + no == 0:
        unanswered.count += 1
        return 1e-12, 1e-12
    return yes, no


class VLLMIntrospector:
    capabilities = Capabilities(understanding=True, prompt_likelihood=False, image_tokens=False, latent_search=False)
    rubric_dialect = "chat"

    def __init__(self, engine, templates: dict | None = None, top_logprobs: int = 20, sampling_params=None):
        """`engine`: a vllm.LLM (or anything with its `generate` and `get_tokenizer`); `sampling_params`:
        the class building request parameters (default vllm.SamplingParams)."""
        self.engine, self.templates, self.top = engine, templates or QWEN2_5_VL, top_logprobs
        self.params = sampling_params or require_vllm().SamplingParams
        tok = engine.get_tokenizer()
        self.yes_ids, self.no_ids = answer_token_ids(tok, "yes"), answer_token_ids(tok, "no")
        self.unanswered = Unanswered()

    @classmethod
    def from_pretrained(cls, path: str, gpu_memory_utilization: float = 0.4, tensor_parallel: int = 1,
                        templates: dict | None = None) -> "VLLMIntrospector":
        vllm = require_vllm()
        engine = vllm.LLM(model=str(path), gpu_memory_utilization=gpu_memory_utilization,
                          tensor_parallel_size=tensor_parallel, limit_mm_per_prompt={"image": 1})
        return cls(engine, templates)

    def image_features(self, images: np.ndarray):
        return None  # the engine encodes each request's image itself

    def answer_probs(self, images: np.ndarray, questions: list[str], image_index: list[int] | None = None,
                     features=None) -> torch.Tensor:
        """(Q, 2) probabilities of [yes, no] as the first answer token (one engine call for the batch)."""
        index = list(range(len(questions))) if image_index is None else list(image_index)
        requests = answer_requests(self.templates, images, questions, index)
        outs = self.engine.generate(requests, self.params(max_tokens=1, temperature=0.0, logprobs=self.top))
        rows = [yes_no_from_logprobs(o.outputs[0].logprobs[0], self.yes_ids, self.no_ids, self.unanswered)
                for o in outs]
        return torch.tensor(rows, dtype=torch.float32).reshape(len(questions), 2)

    def write(self, prompts: list[str], instruction: str, max_new_tokens: int = 96, temperature: float = 0.0,
              generator: torch.Generator | None = None) -> list[str]:
        """Rubric text per prompt; sampled retries draw their seed from `generator` (reproducible)."""
        seed = None if generator is None else int(torch.randint(0, 2**31 - 1, (1,), generator=generator,
                                                                device=generator.device))
        requests = [{"prompt": self.templates["write"].format(instruction=instruction, prompt=p)} for p in prompts]
        outs = self.engine.generate(requests, self.params(max_tokens=max_new_tokens, temperature=temperature,
                                                           seed=seed))
        return [o.outputs[0].text for o in outs]
