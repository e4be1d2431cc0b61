"""Prompt formats of Janus-layout checkpoints: the toy model's (stored with it in meta_ttrl.json) and Janus-Pro's
DeepSeek chat format (used when a checkpoint has no meta_ttrl.json, e.g. a converted Janus-Pro-1B/7B).

A format is a dict of templates (`generate`, `image`, `answer`, `caption`, `write`; optionally `reason`, MILR's
reasoning phase) with the fields {prompt},
{question}, {instruction} and {image} (one image token per vision patch, joined by `image_joiner`), and the
`rubric_dialect` the model writes rubrics in (rewards/dialects.py): "chat" for Janus-Pro, "toy" for the toy model;
a meta_ttrl.json without the key is a toy-format file (every one written before the key existed was).
"""

from __future__ import annotations

import json
from pathlib import Path

ADAPTER_FILE = "meta_ttrl.json"
TEMPLATE_NAMES = ("generate", "image", "answer", "caption", "write")
RUBRIC_DIALECTS = ("toy", "chat")  # rewards/dialects.py's DIALECTS (a test keeps the two equal)

# Janus-Pro (DeepSeek's "deepseek" SFT format, empty system prompt for generation): a user turn, the assistant
# tag, and for image generation the begin-of-image tag; an image is <boi> + 576 x <image> + <eoi>.
JANUS_PRO = {
    "generate": "{bos}<|User|>: {prompt}\n\n<|Assistant|>:{boi}",
    "image": "{bos}<|User|>: {boi}{image}{eoi}\n",
    "answer": "{bos}<|User|>: {boi}{image}{eoi}\n{question} Answer yes or no.\n\n<|Assistant|>:",
    "caption": "{bos}<|User|>: {boi}{image}{eoi}\nDescribe the image in one sentence.\n\n<|Assistant|>:",
    "write": "{bos}<|User|>: {instruction}\n{prompt}\n\n<|Assistant|>:",
    "ask": "{bos}<|User|>: {boi}{image}{eoi}\n{question}\n\n<|Assistant|>:",  # free answers (SRUM's scores)
    # MILR's reasoning phase (models/janus_reasoning.py): the reasoning follows, then BOI and the image (our wording)
    "reason": "{bos}<|User|>: {prompt}\nFirst describe in detail the image you will draw, then draw it.\n\n"
              "<|Assistant|>:",
}
JANUS_PRO_SPECIALS = ("<|User|>", "<|Assistant|>")


def janus_pro_format(tokenizer) -> dict:
    """Janus-Pro's templates with this tokenizer's BOS and image tags filled in."""
    tags = {"bos": tokenizer.bos_token, "boi": getattr(tokenizer, "boi_token", None) or "<begin_of_image>",
            "eoi": getattr(tokenizer, "eoi_token", None) or "<end_of_image>"}
    vocab = tokenizer.get_vocab()
    missing = [t for t in (*tags.values(), *JANUS_PRO_SPECIALS) if t is None or t not in vocab]
    if missing:
        raise ValueError(f"the tokenizer lacks {missing}: it is not Janus-Pro's; put a {ADAPTER_FILE} with "
                         f"'templates' ({', '.join(TEMPLATE_NAMES)}) next to the checkpoint")
    templates = {}
    for name, text in JANUS_PRO.items():
        for key, value in tags.items():
            text = text.replace("{" + key + "}", value)
        templates[name] = text
    return {"templates": templates, "image_joiner": "", "rubric_dialect": "chat"}


def load_format(path: Path, tokenizer) -> dict:
    """`meta_ttrl.json` next to the checkpoint if there is one, else Janus-Pro's chat format."""
    file = Path(path) / ADAPTER_FILE
    if not file.is_file():
        return janus_pro_format(tokenizer)
    try:
        fmt = json.loads(file.read_text())
        templates = fmt["templates"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{file} is not a prompt format ({e}): expected {{\"templates\": {{...}}}}") from None
    missing = [n for n in TEMPLATE_NAMES if n not in templates]
    if missing:
        raise ValueError(f"{file} lacks the templates {missing}; needed: {', '.join(TEMPLATE_NAMES)}")
    dialect = fmt.get("rubric_dialect", "toy")
    if dialect not in RUBRIC_DIALECTS:
        raise ValueError(f"{file}: rubric_dialect {dialect!r} is not one of {', '.join(RUBRIC_DIALECTS)}")
    return {"templates": templates, "image_joiner": fmt.get("image_joiner", " "), "rubric_dialect": dialect}
