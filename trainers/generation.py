"""Generation backends (token ids in, token ids + log-probs out) and the policy that drives them.

Every backend implements :class:`GenerationBackend`; the trainer calls ``sync_weights`` after
each optimiser step and ``sleep``/``wake`` around the update so a colocated engine can free its
memory. :class:`HFGenerator` (transformers ``generate``) shares the training module, so syncing
is free; the vLLM backends live in :mod:`agentgym.trainers.vllm_backend`.

:class:`TransformersPolicy` is an :class:`agentgym.policies.base.Policy`, so the core rollout
engine drives it. It keeps each episode's token context (keyed by its env), appends observation
deltas as tokens, and batches concurrent ``act`` calls into one ``generate``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import torch

from agentgym.policies.base import Completion, Message, Policy

from .chat import ChatTokenizer

if TYPE_CHECKING:
    from agentgym.core import TextEnv

__all__ = ["GenerationBackend", "HFGenerator", "Sample", "SamplingParams", "TransformersPolicy"]


@dataclass
class SamplingParams:
    """Sampling settings shared by every backend. ``temperature=0`` is greedy."""

    max_new_tokens: int = 64
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0


@dataclass
class Sample:
    """One completion: sampled ids (ending with EOS unless cut off) and their log-probs."""

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str  # "stop" | "length"


class GenerationBackend(Protocol):
    """What the trainer needs from an inference engine."""

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Sample]: ...

    def sync_weights(self, model: Any) -> None: ...

    def sleep(self) -> None: ...

    def wake(self) -> None: ...


class HFGenerator:
    """transformers ``generate`` on the training module itself (CPU or GPU).

    Log-probs are those of the temperature-scaled distribution before top-p/top-k truncation
    (what vLLM reports too); the trainer recomputes its own and only compares with these.
    """

    def __init__(self, model: Any, eos_id: int, pad_id: int, batch_size: int = 64):
        self.model, self.eos_id, self.pad_id, self.batch_size = model, eos_id, pad_id, batch_size

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
        was_training = self.model.training
        self.model.eval()
        try:
            result = self.model.generate(
                input_ids=ids.to(device), attention_mask=mask.to(device),
                do_sample=not greedy, temperature=None if greedy else params.temperature,
                top_p=None if greedy else params.top_p, top_k=None if greedy else params.top_k,
                max_new_tokens=params.max_new_tokens, eos_token_id=self.eos_id, pad_token_id=self.pad_id,
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
            tokens = new[row].tolist()
            end = tokens.index(self.eos_id) + 1 if self.eos_id in tokens else len(tokens)
            samples.append(Sample(tokens[:end], token_logps[row, :end].tolist(),
                                  "stop" if end <= len(tokens) and tokens[end - 1] == self.eos_id else "length"))
        return samples

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
    policy's own text is never re-tokenised. Concurrent episodes' calls are gathered into one
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
        self._pending: list[tuple[list[int], asyncio.Future[Sample]]] = []
        self._flusher: asyncio.Task[None] | None = None

    def prompt_ids(self, messages: list[Message], env: TextEnv) -> list[int]:
        """The full context for the next completion, extending the episode's tokens if any."""
        if not any(m["role"] == "assistant" for m in messages):
            return self.chat.prompt_ids(messages)
        n, text, ids = self._contexts.get(id(env), (-1, "", []))
        if len(messages) != n + 2 or messages[-2]["role"] != "assistant" or messages[-2]["content"] != text:
            raise ValueError("messages do not continue this policy's last completion for this env; "
                             "token-in/token-out needs the conversation the policy produced")
        return ids + self.chat.delta_ids(messages[-1], ids)

    async def act(self, messages: list[Message], env: TextEnv) -> Completion:
        prompt = self.prompt_ids(messages, env)
        future: asyncio.Future[Sample] = asyncio.get_running_loop().create_future()
        self._pending.append((prompt, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        sample = await future
        text = self.chat.tokenizer.decode(sample.token_ids, skip_special_tokens=True)
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
        try:
            samples = self.backend.generate([prompt for prompt, _ in batch], self.params)
            for (_, future), sample in zip(batch, samples, strict=True):
                future.set_result(sample)
        except Exception as e:  # noqa: BLE001 — hand the error to every waiting episode
            for _, future in batch:
                future.set_exception(e)
        finally:
            self._flusher = asyncio.create_task(self._flush()) if self._pending else None
