"""SRUM's offline regime (`trainer.regime=offline`): the paper generates and scores its training images once, then
trains on them. Stage 1 samples G candidates for every training prompt with the initial policy and has them judged,
chunk by chunk of `prompts_per_step` prompts, each chunk saved in <run>/offline/ as it lands (safetensors and a
JSON of the rest); an interrupted stage 1 resumes from the chunks saved. Stage 2 trains on that fixed set: step t
takes chunk perm_e(t mod m) of epoch e = t div m (m chunks, a permutation seeded by run.seed and e), so a resumed
run trains on the same chunks without any state of its own. Nothing is sampled in stage 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import ray
import torch
from safetensors.torch import load_file, save_file

from driver.pipeline import InFlight
from rollout.batch import Judgement, RolloutBatch

TENSORS = ("tokens", "logprobs", "rewards", "ref_logprobs", "reward_maps")


def chunks_of(prompts: list[str], n: int) -> list[list[str]]:
    """Full chunks of n prompts; the last is completed with the first prompts (every step trains n groups)."""
    m = -(-len(prompts) // n)
    wrapped = prompts + prompts[: m * n - len(prompts)]
    return [wrapped[k * n: (k + 1) * n] for k in range(m)]


def chunk_for(step: int, m: int, seed: int) -> int:
    """Which of the m chunks step `step` trains on: epoch by epoch, each epoch a seeded permutation."""
    epoch, within = divmod(step, m)
    order = torch.randperm(m, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
    return int(order[within])


class OfflineData:
    """The stage-1 set on disk: chunk k is part_<k>.safetensors (tensors, images) and part_<k>.json (the rest)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def saved(self) -> set[int]:
        return {int(p.stem.split("_")[1]) for p in self.root.glob("part_*.json")}

    def save(self, k: int, batch: RolloutBatch, judged: Judgement) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tensors = {"tokens": batch.tokens, "logprobs": batch.logprobs, "rewards": judged.rewards,
                   "ref_logprobs": judged.ref_logprobs, "images": torch.from_numpy(np.ascontiguousarray(batch.images))}
        if judged.reward_maps is not None:
            tensors["reward_maps"] = judged.reward_maps
        save_file({k_: v.contiguous() for k_, v in tensors.items()}, self.root / f"part_{k:05d}.safetensors")
        meta = {"prompts": batch.prompts, "version": batch.version, "group_size": batch.group_size,
                "rubric": judged.rubric, "health": judged.health}
        tmp = self.root / f".part_{k:05d}.json.tmp"
        tmp.write_text(json.dumps(meta))
        tmp.replace(self.root / f"part_{k:05d}.json")  # last: a chunk counts as saved only once whole

    def load(self, k: int) -> tuple[RolloutBatch, Judgement]:
        meta = json.loads((self.root / f"part_{k:05d}.json").read_text())
        t = load_file(self.root / f"part_{k:05d}.safetensors")
        batch = RolloutBatch(meta["prompts"], t["tokens"], t["logprobs"], t["images"].numpy(), meta["version"],
                             meta["group_size"])
        return batch, Judgement(t["rewards"], t["ref_logprobs"], 0.0, meta["rubric"], meta["health"],
                                t.get("reward_maps"))


class OfflinePipeline:
    """The Pipeline's interface (current, done, resume_state, drop) over the stage-1 set."""

    def __init__(self, job, stream, prompts: list[str], prompts_per_step: int, root: Path, seed: int):
        self.job, self.stream, self.seed = job, stream, seed
        self.chunks, self.data = chunks_of(prompts, prompts_per_step), OfflineData(root)
        self.built = False  # stage 1 checked (and finished) once per session, not at every step

    def build(self) -> None:
        """Stage 1: every chunk not saved yet sampled by the rollouts and judged, then saved."""
        for k in sorted(set(range(len(self.chunks))) - self.data.saved()):
            parts = self.job.rollout(self.chunks[k])
            judged = self.job.judge(parts)
            self.data.save(k, RolloutBatch.concat(ray.get(parts)), Judgement.concat(ray.get(judged)))

    def current(self, step: int, steps: int) -> InFlight:
        if not self.built:
            self.build()  # a no-op when every chunk is on disk already (a resume)
            self.built = True
        batch, judged = self.data.load(chunk_for(step, len(self.chunks), self.seed))
        return InFlight(self.stream.state(), [ray.put(batch)], [ray.put(judged)], [])

    def done(self) -> None:
        pass

    def resume_state(self) -> dict:
        return self.stream.state()  # never drawn from: the chunk order is a function of the step

    def drop(self, rewind: bool) -> None:
        pass
