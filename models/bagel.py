"""BAGEL adapter (BAGEL-7B-MoT's layout, models/bagel_layout.py; its network models/bagel_net.py) behind the adapter
protocol of models/adapter.py.

Generation is flow matching in the FLUX VAE's latent space, sampled as Flow-GRPO's SDE with a Gaussian log-prob per
step (models/flow_sde.py), exactly as the Qwen-Image adapter does. The sequence is BAGEL's: the prompt as
`<|im_start|> prompt <|im_end|>` (causal, understanding expert), then the image block `<|vision_start|>`, one token
per 2 x 2 latent patch (vae2llm(patch) + time embedding + position table; generation expert), `<|vision_end|>`,
attending to each other in both directions and to the whole prompt, all at the one RoPE position after the prompt.
The velocity is llm2vae of the latent tokens' final states (BAGEL's convention: x_t = (1 - t) x0 + t eps,
v = eps - x0). CFG as BAGEL's text guidance: the unconditional rows are the image block alone (no prompt), guided
= uncond + g (cond - uncond) for t in `cfg_interval`, then rescaled per image to at most the conditional velocity's
norm ("global" renorm, floor `cfg_renorm_min`); the prompt's keys and values are computed once per call and reused
by every step. Sampling and the teacher-forced log-prob use that same velocity, so importance ratios are exact.

Understanding goes through the ViT: `<|vision_start|>`, the image's ViT tokens, `<|vision_end|>` (bidirectional, RoPE
position 0), then `<|im_start|> question <|im_end|>` and `<|im_start|>` (BAGEL's chat turn), whose next token gives
p(Yes), p(No); rubric and free-text answers are written greedily (or sampled) until `<|im_end|>`.

The policy trains the generation expert and the latent heads (`*_moe_gen`, time_embedder, vae2llm, llm2vae): the
understanding expert, ViT and connector stay as loaded, so the model's own judge does not drift with its policy.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from models.adapter import Capabilities, GeneratorAdapter, ImageSamples, answer_token_ids, resolve_device, \
    resolve_dtype, to_uint8
from models.bagel_layout import ADAPTER_FILE, SPECIAL, AEShape, BagelDirectoryError, BagelShape, bfl_state_dict, \
    check_bagel_dir, check_weights, load_autoencoder, read_configs, save_configs
from models.bagel_net import BagelNet, grid_ids, patchify, unpatchify
from models.diffusion import flow_schedule
from models.flow_sde import sample_trajectory, trajectory_logprobs

TEMPLATES = {"answer": "{question} Answer yes or no.", "write": "{instruction}\n{prompt}", "ask": "{question}"}
TRAINED = ("_moe_gen", "time_embedder.", "vae2llm.", "llm2vae.")


@dataclass
class BagelSampling:
    image_size: int = 512
    steps: int = 10  # SDE steps S (BAGEL's own inference: 50 timesteps, ODE)
    noise_level: float = 0.7  # Flow-GRPO's a
    shift: float = 3.0  # BAGEL's timestep_shift
    trained_steps: list[int] = field(default_factory=list)  # step indices whose log-probs train; [] = all
    cfg_interval: tuple[float, float] | list[float] = (0.4, 1.0)  # guidance only for t in (lo, hi]
    cfg_renorm_min: float = 0.0
    vit_size: int = 0  # understanding resolution; 0: the image side rounded to ViT patches within [224, 980]


class BagelAdapter(GeneratorAdapter):
    capabilities = Capabilities(understanding=True, prompt_likelihood=False, image_tokens=False, latent_search=False,
                                reward_maps=True, describes=True)
    rubric_dialect = "chat"
    lora_targets = (r"language_model\.model\.layers\.\d+\."  # the generation expert's projections
                    r"(self_attn\.(q|k|v|o)_proj_moe_gen|mlp_moe_gen\.(gate|up|down)_proj)")

    def __init__(self, net: BagelNet, vae, tokenizer, configs: tuple, ae: AEShape, sampling: BagelSampling,
                 templates: dict | None = None):
        self.net, self.vae, self.tok, self.ae, self.s = net, vae, tokenizer, ae, sampling
        self.llm_config, self.vit_config = configs
        self.templates = templates or TEMPLATES
        self.special = {k: tokenizer.convert_tokens_to_ids(v) for k, v in SPECIAL.items()}
        self.pad_id = self.special["eos"] if tokenizer.pad_token_id is None else tokenizer.pad_token_id
        self.yes_ids, self.no_ids = answer_token_ids(tokenizer, "yes"), answer_token_ids(tokenizer, "no")
        self.patch = net.shape.latent_patch_size
        down = ae.downsample * self.patch
        if sampling.image_size % down or sampling.image_size // down > net.shape.max_latent_size:
            raise BagelDirectoryError(f"image_size {sampling.image_size} must be a multiple of {down} and at most "
                                      f"{down * net.shape.max_latent_size} px")
        self.side = sampling.image_size // down  # latent tokens per side
        self.latent_side = self.side * self.patch
        self.t = flow_schedule(sampling.steps, sampling.shift)
        self.t_cap = max(t for t in self.t if t < 1)
        self.trained = list(sampling.trained_steps) or list(range(sampling.steps))
        p = self.vit_config.patch_size
        self.vit_size = sampling.vit_size or min(980, max(224, round(sampling.image_size / p) * p))

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "auto", dtype: str | torch.dtype = "auto"):
        from safetensors import safe_open
        from transformers import AutoTokenizer
        path = Path(path)
        meta = check_bagel_dir(path)
        llm, vit, shape, ae = read_configs(path, meta)
        tok = AutoTokenizer.from_pretrained(path)
        tok.add_tokens([t for t in SPECIAL.values() if t not in tok.get_vocab()])  # as BAGEL's loader does
        if len(tok) > llm.vocab_size:
            raise BagelDirectoryError(f"{path}: the tokenizer has {len(tok)} tokens, the model {llm.vocab_size}")
        sampling = BagelSampling(**meta.get("sampling", {}))
        device = resolve_device(device)
        with torch.device("meta"):  # built without memory; the weights are assigned from the file below
            net = BagelNet(llm, vit, shape)
        if device.type == "meta":  # a driver's check: structure only
            return cls(net, None, tok, (llm, vit), ae, sampling, meta.get("templates"))
        with safe_open(path / "ema.safetensors", "pt") as f:
            check_weights(path, set(net.state_dict()), set(f.keys()))
            state = {k: f.get_tensor(k) for k in f.keys()}
        net.load_state_dict(state, assign=True)
        _materialize_buffers(net, llm)
        dtype = resolve_dtype(dtype, device)
        net = net.to(device, dtype).eval()
        vae = load_autoencoder(path, ae, device, dtype)
        return cls(net, vae, tok, (llm, vit), ae, sampling, meta.get("templates"))

    def save_full(self, path) -> None:
        from safetensors.torch import save_file
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().contiguous() for k, v in self.net.state_dict().items()}, path / "ema.safetensors")
        save_file(bfl_state_dict(self.vae, len(self.ae.ch_mult)), path / "ae.safetensors")
        save_configs(path, self.llm_config, self.vit_config)
        self.tok.save_pretrained(path)
        meta = {"backend": "bagel", "shape": asdict(self.net.shape), "ae": asdict(self.ae),
                "sampling": asdict(self.s), "templates": self.templates}
        (path / ADAPTER_FILE).write_text(json.dumps(meta, indent=1))

    # ---- training protocol -------------------------------------------------------------------------
    @property
    def device(self):
        return self.net.vae2llm.weight.device

    @property
    def module(self):
        return self.net

    def module_holder(self) -> str:
        return "net"

    def trainable_parameters(self):
        named = self.net.named_parameters()
        return self.lora_filtered((n, p) for n, p in named if any(k in n for k in TRAINED))

    def freeze(self) -> None:
        self.net.requires_grad_(False)
        if self.vae is not None:
            self.vae.requires_grad_(False)

    def train(self, mode: bool = True) -> None:
        self.net.train(mode)

    @property
    def token_grid(self):
        return None  # no image tokens

    @property
    def reward_grid(self) -> tuple[int, int]:
        return self.latent_side, self.latent_side

    @property
    def max_positions(self) -> int:
        return self.llm_config.max_position_embeddings

    def positions_needed(self, prompt: str, instruction: str, max_new_tokens: int) -> int:
        n = lambda text: len(self._ids(text)) + 4  # noqa: E731  (the turn's tags)
        vit = (self.vit_size // self.vit_config.patch_size) ** 2 + 2
        return max(n(prompt) + 1, n(self.templates["write"].format(instruction=instruction, prompt=prompt))
                   + max_new_tokens, vit + n(self.templates["answer"].format(question=f"Does it show {prompt}?")))

    # ---- generation -----------------------------------------------------------------------------------
    def _ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False).input_ids

    def _prompt_context(self, prompts: list[str], uncond: bool = True):
        """Keys and values of the prompts' turns (rows: cond, then as many empty uncond rows), left-padded."""
        rows = [[self.special["bos"], *self._ids(p), self.special["eos"]] for p in prompts]
        _, past, real, _ = self._prefill(rows + ([[]] * len(prompts) if uncond else []), None)
        return past, real

    def _framed(self, inner: torch.Tensor) -> torch.Tensor:
        """(B, n, D) image tokens between the embeddings of `<|vision_start|>` and `<|vision_end|>`."""
        tags = self.net.language_model.model.embed_tokens(
            torch.tensor([self.special["start_of_image"], self.special["end_of_image"]], device=inner.device))
        b = len(inner)
        return torch.cat([tags[None, :1].expand(b, 1, -1), inner.to(tags.dtype), tags[None, 1:].expand(b, 1, -1)], 1)

    def _block_velocity(self, x: torch.Tensor, t: float, past, mask: torch.Tensor) -> torch.Tensor:
        """The velocity of latents x (B, C, h, w) at time t, the image block attending to the context `past`."""
        b, lm = len(x), self.net.language_model.model
        ids = grid_ids(self.side, self.side, self.net.shape.max_latent_size, x.device)
        tokens = self.net.latent_tokens(patchify(x.to(self.net.vae2llm.weight.dtype), self.patch),
                                        torch.full((b,), t, device=x.device), ids)
        block = self._framed(tokens)
        n = block.shape[1]
        gen = torch.zeros(b, n, dtype=torch.bool, device=x.device)
        gen[:, 1:-1] = True
        allowed = torch.cat([mask[:, None].expand(b, n, -1), gen.new_ones(b, n, n)], 2)
        positions = mask.sum(1, keepdim=True).expand(b, n)  # the whole block at the position after the prompt
        hidden, _ = lm(block, gen, positions, allowed, past)
        return unpatchify(self.net.llm2vae(hidden[:, 1:-1]), self.patch, self.side, self.side).float()

    def velocity(self, x: torch.Tensor, t: float, past, mask: torch.Tensor, guidance: float) -> torch.Tensor:
        """Guided velocity; `past`/`mask` hold cond rows then uncond rows (BAGEL's CFG with global renorm)."""
        b = len(x)
        lo, hi = self.s.cfg_interval
        if guidance == 1.0 or not lo < t <= hi:
            return self._block_velocity(x, t, [(k[:b], v[:b]) for k, v in past], mask[:b])
        both = self._block_velocity(torch.cat([x, x]), t, past, mask)
        cond, uncond = both[:b], both[b:]
        guided = uncond + guidance * (cond - uncond)
        scale = cond.flatten(1).norm(dim=1) / (guided.flatten(1).norm(dim=1) + 1e-8)
        return guided * scale.clamp(min=self.s.cfg_renorm_min, max=1.0)[:, None, None, None]

    def conditional_velocity(self, prompts: list[str], x: torch.Tensor, t: float) -> torch.Tensor:
        """The prompt-conditioned velocity (no guidance), with grad: what SRUM's flow-matching loss trains."""
        past, mask = self._prompt_context(prompts, uncond=False)
        return self._block_velocity(x.to(self.device), t, past, mask)

    @torch.no_grad()
    def sample(self, prompts: list[str], n: int = 1, guidance: float = 4.0, temperature: float = 1.0,
               generator: torch.Generator | None = None, shift=None) -> ImageSamples:
        """n images per prompt (rows grouped by prompt): the SDE trajectory (N, S + 1, C, h, w) as `tokens`, the
        trained steps' log-probs. `temperature` is unused (the SDE's noise is `noise_level`)."""
        if shift is not None:
            raise ValueError("MILR's latent shift is defined for the Janus adapter only")
        prompts = [p for p in prompts for _ in range(n)]
        past, mask = self._prompt_context(prompts)
        x = torch.randn(len(prompts), self.ae.z_channels, self.latent_side, self.latent_side, generator=generator,
                        device=self.device)
        velocity = lambda x, t: self.velocity(x, t, past, mask, guidance)  # noqa: E731
        trajectory, logprobs = sample_trajectory(velocity, x, self.t, self.t_cap, self.s.noise_level, generator)
        return ImageSamples(trajectory, logprobs[:, self.trained], self.decode(trajectory[:, -1]))

    def image_logprobs(self, prompts: list[str], trajectory: torch.Tensor, guidance: float,
                       temperature: float = 1.0, shift=None) -> torch.Tensor:
        """Teacher-forced log-probs (with grad) of the trained steps of recorded trajectories: (N, len(trained))."""
        past, mask = self._prompt_context(prompts)
        velocity = lambda x, t: self.velocity(x, t, past, mask, guidance)  # noqa: E731
        return trajectory_logprobs(velocity, trajectory.to(self.device), self.t, self.trained, self.t_cap,
                                   self.s.noise_level)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> np.ndarray:
        z = latents.to(self.vae.dtype) / self.ae.scale_factor + self.ae.shift_factor
        return to_uint8(self.vae.decode(z).sample.permute(0, 2, 3, 1))

    # ---- understanding --------------------------------------------------------------------------------
    @torch.no_grad()
    def image_features(self, images: np.ndarray) -> torch.Tensor:
        """(N, n_vit, D): each image's ViT tokens in the language model's space, at `vit_size`."""
        pixels = torch.from_numpy(np.asarray(images, dtype=np.uint8)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        if pixels.shape[-2:] != (self.vit_size, self.vit_size):
            pixels = torch.nn.functional.interpolate(pixels, size=(self.vit_size,) * 2, mode="bicubic",
                                                     align_corners=False).clamp(-1, 1)
        return self.net.vit_tokens(pixels.to(self.device, self.net.vae2llm.weight.dtype))

    def _turn(self, text: str) -> list[int]:
        """A user turn and the assistant turn's opening tag: the next token is the answer's first."""
        return [self.special["bos"], *self._ids(text), self.special["eos"], self.special["bos"]]

    def _prefill(self, rows: list[list[int]], blocks: torch.Tensor | None):
        """Rows of text, each after an optional image block (B, n, D) at RoPE position 0, left-padded so all end
        together. Returns the states, the keys/values, which keys are real, and the next positions."""
        lm = self.net.language_model.model
        ids, mask = self._pad(rows, left=True)
        x, nb = lm.embed_tokens(ids), 0
        if blocks is not None:
            x = torch.cat([self._framed(blocks), x], 1)
            nb = blocks.shape[1] + 2
        width = x.shape[1]
        real = torch.cat([mask.new_ones(len(rows), nb), mask], 1).bool()
        allowed = torch.ones(width, width, dtype=torch.bool, device=ids.device).tril()
        allowed[:nb, :nb] = True
        # a pad row sees itself (an all-masked row would give NaN)
        allowed = allowed[None] & real[:, None] | torch.eye(width, dtype=torch.bool, device=ids.device)[None]
        positions = torch.cat([mask.new_zeros(len(rows), nb), (mask.cumsum(1) - 1).clamp(min=0) + int(nb > 0)], 1)
        hidden, past = lm(x, None, positions, allowed)
        return hidden, past, real, positions[:, -1] + 1

    def _question_blocks(self, images, questions, image_index, features):
        feats = self.image_features(images) if features is None else features
        index = list(range(len(questions))) if image_index is None else list(image_index)
        return feats[torch.tensor(index, device=feats.device)]

    @torch.no_grad()
    def answer_probs(self, images, questions, image_index=None, features=None) -> torch.Tensor:
        """(Q, 2) full-vocabulary probabilities of [yes, no] as the answer's first token."""
        rows = [self._turn(self.templates["answer"].format(question=q)) for q in questions]
        hidden, *_ = self._prefill(rows, self._question_blocks(images, questions, image_index, features))
        probs = torch.softmax(self.net.language_model.lm_head(hidden[:, -1]).float(), -1)
        return torch.stack([probs[:, self.yes_ids].sum(-1), probs[:, self.no_ids].sum(-1)], -1)

    def _generate(self, rows, blocks, max_new_tokens: int, temperature: float, generator) -> list[str]:
        """Greedy (or sampled) continuations until `<|im_end|>`, with the keys and values cached."""
        lm, eos = self.net.language_model, self.special["eos"]
        hidden, past, real, positions = self._prefill(rows, blocks)
        last = hidden[:, -1]
        out, done = [], torch.zeros(len(rows), dtype=torch.bool, device=last.device)
        for _ in range(max_new_tokens):
            logits = lm.lm_head(last).float()
            if temperature > 0:
                probs = torch.softmax(logits / temperature, -1)
                token = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            else:
                token = logits.argmax(-1)
            token = torch.where(done, torch.full_like(token, eos), token)
            out.append(token)
            done |= token == eos
            if bool(done.all()):
                break
            real = torch.cat([real, real.new_ones(len(rows), 1)], 1)
            hidden, past = lm.model(lm.model.embed_tokens(token[:, None]), None, positions[:, None], real[:, None],
                                    past)
            last, positions = hidden[:, -1], positions + 1
        tokens = torch.stack(out, 1).tolist() if out else [[] for _ in rows]
        return [self.tok.decode(r[:r.index(eos)] if eos in r else r, skip_special_tokens=True) for r in tokens]

    @torch.no_grad()
    def write(self, prompts, instruction, max_new_tokens=96, temperature=0.0, generator=None) -> list[str]:
        rows = [self._turn(self.templates["write"].format(instruction=instruction, prompt=p)) for p in prompts]
        return self._generate(rows, None, max_new_tokens, temperature, generator)

    @torch.no_grad()
    def ask(self, images, questions, image_index=None, max_new_tokens=64) -> list[str]:
        rows = [self._turn(self.templates["ask"].format(question=q)) for q in questions]
        return self._generate(rows, self._question_blocks(images, questions, image_index, None), max_new_tokens,
                              0.0, None)


def _materialize_buffers(net: BagelNet, llm_config) -> None:
    """Buffers a checkpoint does not hold (RoPE frequencies, SigLIP's position ids) rebuilt off the meta device."""
    from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding
    net.language_model.model.rotary_emb = Qwen2RotaryEmbedding(config=llm_config)
    emb = net.vit_model.vision_model.embeddings
    if "position_ids" in dict(emb.named_buffers()):
        emb.register_buffer("position_ids", torch.arange(emb.num_positions).expand((1, -1)), persistent=False)
    left = [n for n, b in net.named_buffers() if b.is_meta]
    if left:
        raise RuntimeError(f"buffers left unmaterialized after loading: {left[:3]}")
