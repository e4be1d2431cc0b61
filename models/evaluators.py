"""The benchmarks' evaluator models from local directories (transformers classes; nothing is downloaded): an
instance segmenter or open-vocabulary detector, CLIP, BLIP-VQA. Model-specific code lives here; the benchmarks'
rules (benchmarks/) see only `Found` objects, similarities and yes-probabilities.

`check_dir(kind, path)` reads only config.json: the driver's check before a cluster starts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

# kind -> the config.json model_type values each wrapper below serves
KINDS = {"detector": ("mask2former", "owlv2"), "clip": ("clip",), "vqa": ("blip",), "vlm": ("qwen2_5_vl",)}


class EvaluatorModelError(ValueError):
    """An eval.* directory that is missing or holds another kind of model."""


def check_dir(kind: str, path: str) -> str:
    """The directory's model_type, if it is one `kind` accepts; EvaluatorModelError (one line) otherwise."""
    config = Path(path) / "config.json"
    if not config.is_file():
        raise EvaluatorModelError(f"eval.{kind} {path!r}: no config.json there (a transformers model directory)")
    try:
        model_type = json.loads(config.read_text()).get("model_type", "")
    except (json.JSONDecodeError, AttributeError) as e:
        raise EvaluatorModelError(f"eval.{kind} {path!r}: config.json does not read as JSON ({e})") from None
    if model_type not in KINDS[kind]:
        raise EvaluatorModelError(f"eval.{kind} {path!r} holds a {model_type or 'model without model_type'}; the "
                                  f"{kind} must be one of: {', '.join(KINDS[kind])}")
    return model_type


def closed_set_labels(path: str) -> set[str] | None:
    """The class names a closed-set detector's config.json declares (None: none declared)."""
    labels = json.loads((Path(path) / "config.json").read_text()).get("id2label")
    return set(labels.values()) if isinstance(labels, dict) else None


def _pil(images):
    from PIL import Image
    return [Image.fromarray(np.asarray(im, np.uint8)) for im in images]


@dataclass
class Found:
    """One detected instance: its class name, confidence, box (x0, y0, x1, y1 pixels) and mask (H, W bool; None
    for a box-only detector)."""
    label: str
    score: float
    box: tuple[float, float, float, float]
    mask: np.ndarray | None = None


def _mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask)
    if not len(xs):
        return (0.0, 0.0, 0.0, 0.0)
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


class Detector:
    """Mask2Former (closed set: its config's id2label, COCO for GenEval) or OWLv2 (open vocabulary: the queried
    class names)."""

    def __init__(self, path: str, device: str = "cpu"):
        from transformers import AutoProcessor, Mask2FormerForUniversalSegmentation, Owlv2ForObjectDetection
        self.kind, self.device = check_dir("detector", path), torch.device(device)
        cls = Mask2FormerForUniversalSegmentation if self.kind == "mask2former" else Owlv2ForObjectDetection
        self.model = cls.from_pretrained(path).to(self.device).eval()
        self.proc = AutoProcessor.from_pretrained(path)

    @torch.no_grad()
    def detect(self, images: list[np.ndarray], classes: list[str]) -> list[list[Found]]:
        """Every instance found in each image, any confidence (the rules apply their thresholds); `classes`:
        the names an open-vocabulary detector is asked for (a closed-set one reports its own)."""
        sizes = [im.shape[:2] for im in images]
        if self.kind == "mask2former":
            inputs = self.proc(images=_pil(images), return_tensors="pt").to(self.device)
            results = self.proc.post_process_instance_segmentation(
                self.model(**inputs), threshold=0.0, target_sizes=sizes, return_binary_maps=True)
            names = self.model.config.id2label
            out = []
            for res in results:
                masks = res["segmentation"].cpu().numpy().astype(bool) if res["segments_info"] else []
                out.append([Found(names[s["label_id"]], float(s["score"]), _mask_box(m), m)
                            for s, m in zip(res["segments_info"], masks)])
            return out
        queries = [f"a photo of a {c}" for c in classes]
        inputs = self.proc(text=[queries] * len(images), images=_pil(images), return_tensors="pt", padding=True,
                           truncation=True).to(self.device)
        # OWLv2 pads each image to a square at the bottom right: boxes scale by the longer side
        square = [(max(hw), max(hw)) for hw in sizes]
        results = self.proc.image_processor.post_process_object_detection(self.model(**inputs), threshold=0.0,
                                                                          target_sizes=square)
        return [[Found(classes[int(k)], float(s), tuple(float(v) for v in b))
                 for s, k, b in zip(r["scores"], r["labels"], r["boxes"])] for r in results]


