"""The RL loop: roll out groups with the core engine, assign per-turn credit, PPO-update.

One iteration = ``tasks_per_iter`` tasks × ``group_size`` rollouts (same seed within a group)
→ :func:`agentgym.trainers.credit_bridge.assign_credit` (the credit library) → token batch →
:meth:`Trainer.update`. Checkpoints hold the model (or LoRA adapter), optimiser, scheduler, all
RNG states and the task cursor, so a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import shutil
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agentgym import registry
from agentgym.credit import build_pipeline
from agentgym.errors import ConfigError
from agentgym.policies.base import Completion, Message, Policy
from agentgym.policies.simple import ScriptedPolicy
from agentgym.registry import check_env_config
from agentgym.rollout import plan, rollout
from agentgym.state_group import check_verifier, episode_metrics
from agentgym.store import TrajectoryStore
from agentgym.trajectory import Trajectory

from .batch import Batch, make_batch
from .chat import annotate_tokens, retokenize, to_sequence
from .config import Recipe, RecipeError
from .credit_bridge import CreditFn, TurnCredit, assign_credit
from .generation import GenerationBackend, HFGenerator, TransformersPolicy
from .info_gain import TransformersGoldScorer
from .losses import aggregate, kl_penalty, loss_denominator, policy_loss, sequence_logprobs
from .metrics import MetricsLogger, plot_learning_curve, rollout_metrics
from .models import PolicyModel, load_policy
from .progress import Progress
from .tiny import make_tiny_model, tiny_corpus_envs

__all__ = ["Trainer", "auto_threads", "make_backend"]

MAX_AUTO_THREADS = 8


def auto_threads() -> int:
    """torch's CPU threads when a recipe leaves ``train.threads`` unset: one core fewer than this
    process may use (at least 1, at most :data:`MAX_AUTO_THREADS`).

    torch's own default takes every core, and its threads spin while they wait for each other. The
    demo's first 40 SFT steps on a shared 2-core machine: 18 s on 1 thread (load 3.4), 196 s on 2
    (load 6.1); on the same cores idle (load 0.5, bench/demo_phases.py) 12.5 s on 1, 7.2 s on 2.
    Losing 1.7× when idle beats losing 10× when busy, so a core is left free (it also serves the
    env steps and tokenisation); the cap is a guess (more cores were not measured), and
    ``train.threads`` overrides it all.
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores - 1, MAX_AUTO_THREADS))


def make_backend(recipe: Recipe, pm: PolicyModel) -> GenerationBackend:
    """The generation backend a recipe names (vLLM ones are imported only when asked for)."""
    gen = recipe.generation
    if gen.backend == "hf":
        return HFGenerator(pm.model, pm.chat.eos_id, pm.chat.pad_id, batch_size=gen.batch_size,
                           tokenizer=pm.chat.tokenizer)
    from . import vllm_backend

    if gen.backend == "vllm":
        return vllm_backend.VLLMColocated(recipe.model.path, lora=pm.lora, **gen.vllm)
    if gen.backend == "vllm-server":
        return vllm_backend.VLLMServer(**gen.vllm)
    raise ValueError(f"unknown generation backend {gen.backend!r} (hf, vllm, vllm-server)")


