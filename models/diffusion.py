"""Diffusion adapter: a diffusers flow transformer (SD3, Qwen-Image or FLUX; models/flow_families.py) sampled as
an SDE with per-step Gaussian log-probs (models/flow_sde.py), guidance identical in sampling and in the
teacher-forced log-prob, a configurable subset of trained steps, and VAE decoding.

Prompts become a `TextCondition` (models/flow_text.py): the understanding VLM's last hidden states when the
pipeline's text encoder is a Qwen2.5-VL (Qwen-Image's design, and our own flow layout), else the published
pipeline's CLIP/T5 encoders (SD3, FLUX) through diffusers' own `encode_prompt`.
What `sample` returns as `tokens` is the SDE trajectory, (N, S + 1, C, h, w): the learner recomputes the trained
steps' log-probs from it, exactly as the Janus adapter does from image tokens.

On disk (diffusers pipeline layout): model_index.json, transformer/, vae/, text_encoder/ (+ tokenizers, and for SD3
and FLUX text_encoder_2/3), and optionally meta_ttrl.json {"backend": "flow", "flow": FlowSettings,
"latent_channels", "latent_size"} (without it: Flow-GRPO's defaults, `default_meta`). The understanding half of the
protocol (rubric writing, Yes/No answers) is a Qwen2.5-VL's: the pipeline's own text encoder, or for SD3 and FLUX
the one at `understanding` (config: model.understanding_path).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from models.adapter import Capabilities, GeneratorAdapter, ImageSamples, resolve_device, resolve_dtype, to_uint8
from models.flow_families import FAMILIES, VAES, SD3Family
from models.flow_sde import sample_trajectory, trajectory_logprobs
from models.flow_text import PIPELINES, PipelineText, TextCondition, vlm_encoder

ADAPTER_FILE = "meta_ttrl.json"


class NoUnderstanding(RuntimeError):
    """A flow pipeline without a VLM was asked to understand (rubrics, Yes/No answers)."""
SUPPORTED_TRANSFORMERS = tuple(FAMILIES)  # the call signatures models/flow_families.py knows
VLM_TEXT_ENCODERS = ("Qwen2_5_VLForConditionalGeneration",)  # a text encoder that also understands images


@dataclass
class FlowSettings:
    steps: int = 10  # denoising steps S
    noise_level: float = 0.7  # Flow-GRPO's a
    trained_steps: tuple[int, ...] | list[int] = ()  # step indices whose log-probs train the policy; () = all
    shift: float = 3.0  # the flow-matching schedule's time shift (SD3: 3.0; Qwen-Image: exp(mu) of its resolution)
    text_tokens: int = 128  # prompts are padded to this many tokens, so a prompt's velocity never depends on the
    # other prompts of its batch (SD3's joint attention has no text mask): sampling and training batches differ


def flow_schedule(steps: int, shift: float) -> list[float]:
    """t_0 = 1 > t_1 > ... > t_S = 0 with the shifted schedule of diffusers' FlowMatchEulerDiscreteScheduler."""
    t = torch.linspace(1.0, 0.0, steps + 1)
    return (shift * t / (1 + (shift - 1) * t)).tolist()


def check_flow_dir(path: Path) -> tuple[dict, dict]:
    """(model_index, meta) of a flow-model directory, or an error naming what is missing or unsupported; a
    pipeline without meta_ttrl.json (e.g. Qwen/Qwen-Image as published) gets `default_meta`."""
    missing = [p for p in ("model_index.json", "transformer", "vae", "text_encoder") if not (path / p).exists()]
    if missing:
        raise FileNotFoundError(f"{path} is not a flow model: it lacks {missing} (diffusers pipeline layout)")
    index = json.loads((path / "model_index.json").read_text())
    kind = (index.get("transformer") or [None, None])[1]
    if kind not in SUPPORTED_TRANSFORMERS:
        raise ValueError(f"{path}: transformer class {kind!r} is not supported; supported: "
                         f"{', '.join(SUPPORTED_TRANSFORMERS)}")
    if not has_own_vlm(index) and index.get("_class_name") not in PIPELINES:
        raise ValueError(f"{path}: its text encoder {index['text_encoder'][1]!r} is not a Qwen2.5-VL and its pipeline "
                         f"{index.get('_class_name')!r} is not one whose text encoders are wired "
                         f"({', '.join(PIPELINES)})")
    meta_file = path / ADAPTER_FILE
    return index, json.loads(meta_file.read_text()) if meta_file.is_file() else default_meta(path)


def has_own_vlm(index: dict) -> bool:
    return (index.get("text_encoder") or [None, None])[1] in VLM_TEXT_ENCODERS


