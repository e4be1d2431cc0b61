"""The roles of one Meta-TTRL job placed on a Ray cluster and wired together; the driver calls these verbs.

Samples travel as object refs (the driver routes refs, never tensors); weights travel learner -> rollouts over
the collective in `actors.weight_sync`.
"""

from __future__ import annotations

import time
from pathlib import Path

import ray
from tqdm import tqdm
from omegaconf import OmegaConf
from ray.util.placement_group import remove_placement_group

from actors import weight_sync
from actors.evaluator import Evaluators
from actors.introspector import IntrospectorActor
from actors.learner import LearnerActor
from actors.placement import ActorNotBack, bundles, place_role
from actors.rollout import RolloutActor
from learners import checkpoint
from learners.state import State


class MetaTTRLJob:
    def __init__(self, cfg, metadata: dict[str, dict], train: bool = True, evaluated: tuple[str, ...] = ()):
        """`train=False`: rollouts and introspectors only, for the methods without a weight update (Best-of-N,
        MILR): no learner is placed and no weight-sync group is formed. `evaluated`: the benchmarks whose
        evaluators the job measures with (actors/evaluator.py)."""
        self.cfg, self.metadata = cfg, metadata
        m, res, tr, seed = cfg.model, cfg.resources, cfg.trainer, cfg.run.seed
        self.bucket_bytes = bucket = int(cfg.sync.bucket_mb * 2**20)

        # offline: the stage-1 set is as old as the initial policy by design, no part is dropped as stale
        staleness = 2**31 if tr.regime == "offline" else tr.max_staleness if tr.async_mode else 0

        def learner_args(i):
            return (m, m.threads, cfg.grpo, cfg.rollout.guidance, cfg.rollout.temperature, seed, i,
                    tr.learners, bucket, staleness, tr.algorithm, tr.strategy,
                    tr.zero_stage, OmegaConf.to_container(tr.deepspeed))

        self.learners, self.rollouts, self.introspectors, self.groups = [], [], [], []
        self.evaluators = None
        try:  # a role that cannot be placed frees the roles placed before it
            if train:
                self.learners = self._place(LearnerActor, "learner", tr.learners, res.learner, learner_args)
            self.rollouts = self._place(RolloutActor, "rollout", cfg.rollout.actors, res.rollout,
                                        lambda i: (m, m.threads, seed * 1000 + i))
            self.introspectors = self._place(IntrospectorActor, "introspector", tr.introspectors, res.introspector,
                                             lambda i: (m, m.threads, cfg.rubric, metadata, seed, cfg.reward,
                                                        cfg.data.benchmark, cfg.eval))
            self.evaluators = Evaluators(cfg, list(evaluated), metadata)
            if train:
                self._join_collective()
            self._pids: dict[str, int] = {}
            self.find_restarted()
        except BaseException:
            self.shutdown()
            raise

    def _place(self, actor_cls, role: str, n: int, resources, args_for) -> list:
        actors, group = place_role(actor_cls, role, n, resources, self.cfg.resources.strategy, args_for,
                                   max_restarts=self.cfg.trainer.max_actor_restarts)
        self.groups.append(group)
        return actors

    def shutdown(self) -> None:
        """Kill the actors (their collective groups go with them) and free the placement groups."""
        for actor in self.learners + self.rollouts + self.introspectors:
            ray.kill(actor)
        for group in self.groups:
            remove_placement_group(group)
        if self.evaluators is not None:
            self.evaluators.shutdown()

    def _join_collective(self) -> None:
        address, port = ray.get(self.learners[0].address.remote())
        k, n = len(self.learners), len(self.rollouts)
        holders = self.learners + self.rollouts
        ray.get([h.join.remote(rank, k, n, address, port, self.cfg.sync.backend, self.cfg.sync.timeout_s)
                 for rank, h in enumerate(holders)])

    def rollout(self, prompts: list[str], group_size: int | None = None) -> list:
        """G candidates per prompt (`rollout.group_size` unless given), prompts dealt to the rollout actors
        (object refs, one per actor used)."""
        n, r = len(self.rollouts), self.cfg.rollout
        shares = [prompts[i::n] for i in range(n)]
        g = group_size or r.group_size
        return [a.sample.remote(s, g, r.guidance, r.temperature) for a, s in zip(self.rollouts, shares) if s]

    def judge(self, parts: list) -> list:
        r, m = self.cfg.rollout, len(self.introspectors)
        return [self.introspectors[i % m].judge.remote(part, r.guidance, r.temperature) for i, part in enumerate(parts)]

    def find_restarted(self, timeout_s: float | None = None) -> list[str]:
        """Names of the actors that came back as a new process since the last call (waiting for restarting
        ones); ActorNotBack naming an actor that is not back within `timeout_s` and what its bundle lacks."""
        timeout_s = self.cfg.trainer.restart_timeout_s if timeout_s is None else timeout_s
        deadline, pids = time.time() + timeout_s, {}
        for name, actor in self.holders().items():
            while True:
                try:
                    pids[name] = ray.get(actor.pid.remote(), timeout=max(deadline - time.time(), 1))
                    break
                except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as e:  # restarting: ask again
                    if time.time() > deadline:
                        raise ActorNotBack(f"{name} is not answering {timeout_s:.0f} s after a failure "
                                           f"(out of restarts, stuck, or no node left for it): {type(e).__name__}; "
                                           f"{self._needs(name)}") from e
                    time.sleep(0.5)
        restarted = [n for n, pid in pids.items() if n in self._pids and self._pids[n] != pid]
        self._pids = pids
        return restarted

    def _needs(self, name: str) -> str:
        """What a lost actor's bundle asks against what the cluster has free (alive nodes only)."""
        res = getattr(self.cfg.resources, name.rsplit("-", 1)[0])
        need = bundles(1, res.num_cpus, res.num_gpus, res.node_resource)[0]
        free = {k: round(v, 3) for k, v in ray.available_resources().items() if k in need}
        return f"its bundle needs {need}, the cluster has {free} of those free"

    def placement(self) -> dict:
        """Each actor's node (id, ip) and process, by actor name."""
        holders = self.holders()
        return dict(zip(holders, ray.get([a.node.remote() for a in holders.values()])))

    def rejoin(self) -> None:
        """A new process group for the weight holders (after one of them restarted: the old group is broken)."""
        self._join_collective()

    def holders(self) -> dict:
        """Every actor whose state a checkpoint holds, by checkpoint name (= its actor name)."""
        roles = {"learner": self.learners, "rollout": self.rollouts, "introspector": self.introspectors}
        return {f"{role}-{i}": actor for role, actors in roles.items() for i, actor in enumerate(actors)}

    def save_checkpoint(self, root: Path, step: int, driver: State, keep: int) -> Path:
        """Every actor writes its own files into the temp directory, the driver adds its own, then it is
        published atomically (see learners.checkpoint)."""
        tmp = checkpoint.begin(root, step)
        files = checkpoint.write_state(tmp, "driver", driver)
        for written in ray.get([a.save_state.remote(str(tmp), name) for name, a in self.holders().items()]):
            files |= written
        return checkpoint.commit(root, tmp, step, files, keep)

    def restore(self, path: Path) -> None:
        """Every actor loads its state from a verified checkpoint; then the rollouts get the learner's weights."""
        ray.get([a.restore.remote(str(path), name) for name, a in self.holders().items()])
        self.sync()

    def restore_some(self, path: Path, names: list[str]) -> None:
        """Only these actors from a checkpoint (e.g. a restarted introspector's rubric cache)."""
        holders = self.holders()
        ray.get([holders[n].restore.remote(str(path), n) for n in names])

    def sync(self) -> tuple[int, float]:
        """Learner 0 broadcasts its weights and every rollout actor confirms the version and a checksum of what
        it holds (weight_sync.SyncError otherwise); returns (version, seconds of the slowest receiver)."""
        stride = self.cfg.sync.check_stride
        results = ray.get([ln.broadcast.remote(stride) for ln in self.learners] +
                          [a.receive_weights.remote(self.bucket_bytes, stride) for a in self.rollouts])
        sent, received = results[0], results[len(self.learners):]
        weight_sync.check_sync(sent, {f"rollout-{i}": got[:2] for i, got in enumerate(received)})
        return sent[0], max(seconds for *_, seconds in received)

    def train(self, parts: list, judgements: list) -> dict:
        """One GRPO step on every learner rank (each takes its share of the step's samples)."""
        return ray.get([ln.step.remote(parts, judgements) for ln in self.learners])[0]

    def update(self, parts: list, judgements: list) -> dict:
        """GRPO step, then learner 0 broadcasts and every rollout actor receives (after the samples already
        queued on it: in async mode those are the next step's, one version behind)."""
        stats = self.train(parts, judgements)
        version, seconds = self.sync()
        return {**stats, "version": version, "sync_s": seconds}

    def save_policy(self, path: str) -> None:
        ray.get([ln.save.remote(path) for ln in self.learners])  # rank 0 writes; ZeRO-3 ranks join its gather

    def evaluate_parts(self, parts: list, step: int) -> list:
        """The benchmark evaluator's per-image scores of a step's rollout parts (refs; metrics only: they never
        reach the policy), every `eval.every` steps; [] on other steps."""
        e, name = self.cfg.eval, self.cfg.data.benchmark
        if not e.every or step % e.every or self.evaluators is None:
            return []
        return [self.evaluators.score_batch(name, part) for part in parts]

    def evaluate(self, metas: list[dict], benchmark: str) -> tuple[list[dict], list]:
        """`data.eval_samples` images per prompt (the first `data.eval_max_prompts`) in batches of
        `eval.batch_prompts` prompts, each batch drawn with its own fixed seed (the same noise every evaluation:
        what changes is the weights) by the next of the actors holding the current weights, and scored by the
        benchmark's evaluator; returns the per-image records and Scored lists (benchmarks/results.py makes the
        table and files)."""
        d, r, e = self.cfg.data, self.cfg.rollout, self.cfg.eval
        chunk = metas[: d.eval_max_prompts] if d.eval_max_prompts > 0 else metas
        samplers = self.evaluation_samplers()
        records, refs = [], []
        for k, start in enumerate(range(0, len(chunk), e.batch_prompts)):
            part = chunk[start: start + e.batch_prompts]
            images = samplers[k % len(samplers)].evaluation_images.remote(
                [m["prompt"] for m in part], d.eval_samples, r.guidance, r.temperature, self.cfg.run.seed * 100_003 + k)
            expanded = [m for m in part for _ in range(d.eval_samples)]
            records += expanded
            refs.append(self.evaluators.score(benchmark, images, expanded))
        scored = []
        for ref in tqdm(refs, desc=f"evaluate {benchmark}", unit="batch", leave=False):  # in order: deterministic
            scored += ray.get(ref)
        return records, scored

    def evaluation_samplers(self) -> list:
        """The actors holding the current weights whole: every rollout, and learner 0 (after the sync its weights
        are the rollouts', checksum-verified) unless ZeRO-3 partitions them."""
        tr = self.cfg.trainer
        whole = not (tr.strategy == "deepspeed" and tr.zero_stage == 3)
        return self.rollouts + (self.learners[:1] if whole else [])

    def grid(self, prompts: list[str], per_prompt: int):
        r = self.cfg.rollout
        return ray.get(self.rollouts[0].grid.remote(prompts, per_prompt, r.guidance, r.temperature, self.cfg.run.seed))