class Trainer:
    """Builds everything a recipe describes; ``fit()`` runs (or resumes) it."""

    def __init__(self, recipe: Recipe, *, resume: bool = True, credit_fn: CreditFn | None = None):
        self.recipe, self.credit_fn = recipe, credit_fn or assign_credit
        torch.set_num_threads(recipe.train.threads or auto_threads())  # process-wide: torch has one pool
        self.out = Path(recipe.train.out_dir)
        self.env_spec = registry.spec(recipe.env.id)  # unregistered id: UnknownEnvError, with close matches
        self.pipeline = build_pipeline(recipe.credit)  # a bad credit config fails before any loading
        self.env_kwargs = dict(recipe.env.kwargs)
        if recipe.env.max_turns is not None:
            self.env_kwargs["max_turns"] = recipe.env.max_turns
        try:  # built and reset to a first task: a bad env.kwargs is a recipe error, as one line
            probe = check_env_config(self.env_spec, self.env_kwargs, seed=recipe.rollout.seed_start)
        except ConfigError as e:
            raise RecipeError(f"env.kwargs: {e}") from e
        self.system_prompt = probe.system_prompt
        try:
            if recipe.rollout.mode == "state_group":
                check_verifier(probe, recipe.env.id)
        except ConfigError as e:
            raise RecipeError(f"rollout.mode: state_group: {e}") from e
        finally:
            probe.close()
        m = recipe.model
        if m.make_tiny and not Path(m.path).exists():  # its tokenizer learns this env's text too
            make_tiny_model(m.path, seed=recipe.seed, env_ids=(recipe.env.id,))
        # Seeded after any tiny-model build, which draws random numbers: a run repeats exactly
        # whether or not it had to build its model first.
        _seed_everything(recipe.seed, deterministic=recipe.rollout.deterministic)
        if not resume:  # a restart must not mix with an earlier run's checkpoints or metrics
            shutil.rmtree(self.out / "checkpoints", ignore_errors=True)
            shutil.rmtree(self.out / "samples", ignore_errors=True)
            (self.out / "metrics.jsonl").unlink(missing_ok=True)
        ckpt = self.latest_checkpoint()
        corpus = tiny_corpus_envs(m.path)
        if corpus is not None and recipe.env.id not in corpus:
            warnings.warn(f"the tiny model at {m.path} has a tokenizer trained without {recipe.env.id}'s text "
                          f"(only {', '.join(corpus)}), so its observations cost more tokens and a tiny model reads "
                          "them worse; point model.path at a new directory (with model.make_tiny: true) to build "
                          "one for this env", stacklevel=2)
        resumed = None if ckpt is None else ckpt / "model"
        self.pm = load_policy(
            m.path, device=m.device, dtype=m.dtype, lora=m.lora,
            adapter_path=resumed if m.lora else None, weights_path=None if m.lora else resumed,
            gradient_checkpointing=m.gradient_checkpointing, reference=recipe.loss.kl != "none",
            chat_template=m.chat_template,
        )
        self.backend = make_backend(recipe, self.pm)
        if ckpt is not None:  # an external engine starts from the base weights
            self.backend.sync_weights(self.pm.model)
        self.policy = TransformersPolicy(self.backend, self.pm.chat, recipe.generation.sampling)
        self.scorer = (TransformersGoldScorer(self.pm, system_prompt=self.system_prompt, **recipe.info_gain)
                       if self.pipeline.needs_model else None)
        o = recipe.optim
        self.params = [p for p in self.pm.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        self.shuffle = torch.Generator().manual_seed(recipe.seed)
        self.iteration = 0
        self.task_cursor = 0
        self.logger = MetricsLogger(self.out, tensorboard=recipe.train.tensorboard)
        self.samples = TrajectoryStore(self.out / "samples")
        self.progress = Progress(recipe.train.iterations)
        self._ray_envs: Any = None  # agentgym.ray_rollout.RayEnvPool, started at the first rollout
        if ckpt is not None:
            self._load_state(ckpt)

    # -- data ---------------------------------------------------------------------------
    def _lr_factor(self, step: int) -> float:
        o, total = self.recipe.optim, max(self.recipe.train.iterations * self._steps_per_iter(), 1)
        warm = min(1.0, (step + 1) / o.warmup_steps) if o.warmup_steps else 1.0
        if o.schedule == "cosine":
            return warm * 0.5 * (1 + math.cos(math.pi * min(step / total, 1.0)))
        return warm

    def _steps_per_iter(self) -> int:
        r, o = self.recipe.rollout, self.recipe.optim
        n = r.tasks_per_iter * r.group_size
        return o.epochs * math.ceil(n / (o.mini_batch_size or n))

    def task_seeds(self, start: int, count: int) -> list[int]:
        r = self.recipe.rollout
        return [r.seed_start + ((start + i) % r.task_pool if r.task_pool else start + i) for i in range(count)]

    def collect(self, seeds: list[int], group_size: int, tag: str, policy: Policy | None = None,
                phase: str | None = None, state_groups: int | None = None) -> list[Trajectory]:
        """Roll out ``group_size`` episodes per seed with the core engine (groups share a seed),
        reported to :attr:`progress` as ``phase`` (when given) episode by episode.

        ``state_groups=K``: one episode per seed in VPR's state groups (K candidates per state,
        one record each; :mod:`agentgym.state_group`). With ``rollout.ray`` the envs step in Ray
        actors; the engine and the policy stay here."""
        items = plan(tag, seeds=seeds, group_size=1 if state_groups else group_size)
        r = self.recipe.rollout
        if r.ray and self._ray_envs is None:
            from agentgym.ray_rollout import RayEnvPool

            self._ray_envs = RayEnvPool(self.env_spec, workers=r.ray_workers, address=r.ray_address)
        with self._phase(phase, len(items), "episodes") as advance, self.pm.autocast():
            # generation runs on this thread, inside the event loop
            trajs = asyncio.run(rollout(
                self.env_spec, policy or self.policy, items, concurrency=r.concurrency,
                env_kwargs=self.env_kwargs, max_tokens=r.max_tokens, step_timeout=r.step_timeout,
                threads=not r.deterministic, make_env=self._ray_envs and self._ray_envs.make,
                on_done=lambda traj: advance(1), state_groups=state_groups, success_bonus=r.success_bonus,
            ))
        errors = [t for t in trajs if t.failure == "error"]
        if errors:  # a bug in the env's or the user's code (a verifier that raised): never train on it
            from agentgym.errors import EnvCodeError

            raise EnvCodeError(f"{len(errors)} episode(s) hit a bug in the env's code, first: {errors[0].failure_detail}")
        order = {item.traj_id: n for n, item in enumerate(items)}
        if state_groups:  # records are "<item id>-s<state>-c<candidate>"; a stable sort keeps the play order
            return sorted(trajs, key=lambda t: order[t.traj_id.rsplit("-s", 1)[0]])
        return sorted(trajs, key=lambda t: order[t.traj_id])  # completion order is not deterministic

    def to_batch(self, trajs: list[Trajectory], credit: TurnCredit) -> Batch:
        """Token batch of the trajectories that have turns (an infra failure at reset has none)."""
        keep = [i for i, t in enumerate(trajs) if t.turns]
        limit = self.recipe.train.max_seq_len
        seqs, masks = [], []
        for i in keep:
            seq = to_sequence(annotate_tokens(trajs[i], self.pm.chat, self.system_prompt))
            mask = credit.loss_mask[i]
            if len(seq) > limit:  # cut to fit, and learn nothing from a cut sequence
                seq, mask = seq.truncated(limit), [0.0] * len(mask)
            seqs.append(seq)
            masks.append(mask)
        return make_batch(seqs, [credit.advantages[i] for i in keep], masks,
                          [credit.clip_scale[i] for i in keep], self.pm.chat.pad_id)

    @contextmanager
    def _phase(self, name: str | None, total: int, unit: str) -> Iterator[Callable[[int], None]]:
        """Report a phase to :attr:`progress` (``name`` None: nothing); yields its ``advance(n)``.
        An exception leaves the phase in flight, so that the caller can say where the run stopped."""
        if name is None:
            yield lambda n: None
            return
        self.progress.start(name, total, unit)
        yield self.progress.advance
        self.progress.end()

    # -- the update ---------------------------------------------------------------------
    @torch.no_grad()
    def _logprobs(self, model: Any, batch: Batch, advance: Callable[[int], None] = lambda n: None) -> torch.Tensor:
        """Log-probs on the loss tokens only (the only ones any loss term or metric reads)."""
        out = torch.zeros_like(batch.rollout_logp)
        temperature, o = self.recipe.generation.sampling.temperature, self.recipe.optim
        for rows, mb in batch.micro_batches(o.micro_batch_size, o.micro_batch_tokens, o.packing):
            out[rows, : mb.input_ids.shape[1]] = sequence_logprobs(
                model, mb.input_ids, mb.attention_mask, temperature, positions=mb.loss_mask > 0, packed=o.packing)[0]
            advance(len(rows))
        return out

    def on_policy(self, batch_size: int) -> bool:
        """One epoch of one mini-batch: θ_old is the current θ, so no separate old forward."""
        o = self.recipe.optim
        return o.epochs == 1 and (o.mini_batch_size is None or o.mini_batch_size >= batch_size)

    def update(self, batch: Batch) -> dict[str, float]:
        """PPO epochs over mini-batches; each mini-batch is one optimiser step accumulated over
        micro-batches (loss normalisers span the mini-batch, so accumulation is exact).

        On-policy (see :meth:`on_policy`) the old log-probs are the update forward's own,
        detached: the ratio is exactly 1 with the same gradient, and a whole no-grad forward
        over the batch is saved. Its progress counts sequences through every forward pass."""
        batch = batch.to(self.pm.device)
        on_policy = self.on_policy(len(batch))
        passes = self.recipe.optim.epochs + (not on_policy) + (self.recipe.loss.kl != "none")
        with self._phase("update", passes * len(batch), "sequences") as advance:
            return self._update(batch, on_policy, advance)

    def _update(self, batch: Batch, on_policy: bool, advance: Callable[[int], None]) -> dict[str, float]:
        cfg, o, model = self.recipe.loss, self.recipe.optim, self.pm.model
        if not on_policy:
            batch.old_logp = self._logprobs(model, batch, advance)  # θ_old: the weights that sampled
        is_log_ratios: list[torch.Tensor] = []  # θ_old vs the rollout engine, on sampled tokens
        if cfg.kl != "none":
            with self.pm.reference() as ref:
                batch.ref_logp = self._logprobs(ref, batch, advance)
        stats: dict[str, list[float]] = defaultdict(list)
        mini = o.mini_batch_size or len(batch)
        for _ in range(o.epochs):
            order = torch.randperm(len(batch), generator=self.shuffle).to(self.pm.device)
            for start in range(0, len(batch), mini):
                mb = batch.select(order[start : start + mini])
                denom, n_tokens = loss_denominator(mb.loss_mask, cfg), max(float(mb.loss_mask.sum()), 1.0)
                step: dict[str, float] = defaultdict(float)  # this optimiser step's mini-batch totals
                self.optimizer.zero_grad(set_to_none=True)
                for _, micro in mb.micro_batches(o.micro_batch_size, o.micro_batch_tokens, o.packing):
                    m = micro.loss_mask
                    logp, ent = sequence_logprobs(model, micro.input_ids, micro.attention_mask,
                                                  self.recipe.generation.sampling.temperature, entropy=True,
                                                  positions=m > 0, packed=o.packing)
                    old_logp = logp.detach() if on_policy else micro.old_logp
                    if on_policy:
                        is_log_ratios.append((old_logp - micro.rollout_logp)[m > 0])
                    pg, clipped = policy_loss(logp, old_logp, micro.advantages, micro.turn_ids,
                                              micro.clip_scale, cfg)
                    per_token = pg - cfg.entropy_coef * ent
                    if cfg.kl != "none":
                        kl = kl_penalty(logp, micro.ref_logp, cfg.kl)
                        per_token = per_token + cfg.kl_coef * kl
                        step["loss/kl"] += aggregate(kl.detach(), m, denom).item()
                    aggregate(per_token, m, denom).backward()
                    step["loss/policy"] += aggregate(pg.detach(), m, denom).item()
                    step["collapse/entropy"] += aggregate(ent.detach(), m, n_tokens).item()
                    step["collapse/clip_fraction"] += aggregate(clipped, m, n_tokens).item()
                    advance(len(micro))
                step["collapse/grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.params, o.max_grad_norm))
                self.optimizer.step()
                self.scheduler.step()
                for key, value in step.items():
                    stats[key].append(value)
        sampled = batch.loss_mask > 0
        is_log_ratio = (torch.cat([*is_log_ratios, batch.rollout_logp.new_zeros(0)]) if on_policy
                        else (batch.old_logp - batch.rollout_logp)[sampled])  # trainer vs rollout engine
        out = {k: float(np.mean(v)) for k, v in stats.items()}
        out.update({
            "is/mean_abs_log_ratio": float(is_log_ratio.abs().mean()) if is_log_ratio.numel() else 0.0,
            "is/max_ratio": float(is_log_ratio.exp().max()) if is_log_ratio.numel() else 1.0,
            "optim/lr": self.scheduler.get_last_lr()[0],
            "batch/loss_tokens": float(sampled.sum()),
        })
        return out

    # -- warm start and evaluation --------------------------------------------------------
    def sft(self) -> dict[str, float]:
        """Imitate the ε-greedy scripted expert (its text is tokenised: it is not policy output).

        The ε-random turns stay in the demonstrations (they reach states the expert alone never
        shows, and the expert's recovery from them is imitated) but with ``sft.imitate_exploration``
        off they are not imitated: otherwise a fraction ε of the labels is noise, and a small model
        learns the expert's state-dependent choice far more slowly (see the gridworld benchmark).
        """
        s = self.recipe.sft
        expert = _ExplorationRecorder(epsilon=s.epsilon, seed=self.recipe.seed)
        demos = self.collect(self.task_seeds(0, s.episodes), 1, "sft", policy=expert, phase="SFT demos")
        chat = self.pm.chat
        masks = []
        for traj in demos:
            history: list[tuple[str, str]] = []
            mask = []
            for turn in traj.turns:
                history.append((turn.role, turn.observation))
                explored = (tuple(history), turn.action) in expert.exploration
                mask.append(1.0 if s.imitate_exploration or not explored else 0.0)
                history.append(("assistant", turn.action))
            masks.append(mask)
        retokenize(demos, chat)
        seqs = [to_sequence(annotate_tokens(t, chat, self.system_prompt)) for t in demos]
        ones = [[1.0] * t.num_turns for t in demos]
        batch = make_batch(seqs, ones, masks, ones, chat.pad_id).to(self.pm.device)
        opt = torch.optim.AdamW(self.params, lr=s.lr)
        losses = []
        with self._phase("SFT warm start", s.steps, "steps") as advance:
            for _ in range(s.steps):
                mb = batch.select(torch.randperm(len(batch), generator=self.shuffle)[: s.batch_size].to(self.pm.device))
                with self.pm.autocast():
                    logp, _ = sequence_logprobs(self.pm.model, mb.input_ids, mb.attention_mask)
                loss = aggregate(-logp, mb.loss_mask, max(float(mb.loss_mask.sum()), 1.0))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(loss.item())
                advance(1)
        return {"sft/loss_first": losses[0] if losses else 0.0, "sft/loss_last": losses[-1] if losses else 0.0,
                "sft/demo_success_rate": sum(t.success for t in demos) / max(len(demos), 1),
                "sft/imitated_turn_share": sum(map(sum, masks)) / max(sum(map(len, masks)), 1)}

    def evaluate(self) -> float:
        """Success rate over the task pool, sampled as in training, from a fixed RNG stream."""
        e, r = self.recipe.eval, self.recipe.rollout
        state = torch.get_rng_state()
        torch.manual_seed(self.recipe.seed + 10_000)
        try:
            trajs = self.collect(self.task_seeds(0, r.task_pool or r.tasks_per_iter), e.episodes_per_task, "eval",
                                 phase="eval")
        finally:
            torch.set_rng_state(state)
        return sum(t.success for t in trajs) / max(len(trajs), 1)

    def collect_batch(self) -> tuple[list[Trajectory], dict[str, float]]:
        """This iteration's groups, and the dynamic-sampling metrics when it is on.

        Dynamic sampling (DAPO; verl-agent's dynamic GiGPO): a group whose rollouts all got the
        same outcome has zero group-relative advantage and only dilutes the batch, so such groups
        are dropped and further rounds of ``tasks_per_iter`` new tasks are rolled out until
        ``tasks_per_iter`` informative groups are kept or ``max_sampling_rounds`` rounds ran.
        Infra-failed rollouts do not count as an outcome. When no group is informative the
        last round is trained on as it is (its advantages are zero; nothing is gained by more).
        """
        r = self.recipe.rollout
        kept: list[list[Trajectory]] = []
        rounds = dropped = 0
        while True:
            tag = f"it{self.iteration:05d}" + (f"-r{rounds}" if rounds else "")
            groups = {"state_groups": r.group_size} if r.mode == "state_group" else {}
            trajs = self.collect(self.task_seeds(self.task_cursor, r.tasks_per_iter), r.group_size, tag,
                                 phase="rollout", **groups)
            self.task_cursor += r.tasks_per_iter
            rounds += 1
            if r.mode == "state_group":
                return trajs, episode_metrics(trajs)
            if not r.dynamic_sampling:
                return trajs, {}
            for group in _groups(trajs):
                outcomes = {t.outcome for t in group if t.failure != "infra"}
                if len(outcomes) > 1 and len(kept) < r.tasks_per_iter:
                    kept.append(group)
                else:
                    dropped += 1
            if len(kept) >= r.tasks_per_iter or rounds >= r.max_sampling_rounds:
                break
        batch = [t for group in kept for t in group] or trajs
        return batch, {"sampling/rounds": float(rounds), "sampling/kept_groups": float(len(kept)),
                       "sampling/dropped_groups": float(dropped),
                       "sampling/extra_rollouts": float((rounds - 1) * r.tasks_per_iter * r.group_size)}

    # -- the loop -----------------------------------------------------------------------
    def step(self) -> dict[str, Any]:
        """One RL iteration; returns its metrics."""
        t0 = time.perf_counter()
        trajs, sampling = self.collect_batch()
        tokens = retokenize(trajs, self.pm.chat)  # before credit: the info-gain scorer reads token ids too
        self._save_samples(trajs)
        t1 = time.perf_counter()
        with self._phase("credit", 1, "batches") as advance, self.pm.autocast():
            credit = self.credit_fn(trajs, self.pipeline, self.scorer)
            advance(1)
        if not any(a for row in credit.advantages for a in row):
            warnings.warn(NO_SIGNAL, RuntimeWarning, stacklevel=2)
        self.backend.sleep()
        with self.pm.autocast():
            stats = self.update(self.to_batch(trajs, credit))
        self.backend.wake()
        self.backend.sync_weights(self.pm.model)
        t2 = time.perf_counter()
        self.iteration += 1
        return {**rollout_metrics(trajs), **tokens, **sampling, **credit.metrics, **stats,
                "time/rollout_s": t1 - t0, "time/update_s": t2 - t1}

    def _save_samples(self, trajs: list[Trajectory]) -> None:
        """Keep a few trajectories per iteration, spread over its groups, to read or replay later."""
        k = self.recipe.train.samples_per_iter
        if k > 0 and trajs:
            self.samples.extend(trajs[:: max(1, len(trajs) // k)][:k])
            self.samples.close()

    def fit(
        self, on_iteration: Callable[[int, dict[str, Any]], None] | None = None, *, until: int | None = None,
        progress: Progress | None = None,
    ) -> list[dict[str, Any]]:
        """Run (or resume) to ``train.iterations`` (or stop at ``until``); returns every logged row.

        A fresh run first does the SFT warm start and the initial eval, then checkpoints
        iteration 0, so a resumed run never repeats or skips the warm start. ``progress`` hears
        every phase unit by unit, and each finished iteration (progress displays).
        """
        if progress is not None:
            self.progress = progress
        rec = self.recipe
        end = rec.train.iterations if until is None else min(until, rec.train.iterations)
        if self.latest_checkpoint() is None:
            start: dict[str, Any] = {}
            if rec.sft.steps:
                start.update(self.sft())
                self.backend.sync_weights(self.pm.model)
            if rec.eval.episodes_per_task:
                start["eval/success_rate"] = self.evaluate()
            self.logger.log(0, start)
            self.progress.iteration_done(0)
            if on_iteration is not None:
                on_iteration(0, start)
            self.save_checkpoint()
        while self.iteration < end:
            metrics = self.step()
            e = rec.eval
            last = self.iteration == rec.train.iterations
            if e.episodes_per_task and (last or (e.every and self.iteration % e.every == 0)):
                metrics["eval/success_rate"] = self.evaluate()
            self.logger.log(self.iteration, metrics)
            self.progress.iteration_done(self.iteration)
            if on_iteration is not None:
                on_iteration(self.iteration, metrics)
            if self.iteration % rec.train.checkpoint_every == 0 or last:
                self.save_checkpoint()
        rows = self.logger.read()
        if rec.train.plot:
            plot_learning_curve(rows, self.out / "learning_curve.png", rec.name)
        return rows

    def close(self) -> None:
        """Stop the Ray env actors, if any (the next rollout starts new ones)."""
        if self._ray_envs is not None:
            self._ray_envs.close()
            self._ray_envs = None

    # -- checkpoints ----------------------------------------------------------------------
    def latest_checkpoint(self) -> Path | None:
        done = sorted((self.out / "checkpoints").glob("iter_*/trainer_state.json"))
        return done[-1].parent if done else None

    def save_checkpoint(self) -> Path:
        """Written to a temp dir then renamed, so a kill mid-save leaves the previous one intact."""
        root = self.out / "checkpoints"
        final = root / f"iter_{self.iteration:06d}"
        tmp = root / f".tmp_{self.iteration:06d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.pm.save(tmp / "model")
        torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                    "rng": _rng_state(), "shuffle": self.shuffle.get_state()}, tmp / "state.pt")
        (tmp / "trainer_state.json").write_text(json.dumps(
            {"iteration": self.iteration, "task_cursor": self.task_cursor, "recipe": self.recipe.to_dict()}))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        for old in sorted(root.glob("iter_*"))[: -self.recipe.train.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def _load_state(self, ckpt: Path) -> None:
        meta = json.loads((ckpt / "trainer_state.json").read_text())
        state = torch.load(ckpt / "state.pt", weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.shuffle.set_state(state["shuffle"])
        _set_rng_state(state["rng"])
        self.iteration, self.task_cursor = meta["iteration"], meta["task_cursor"]
        rows = [r for r in self.logger.read() if r["iteration"] <= self.iteration]  # drop rows past the checkpoint
        self.logger.path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        self.samples.remove(lambda d: int(d["traj_id"][2:7]) >= self.iteration)  # "itNNNNN-...": past it too


NO_SIGNAL = (
    "every advantage in this iteration's batch is 0 (no group's rewards differ), so its update has no "
    "policy-gradient term (only the KL and entropy terms move the weights). If every rollout fails the "
    "same way, for example the policy stopped ending its turns (see collapse/truncated_turns), training "
    "cannot leave that state by itself (not even with an invalid-turn penalty: every rollout then pays "
    "the same). Make it rarer from the start: give invalid turns a cost (credit.invalid_turn_penalty), "
    "anchor the policy (loss.kl) or lower optim.lr")


class _ExplorationRecorder(ScriptedPolicy):
    """The ε-greedy expert, remembering which of its turns were exploration (not the expert's move):
    keyed by the history the turn answered (roles and texts, system prompt left out) and the action."""

    def __init__(self, epsilon: float, seed: int):
        super().__init__(epsilon=epsilon, seed=seed)
        self.exploration: set[tuple[tuple[tuple[str, str], ...], str]] = set()

    def act_sync(self, messages: list[Message], env: Any) -> Completion:
        completion = super().act_sync(messages, env)
        if self.explored:
            history = tuple((m["role"], m["content"]) for m in messages if m["role"] != "system")
            self.exploration.add((history, completion.text))
        return completion


def _groups(trajs: list[Trajectory]) -> list[list[Trajectory]]:
    """Trajectories grouped by ``group_id``, in first-seen order."""
    groups: dict[str, list[Trajectory]] = {}
    for traj in trajs:
        groups.setdefault(traj.group_id, []).append(traj)
    return list(groups.values())


def _seed_everything(seed: int, *, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:  # kernels that have a deterministic variant use it (warn_only: the rest still run)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