class ClipScorer:
    """CLIP image-text similarity: GenEval's zero-shot colour of a crop; T2I-CompBench's CLIPScore."""

    def __init__(self, path: str, device: str = "cpu"):
        from transformers import AutoProcessor, CLIPModel
        check_dir("clip", path)
        self.device = torch.device(device)
        self.model = CLIPModel.from_pretrained(path).to(self.device).eval()
        self.proc = AutoProcessor.from_pretrained(path)

    @torch.no_grad()
    def similarity(self, images: list[np.ndarray], texts: list[str]) -> torch.Tensor:
        """(images, texts) cosine similarities."""
        inputs = self.proc(text=texts, images=_pil(images), return_tensors="pt", padding=True).to(self.device)
        out = self.model(**inputs)
        img = torch.nn.functional.normalize(out.image_embeds.float(), dim=-1)
        txt = torch.nn.functional.normalize(out.text_embeds.float(), dim=-1)
        return (img @ txt.T).cpu()

    def classify(self, images: list[np.ndarray], texts: list[str]) -> list[int]:
        """Index of the best-matching text per image (zero-shot classification)."""
        if not images:
            return []
        return self.similarity(images, texts).argmax(-1).tolist()


class BlipVQA:
    """BLIP-VQA's P(yes) / (P(yes) + P(no)) for the first answer token (T2I-CompBench's attribute binding)."""

    def __init__(self, path: str, device: str = "cpu"):
        from transformers import AutoProcessor, BlipForQuestionAnswering
        check_dir("vqa", path)
        self.device = torch.device(device)
        self.model = BlipForQuestionAnswering.from_pretrained(path).to(self.device).eval()
        self.proc = AutoProcessor.from_pretrained(path)
        tok = self.proc.tokenizer
        self.yes, self.no = (tok.convert_tokens_to_ids(w) for w in ("yes", "no"))
        if tok.unk_token_id in (self.yes, self.no):
            raise EvaluatorModelError(f"eval.vqa {path!r}: the tokenizer has no 'yes'/'no' token")
        self.start = self.model.config.text_config.bos_token_id  # BLIP's decoder starts from [DEC]

    @torch.no_grad()
    def yes_probability(self, images: list[np.ndarray], questions: list[str]) -> list[float]:
        """P(yes) / (P(yes) + P(no)) of `questions[i]` about `images[i]`. forward() returns no logits for VQA in
        transformers 5, so the three towers run by hand: vision -> question encoder -> answer decoder."""
        m = self.model
        inputs = self.proc(images=_pil(images), text=questions, return_tensors="pt", padding=True).to(self.device)
        image_embeds = m.vision_model(pixel_values=inputs["pixel_values"]).last_hidden_state
        question = m.text_encoder(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                  encoder_hidden_states=image_embeds).last_hidden_state
        start = torch.full((len(questions), 1), self.start, device=self.device)
        logits = m.text_decoder(input_ids=start, encoder_hidden_states=question,
                                encoder_attention_mask=inputs["attention_mask"]).logits[:, -1].float()
        probs = torch.softmax(logits, -1)
        yes, no = probs[:, self.yes], probs[:, self.no]
        return (yes / (yes + no).clamp_min(1e-12)).tolist()