def default_meta(path: Path, resolution: int = 512) -> dict:
    """Flow-GRPO's sampling defaults (10 SDE steps, noise level 0.7, every step trained) at `resolution` px with
    an 8x VAE; the time shift from the pipeline's scheduler config (Qwen-Image's resolution-dependent shift:
    exp(mu), mu interpolated in the image's token count)."""
    latent = resolution // 8
    vae = json.loads((path / "vae" / "config.json").read_text())
    channels = vae.get("latent_channels") or vae.get("z_dim") or 16
    shift = 3.0
    sched = path / "scheduler" / "scheduler_config.json"
    if sched.is_file():
        s = json.loads(sched.read_text())
        shift = s.get("shift", shift)
        if s.get("use_dynamic_shifting"):
            tokens = (latent // 2) ** 2
            lo, hi = s.get("base_image_seq_len", 256), s.get("max_image_seq_len", 4096)
            mu = s.get("base_shift", 0.5) + (s.get("max_shift", 1.15) - s.get("base_shift", 0.5)) * (tokens - lo) / (hi - lo)
            shift = float(np.exp(mu))
    return {"backend": "flow", "flow": asdict(FlowSettings(shift=shift)), "latent_channels": channels,
            "latent_size": latent}


class DiffusionAdapter(GeneratorAdapter):
    def __init__(self, transformer, vae, text_encoder, settings: FlowSettings, latent_channels: int,
                 latent_size: int, understanding=None, family=None):
        """`text_encoder`: prompts -> TextCondition (a PipelineText, or `vlm_encoder` of `understanding`)."""
        self.transformer, self.vae, self.encode_text = transformer, vae, text_encoder
        self.family = family or FAMILIES.get(type(transformer).__name__, SD3Family())
        self.understanding = understanding  # answers and writes rubrics (the VLM); None in pure-sampling uses
        self.s, self.channels, self.size = settings, latent_channels, latent_size
        self.t = flow_schedule(settings.steps, settings.shift)
        self.t_cap = max(t for t in self.t if t < 1)
        bad = [i for i in settings.trained_steps if not 0 <= i < settings.steps]
        if bad:
            raise ValueError(f"trained steps {bad} are outside 0..{settings.steps - 1}")
        self.trained = list(settings.trained_steps) or list(range(settings.steps))

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "auto", dtype: str | torch.dtype = "auto",
                        understanding: str | Path | None = None) -> "DiffusionAdapter":
        """`understanding`: a Qwen2.5-VL directory for pipelines without one (SD3, FLUX); ignored otherwise."""
        import diffusers

        from models.qwen_vl import QwenVLUnderstanding
        path = Path(path)
        index, meta = check_flow_dir(path)
        kind = index["transformer"][1]
        transformer_cls, vae_cls = getattr(diffusers, kind), getattr(diffusers, VAES[kind])
        settings, family = FlowSettings(**meta["flow"]), FAMILIES[kind]
        own = has_own_vlm(index)
        vlm_path = path / "text_encoder" if own else (Path(understanding) if understanding else None)
        device = resolve_device(device)
        if device.type == "meta":  # a driver's check: configs only
            with torch.device("meta"):
                transformer = transformer_cls.from_config(transformer_cls.load_config(path / "transformer"))
            return cls(transformer, None, None, settings, meta["latent_channels"], meta["latent_size"],
                       QwenVLUnderstanding.shell(vlm_path) if vlm_path else None, family)
        dtype = resolve_dtype(dtype, device)
        load = dict(torch_dtype=dtype, low_cpu_mem_usage=False)
        transformer = transformer_cls.from_pretrained(path / "transformer", **load).to(device).eval()
        vae = vae_cls.from_pretrained(path / "vae", **load).to(device).eval()
        vlm = QwenVLUnderstanding.from_pretrained(vlm_path, device, dtype) if vlm_path else None
        encode = (vlm_encoder(vlm, family.prompt_template, settings.text_tokens) if own else
                  PipelineText.from_pretrained(path, index["_class_name"], device, dtype, settings.text_tokens))
        return cls(transformer, vae, encode, settings, meta["latent_channels"], meta["latent_size"], vlm, family)

    def save_full(self, path: str | Path) -> None:
        """The pipeline's layout: a published SD3/FLUX pipeline keeps its text encoders, tokenizers and scheduler
        (and is saved without its separate understanding VLM, which the config names)."""
        path = Path(path)
        if isinstance(self.encode_text, PipelineText):
            self.encode_text.save_pretrained(path)  # writes the pipeline's model_index.json, completed below
            index = json.loads((path / "model_index.json").read_text())
        else:
            self.understanding.save_pretrained(path / "text_encoder")
            index = {"_class_name": "MetaTTRLFlowPipeline",
                     "text_encoder": ["transformers", type(self.understanding.model).__name__]}
        self.transformer.save_pretrained(path / "transformer")
        self.vae.save_pretrained(path / "vae")
        index |= {"transformer": ["diffusers", type(self.transformer).__name__],
                  "vae": ["diffusers", type(self.vae).__name__]}
        (path / "model_index.json").write_text(json.dumps(index, indent=1))
        meta = {"backend": "flow", "flow": asdict(self.s), "latent_channels": self.channels, "latent_size": self.size}
        (path / ADAPTER_FILE).write_text(json.dumps(meta, indent=1))

    @property
    def capabilities(self) -> Capabilities:
        """Its own understanding only with a VLM (Qwen-Image's, or `understanding` for SD3/FLUX); no image tokens,
        prompt likelihood or latent search; SRUM's maps on the latent grid."""
        return Capabilities(understanding=self.understanding is not None, prompt_likelihood=False,
                            image_tokens=False, latent_search=False, reward_maps=True,
                            describes=self.understanding is not None)

    @property
    def device(self):
        return next(self.transformer.parameters()).device

    # ---- training protocol (shared with the Janus adapter) -------------------------------------------
    @property
    def module(self) -> torch.nn.Module:
        return self.transformer

    def trainable_parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        return self.lora_filtered((f"transformer.{n}", p) for n, p in self.transformer.named_parameters())

    def module_holder(self) -> str:
        return "transformer"

    @property
    def lora_targets(self) -> list[str]:
        return self.family.lora_targets

    def freeze(self) -> None:
        text = self.encode_text.pipe.components.values() if isinstance(self.encode_text, PipelineText) else ()
        for m in (self.transformer, self.vae, self.understanding and self.understanding.model, *text):
            if isinstance(m, torch.nn.Module):
                m.requires_grad_(False)

    def train(self, mode: bool = True) -> None:
        self.transformer.train(mode)

    # ---- understanding (the VLM's) --------------------------------------------------------------------
    @property
    def vlm(self):
        if self.understanding is None:
            raise NoUnderstanding("this SD3/FLUX pipeline has no VLM to write and answer rubrics: set "
                                  "model.understanding_path=<a Qwen2.5-VL directory>")
        return self.understanding

    def image_features(self, images):
        return self.vlm.image_features(images)

    def answer_probs(self, images, questions, image_index=None, features=None):
        return self.vlm.answer_probs(images, questions, image_index, features)

    def write(self, prompts, instruction, max_new_tokens=96, temperature=0.0, generator=None):
        return self.vlm.write(prompts, instruction, max_new_tokens, temperature, generator)

    def ask(self, images, questions, image_index=None, max_new_tokens=64):
        return self.vlm.ask(images, questions, image_index, max_new_tokens)

    @property
    def rubric_dialect(self) -> str:
        return self.vlm.rubric_dialect

    @property
    def token_grid(self):
        return None  # no image tokens

    @property
    def reward_grid(self) -> tuple[int, int]:
        return self.size, self.size  # SRUM's maps on the latent grid (learners/srum.flow_loss)

    def positions_needed(self, prompt: str, instruction: str, max_new_tokens: int) -> int:
        return self.vlm.positions_needed(prompt, instruction, max_new_tokens)

    @property
    def max_positions(self) -> int:
        return self.vlm.max_positions

    def _conditions(self, prompts: list[str]) -> TextCondition:
        """The prompts' conditioning, rows [cond; uncond] (uncond: the empty prompt)."""
        return self.encode_text(prompts + [""] * len(prompts)).to(self.device)

    def conditional_velocity(self, prompts: list[str], x: torch.Tensor, t: float) -> torch.Tensor:
        """The prompt-conditioned velocity (no guidance) at time t for latents x (B, C, h, w), with grad: what the
        flow-matching loss trains (SRUM)."""
        return self.velocity(x.to(self.device), t, self._conditions(prompts), 1.0)

    def velocity(self, x: torch.Tensor, t: float, cond: TextCondition, guidance: float) -> torch.Tensor:
        """Guided velocity at time t for latents x (B, C, h, w); `cond` holds cond then uncond rows."""
        return self.family.velocity(self.transformer, x, t, cond, guidance)

    @torch.no_grad()
    def sample(self, prompts: list[str], n: int = 1, guidance: float = 4.5, temperature: float = 1.0,
               generator: torch.Generator | None = None, shift=None) -> ImageSamples:
        """n images per prompt (rows grouped by prompt): the trajectory as `tokens`, the trained steps' log-probs.
        `temperature` is unused (the SDE's noise level is `noise_level`); kept for the adapter protocol."""
        if shift is not None:
            raise ValueError("MILR's latent shift is defined for the Janus adapter only")
        prompts = [p for p in prompts for _ in range(n)]
        cond = self._conditions(prompts)
        x = torch.randn(len(prompts), self.channels, self.size, self.size, generator=generator, device=self.device)
        velocity = lambda x, t: self.velocity(x, t, cond, guidance)  # noqa: E731
        trajectory, logprobs = sample_trajectory(velocity, x, self.t, self.t_cap, self.s.noise_level, generator)
        return ImageSamples(trajectory, logprobs[:, self.trained], self.decode(trajectory[:, -1]))

    def image_logprobs(self, prompts: list[str], trajectory: torch.Tensor, guidance: float,
                       temperature: float = 1.0, shift=None) -> torch.Tensor:
        """Teacher-forced log-probs (with grad) of the trained steps of recorded trajectories: (N, len(trained))."""
        cond = self._conditions(prompts)
        velocity = lambda x, t: self.velocity(x, t, cond, guidance)  # noqa: E731
        return trajectory_logprobs(velocity, trajectory.to(self.device), self.t, self.trained, self.t_cap,
                                   self.s.noise_level)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        pixels = self.family.decode(self.vae, latents)  # (N, 3, H, W) in [-1, 1]
        return to_uint8(pixels.permute(0, 2, 3, 1))
