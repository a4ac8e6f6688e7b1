"""Token-in/token-out multi-turn sequences.

The chat template is rendered once for the first prompt; every later observation is appended
as a *token delta* (the template's text between the end of the sampled completion and the next
generation prompt, tokenised on its own). Sampled tokens are copied as they came out of the
policy and never re-tokenised. This only equals rendering the whole conversation when the
template is prefix-preserving (rendering k messages is a prefix of rendering k+1 and special
tokens separate the pieces), so :class:`ChatTokenizer` checks that at start-up and refuses a
template that is not (Qwen3's, which drops earlier thinking, for example).

A :class:`TokenSequence` has one entry per token: ``loss_mask`` is 1 on sampled tokens only,
``turn_ids`` gives the turn a sampled token belongs to (-1 on prompt and observation tokens),
so a turn's advantage lands on exactly its own tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentgym.errors import TemplateError
from agentgym.policies.base import Message
from agentgym.trajectory import Trajectory

__all__ = ["ChatTokenizer", "TemplateError", "TokenSequence", "annotate_tokens", "to_sequence"]

_PROBE: list[Message] = [
    {"role": "system", "content": "Probe system prompt."},
    {"role": "user", "content": "First observation.\nWith two lines."},
    {"role": "assistant", "content": "An action <answer>1</answer>"},
    {"role": "user", "content": " second observation "},
    {"role": "assistant", "content": "another action"},
    {"role": "tool", "content": "a tool result"},
]


class ChatTokenizer:
    """Renders the first prompt with the chat template and later observations as token deltas."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        if tokenizer.chat_template is None:
            raise TemplateError("the tokenizer has no chat template")
        self.eos_id: int = tokenizer.eos_token_id
        self.pad_id: int = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        self._eos_text = tokenizer.convert_ids_to_tokens(self.eos_id)
        self._check_prefix_preserving()

    def render(self, messages: list[Message], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def prompt_ids(self, messages: list[Message]) -> list[int]:
        """The whole template for the opening messages, ending with the generation prompt."""
        return self.encode(self.render(messages, generation_prompt=True))

    def delta_text(self, message: Message) -> str:
        """Template text after a completion's end-of-turn token, up to the next generation prompt."""
        base = _PROBE[:3]
        before = self.render(base, generation_prompt=False)
        after = self.render([*base, message], generation_prompt=True)
        if not after.startswith(before) or self._eos_text not in before:
            raise TemplateError(f"the chat template is not prefix-preserving: rendering one more "
                                f"{message['role']!r} message changes the earlier text")
        tail = before[before.rindex(self._eos_text) + len(self._eos_text):]
        return tail + after[len(before):]

    def delta_ids(self, message: Message, completion_ids: list[int]) -> list[int]:
        """Tokens appended after ``completion_ids`` for ``message`` (plus EOS if it was cut off)."""
        eos = [] if completion_ids and completion_ids[-1] == self.eos_id else [self.eos_id]
        return eos + self.encode(self.delta_text(message))

    def _check_prefix_preserving(self) -> None:
        """Incremental token ids must equal tokenising the fully rendered probe conversation."""
        ids = self.prompt_ids(_PROBE[:2])
        for k in range(2, len(_PROBE)):
            message = _PROBE[k]
            if message["role"] == "assistant":
                completion = self.encode(message["content"]) + [self.eos_id]
                ids += completion
            else:
                ids += self.delta_ids(_PROBE[k], completion)
        full = self.encode(self.render(_PROBE, generation_prompt=True))
        if ids != full:
            raise TemplateError(
                "the chat template is not prefix-preserving: extending the conversation by token "
                "deltas gives different tokens than rendering it whole. Multi-turn training needs a "
                "template whose rendering of k messages is a prefix of k+1 (e.g. Qwen2.5/ChatML); "
                "pass a compatible `chat_template`."
            )


@dataclass
class TokenSequence:
    """One trajectory as flat token lists (python lists; collated into tensors later)."""

    input_ids: list[int]
    loss_mask: list[int]
    turn_ids: list[int]
    rollout_logprobs: list[float]

    def __len__(self) -> int:
        return len(self.input_ids)

    def truncated(self, n: int) -> TokenSequence:
        return TokenSequence(self.input_ids[:n], self.loss_mask[:n], self.turn_ids[:n], self.rollout_logprobs[:n])


def opening_messages(traj: Trajectory, system_prompt: str | None) -> list[Message]:
    first = traj.turns[0]
    head = [{"role": "system", "content": system_prompt}] if system_prompt else []
    return [*head, {"role": first.role, "content": first.observation}]


def annotate_tokens(traj: Trajectory, chat: ChatTokenizer, system_prompt: str | None) -> Trajectory:
    """Fill each turn's ``obs_token_ids`` and ``obs_span``/``action_span`` (in place).

    Observation tokens come from the template (the env's text, never the policy's); action
    tokens must already be on the turns, as the policy sampled them.
    """
    pos = 0
    prev: list[int] = []
    for turn in traj.turns:
        if turn.action_token_ids is None:
            raise ValueError(f"{traj.traj_id} turn {turn.index} has no action tokens: the policy "
                             "must return token ids (use a token-returning policy)")
        if turn.index == 0:
            turn.obs_token_ids = chat.prompt_ids(opening_messages(traj, system_prompt))
        else:
            turn.obs_token_ids = chat.delta_ids({"role": turn.role, "content": turn.observation}, prev)
        turn.obs_span = (pos, pos + len(turn.obs_token_ids))
        pos = turn.obs_span[1]
        turn.action_span = (pos, pos + len(turn.action_token_ids))
        pos = turn.action_span[1]
        prev = turn.action_token_ids
    return traj


def to_sequence(traj: Trajectory) -> TokenSequence:
    """Concatenate an annotated trajectory's tokens; loss only on sampled tokens."""
    ids: list[int] = []
    loss: list[int] = []
    turns: list[int] = []
    logps: list[float] = []
    for t, turn in enumerate(traj.turns):
        obs, act = turn.obs_token_ids or [], turn.action_token_ids or []
        ids += obs + act
        loss += [0] * len(obs) + [1] * len(act)
        turns += [-1] * len(obs) + [t] * len(act)
        logps += [0.0] * len(obs) + list(turn.action_logprobs or [0.0] * len(act))
    return TokenSequence(ids, loss, turns, logps)
