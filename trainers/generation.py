"""Generation backends (token ids in, token ids + log-probs out) and the policy that drives them.

Every backend implements :class:`GenerationBackend`; the trainer calls ``sync_weights`` after
each optimiser step and ``sleep``/``wake`` around the update so a colocated engine can free its
memory. :class:`HFGenerator` (transformers ``generate``) shares the training module, so syncing
is free; the vLLM backends live in :mod:`agentgym.trainers.vllm_backend`.

:class:`TransformersPolicy` is an :class:`agentgym.policies.base.Policy`, so the core rollout
engine drives it. It keeps each episode's token context (keyed by its env), appends observation
deltas as tokens, and batches concurrent ``act`` calls into one ``generate``. It passes each
env's ``stop_sequences`` to the backend (``SamplingParams.stop``), so sampled ids end at the
token that completes a stop string, which may run a few characters past it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from transformers import StoppingCriteria, StoppingCriteriaList

from agentgym.policies.base import Completion, ContextLengthExceeded, Message, Policy

from .chat import ChatTokenizer

if TYPE_CHECKING:
    from agentgym.core import TextEnv

__all__ = ["CONTEXT_LENGTH", "GenerationBackend", "HFGenerator", "Sample", "SamplingParams", "StopOnStrings",
           "TransformersPolicy", "load_local_policy"]


@dataclass
class SamplingParams:
    """Sampling settings shared by every backend. ``temperature=0`` is greedy. Generation stops
    right after the token that completes any ``stop`` string (the string stays in the sample)."""

    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    stop: tuple[str, ...] = ()


CONTEXT_LENGTH = "context_length"  # a Sample's finish_reason: the prompt left no room to generate


@dataclass
class Sample:
    """One completion: sampled ids (ending with EOS unless cut off) and their log-probs.
    ``finish_reason`` :data:`CONTEXT_LENGTH` (no tokens): the prompt already fills the model's
    context; :class:`TransformersPolicy` raises ``ContextLengthExceeded`` for that episode only."""

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str  # "stop" | "length" | CONTEXT_LENGTH


class GenerationBackend(Protocol):
    """What the trainer needs from an inference engine."""

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Sample]: ...

    def sync_weights(self, model: Any) -> None: ...

    def sleep(self) -> None: ...

    def wake(self) -> None: ...


class StopOnStrings(StoppingCriteria):
    """Stops each row of ``generate`` once its new tokens contain a stop string, and records
    where: ``ends[row]`` is the number of new tokens to keep, the last one completing the string.

    Only the last tokens are decoded at each step: a string of n bytes lies within the last n
    tokens, since every token decodes to at least one byte (special tokens are decoded too), and
    one token more is decoded because SentencePiece decoders (Llama-2, Mistral) strip the
    leading space of what they decode, which would hide a stop string's own leading space.
    """

    def __init__(self, stop: tuple[str, ...], decode: Callable[[list[int]], str], prompt_width: int, rows: int):
        self.stop, self.decode, self.width = stop, decode, prompt_width
        self.window = max(len(s.encode()) for s in stop) + 1
        self.ends: list[int | None] = [None] * rows

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
        new = input_ids.shape[1] - self.width
        tail = input_ids[:, max(self.width, input_ids.shape[1] - self.window):].tolist()
        for row, ids in enumerate(tail):
            if self.ends[row] is None and any(s in self.decode(ids) for s in self.stop):
                self.ends[row] = new
        return torch.tensor([end is not None for end in self.ends], device=input_ids.device)


class HFGenerator:
    """transformers ``generate`` on the training module itself (CPU or GPU).

    Log-probs are those of the temperature-scaled distribution before top-p/top-k truncation
    (what vLLM reports too); the trainer recomputes its own and only compares with these.
    Stop strings (:class:`StopOnStrings`) need the ``tokenizer``.
    """

    def __init__(self, model: Any, eos_id: int, pad_id: int, batch_size: int = 64, *, tokenizer: Any = None):
        self.model, self.eos_id, self.pad_id, self.batch_size = model, eos_id, pad_id, batch_size
        self.tokenizer = tokenizer

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Sample]:
        out: list[Sample] = []
        for i in range(0, len(prompts), self.batch_size):
            out += self._generate(prompts[i : i + self.batch_size], params)
        return out

    @torch.no_grad()
    def _generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Sample]:
        device = next(self.model.parameters()).device
        width = max(map(len, prompts))
        ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, prompt in enumerate(prompts):  # left padding: every prompt ends at the same column
            ids[row, width - len(prompt):] = torch.tensor(prompt)
            mask[row, width - len(prompt):] = 1
        greedy = params.temperature <= 0
        stopper = None
        if params.stop:
            if self.tokenizer is None:
                raise ValueError("stop strings need HFGenerator(..., tokenizer=...)")
            stopper = StopOnStrings(params.stop, self._decode, width, len(prompts))
        was_training = self.model.training
        self.model.eval()
        try:
            result = self.model.generate(
                input_ids=ids.to(device), attention_mask=mask.to(device),
                do_sample=not greedy, temperature=None if greedy else params.temperature,
                top_p=None if greedy else params.top_p, top_k=None if greedy else params.top_k,
                max_new_tokens=params.max_new_tokens, eos_token_id=self.eos_id, pad_token_id=self.pad_id,
                stopping_criteria=StoppingCriteriaList([stopper] if stopper else []),
                return_dict_in_generate=True, output_logits=True, use_cache=True,
            )
        finally:
            self.model.train(was_training)
        new = result.sequences[:, width:].cpu()
        logits = torch.stack(result.logits, dim=1).float().cpu()
        logps = torch.log_softmax(logits / (1.0 if greedy else params.temperature), dim=-1)
        token_logps = logps.gather(-1, new.unsqueeze(-1)).squeeze(-1)
        samples = []
        for row in range(len(prompts)):
            tokens = new[row].tolist()  # rows that stopped early are padded after their end
            ends = [tokens.index(self.eos_id) + 1] if self.eos_id in tokens else []
            if stopper and stopper.ends[row] is not None:
                ends.append(stopper.ends[row])
            end = min(ends, default=len(tokens))
            samples.append(Sample(tokens[:end], token_logps[row, :end].tolist(), "stop" if ends else "length"))
        return samples

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def sync_weights(self, model: Any) -> None:
        """Nothing to do: generation runs on the training module."""

    def sleep(self) -> None:
        """Nothing to free: the weights are the training weights."""

    def wake(self) -> None:
        """See :meth:`sleep`."""


class TransformersPolicy(Policy):
    """A token-recording policy over any :class:`GenerationBackend` (token-in/token-out).

    The first call of an episode renders the chat template; later calls append the new
    observation as a template delta to the tokens already there (prompt + sampled ids), so the
    policy's own text is never re-tokenised, whatever the template would re-render differently
    (see :mod:`agentgym.trainers.chat`). Concurrent episodes' calls are gathered into one
    batch: the batch closes once the event loop has gone a few rounds with no new request. The
    core engine builds envs in threads, so which requests share a batch (and so the sampled
    tokens) can depend on timing; runs are bitwise reproducible with one episode in flight.
    """

    def __init__(
        self,
        backend: GenerationBackend,
        chat: ChatTokenizer,
        params: SamplingParams | None = None,
        *,
        max_batch: int = 256,
        name: str = "transformers",
    ):
        self.backend, self.chat = backend, chat
        self.params = params or SamplingParams()
        self.max_batch, self.name = max_batch, name
        self._contexts: dict[int, tuple[int, str, list[int]]] = {}  # id(env) → (n_messages, text, ids)
        self._pending: list[tuple[list[int], tuple[str, ...], asyncio.Future[Sample]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def prompt_ids(self, messages: list[Message], env: TextEnv) -> list[int]:
        """The full context for the next completion, extending the episode's tokens if any."""
        if not any(m["role"] == "assistant" for m in messages):
            return self.chat.prompt_ids(messages)
        n, text, ids = self._contexts.get(id(env), (-1, "", []))
        if len(messages) != n + 2 or messages[-2]["role"] != "assistant" or messages[-2]["content"] != text:
            raise ValueError("messages do not continue this policy's last completion for this env; "
                             "token-in/token-out needs the conversation the policy produced")
        return ids + self.chat.delta_ids(messages[:-1], messages[-1], ids)

    async def act(self, messages: list[Message], env: TextEnv) -> Completion:
        prompt = self.prompt_ids(messages, env)
        stop = tuple(dict.fromkeys((*self.params.stop, *env.stop_sequences)))
        future: asyncio.Future[Sample] = asyncio.get_running_loop().create_future()
        self._pending.append((prompt, stop, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        sample = await future
        if sample.finish_reason == CONTEXT_LENGTH:
            raise ContextLengthExceeded(f"a prompt of {len(prompt)} tokens leaves no room in the model's context")
        text = self.chat.decode(sample.token_ids)
        self._contexts[id(env)] = (len(messages), text, prompt + sample.token_ids)
        return Completion(text=text, token_ids=sample.token_ids, logprobs=sample.logprobs,
                          prompt_token_ids=prompt, finish_reason=sample.finish_reason,
                          num_tokens=len(sample.token_ids))

    async def _flush(self) -> None:
        quiet = 0
        while quiet < 3 and len(self._pending) < self.max_batch:
            before = len(self._pending)
            await asyncio.sleep(0)
            quiet = quiet + 1 if len(self._pending) == before else 0
        batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
        groups: dict[tuple[str, ...], list[tuple[list[int], asyncio.Future[Sample]]]] = {}
        for prompt, stop, future in batch:  # one generate per set of stop strings (one in practice)
            groups.setdefault(stop, []).append((prompt, future))
        try:
            for stop, items in groups.items():
                try:
                    samples = self.backend.generate([p for p, _ in items], dataclasses.replace(self.params, stop=stop))
                    for (_, future), sample in zip(items, samples, strict=True):
                        future.set_result(sample)
                except BaseException as e:  # hand the error to every waiting episode; an interrupt
                    for _, future in items:  # or a test timeout too, or the episodes would wait forever
                        if not future.done():
                            future.set_exception(e)
                    if not isinstance(e, Exception):
                        raise
        finally:
            self._flusher = asyncio.create_task(self._flush()) if self._pending else None


def load_local_policy(
    path: str | Path, *, device: str = "auto", batch_size: int = 64, **sampling: Any
) -> TransformersPolicy:
    """A :class:`TransformersPolicy` over a local model or a trainer checkpoint, generating with
    :class:`HFGenerator` as the trainer does (``agentgym rollout --policy transformers``).

    ``path``: a model directory, a checkpoint's ``model`` directory, or the checkpoint directory
    itself (``runs/x/checkpoints/iter_000030``). A LoRA checkpoint is loaded onto its recipe's base
    model. ``sampling``: :class:`SamplingParams` fields (``temperature``, ``max_new_tokens``, ...).
    """
    import json

    from .models import load_policy

    path = Path(path)
    if (path / "model").is_dir():
        path = path / "model"
    if not path.is_dir():
        raise ValueError(f"no model directory at {path}")
    fields = {f.name for f in dataclasses.fields(SamplingParams)}
    if set(sampling) - fields:
        raise ValueError(f"unknown option(s) {sorted(set(sampling) - fields)}; sampling options: {sorted(fields)}")
    if (path / "adapter_config.json").exists():  # LoRA: the base is the recipe's model
        state = path.parent / "trainer_state.json"
        if not state.exists():
            raise ValueError(f"{path} holds a LoRA adapter but no trainer_state.json names its base model")
        base = json.loads(state.read_text())["recipe"]["model"]["path"]
        pm = load_policy(base, device=device, adapter_path=path)
    else:
        pm = load_policy(path, device=device)
    pm.model.requires_grad_(False)
    backend = HFGenerator(pm.model, pm.chat.eos_id, pm.chat.pad_id, batch_size=batch_size, tokenizer=pm.tokenizer)
    return TransformersPolicy(backend, pm.chat, SamplingParams(**sampling), name=f"transformers:{path}")
