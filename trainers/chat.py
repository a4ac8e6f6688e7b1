"""Token-in/token-out multi-turn sequences.

The chat template is rendered whole once, for the first prompt. After that the token stream the
policy actually produced is only ever extended: its sampled ids are kept as they came out of the
engine (never re-tokenised), and each new observation is appended as a *token delta*, the text the
template adds for it. The delta is found by rendering the real conversation with the new message
and the generation prompt, the last assistant message's content replaced by a marker: the delta
is the text after the end-of-turn token that follows the marker, tokenised on its own. Rollout
(:class:`agentgym.trainers.generation.TransformersPolicy`) and training (:func:`annotate_tokens`)
both build sequences this way, so what is trained is exactly what was sampled and seen.

Templates need not be append-only (rendering k+1 messages need not extend rendering k): what they
change in earlier turns when the conversation grows is not re-rendered into the stream. Per
template family (tests/trainers/test_templates.py writes each family's behaviour into a tiny
tokenizer and checks the ids exactly):

- Qwen2.5 (ChatML): append-only; the stream equals rendering the conversation whole.
- Qwen3 (ChatML with ``<think>``): re-rendering drops the reasoning of assistant turns before the
  last user message; the stream keeps every turn's reasoning as sampled (the policy saw it).
- Llama-3: re-rendering trims assistant text; the stream keeps the sampled ids untrimmed.
- Mistral (``[INST]``, no separator after ``</s>``): the template puts the system prompt in the
  last user message only; each user delta carries it (as rendering that turn's prompt does) and
  earlier turns keep the copy they were shown.

A template whose assistant turn is not closed by the EOS token cannot be continued after a sampled
completion and is refused (:class:`TemplateError`).

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

__all__ = ["ChatTokenizer", "TemplateError", "TokenSequence", "annotate_tokens", "retokenize", "to_sequence"]

_MARKER = "AGENTGYM_TURN_MARKER_7f3a"  # stands for the sampled completion when deltas are rendered
_PROBE: list[Message] = [
    {"role": "system", "content": "Probe system prompt."},
    {"role": "user", "content": "First observation."},
    {"role": "assistant", "content": "An action"},
]


class ChatTokenizer:
    """Renders the first prompt with the chat template and later observations as token deltas.

    What is rendered: the opening messages whole, then for each later observation the text the
    template adds for it after the end-of-turn token of the sampled completion (separator, the
    message, the generation prompt). What is kept: every sampled id, as sampled. Per family:
    Qwen2.5 append-only (the stream equals rendering whole); Qwen3 keeps earlier turns'
    ``<think>`` reasoning that re-rendering drops; Llama-3 keeps assistant text the template
    would trim; Mistral repeats the system prompt in each user delta (the template puts it in the
    last user message) and keeps it where it was shown. See the module docstring.
    """

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer
        if tokenizer.chat_template is None:
            raise TemplateError("the tokenizer has no chat template")
        self.eos_id: int = tokenizer.eos_token_id
        self.pad_id: int = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id
        self._eos_text = tokenizer.convert_ids_to_tokens(self.eos_id)
        for role in ("user", "tool"):  # fails fast on a template whose assistant turns do not end with EOS
            self.delta_text(_PROBE, {"role": role, "content": "An observation."})

    def render(self, messages: list[Message], generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt
        )

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        """A completion's text, as the policy hands it to the env (special tokens dropped)."""
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def prompt_ids(self, messages: list[Message]) -> list[int]:
        """The whole template for the opening messages, ending with the generation prompt."""
        return self.encode(self.render(messages, generation_prompt=True))

    def delta_text(self, history: list[Message], message: Message) -> str:
        """Template text after the end-of-turn token of ``history``'s last (assistant) message, up to
        the next generation prompt: ``message`` as the template renders it after this history.

        The conversation is rendered with the last assistant message's content replaced by a
        marker, so what the template does to a completion's text (trimming, dropping reasoning)
        cannot move the cut; everything else is the real conversation, so history-dependent
        rendering (a system prompt placed in the last user message) comes out as the template has it.
        """
        if not history or history[-1]["role"] != "assistant":
            raise ValueError("an observation delta follows an assistant message")
        marked = [*history[:-1], {"role": "assistant", "content": _MARKER}, message]
        text = self.render(marked, generation_prompt=True)
        at = text.rfind(_MARKER)
        if at < 0:
            raise TemplateError("the chat template drops an assistant message's text once a message follows "
                                "it, so where a sampled completion ends cannot be found; pass a template that "
                                "renders it (model.chat_template)")
        end = text.find(self._eos_text, at)
        if end < 0:
            raise TemplateError(f"the chat template does not end an assistant turn with the EOS token "
                                f"{self._eos_text!r}, so a conversation cannot be continued after a sampled "
                                "completion; pass a template that does (model.chat_template)")
        return text[end + len(self._eos_text):]

    def delta_ids(self, history: list[Message], message: Message, completion_ids: list[int]) -> list[int]:
        """Tokens appended after ``completion_ids`` (the sampled ids of ``history``'s last message)
        for ``message``, plus EOS if the completion was cut off."""
        eos = [] if completion_ids and completion_ids[-1] == self.eos_id else [self.eos_id]
        return eos + self.encode(self.delta_text(history, message))


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

    Observation tokens come from the template (the env's text, never the policy's), each a delta
    after the conversation as the policy had it (:meth:`ChatTokenizer.delta_ids`); action tokens
    must already be on the turns, as the policy sampled them (:func:`retokenize` gives text-only
    turns theirs).
    """
    pos = 0
    prev: list[int] = []
    messages = opening_messages(traj, system_prompt)
    for turn in traj.turns:
        if turn.action_token_ids is None:
            raise ValueError(f"{traj.traj_id} turn {turn.index} has no action tokens: the policy "
                             "must return token ids, or its text must be re-tokenised first (retokenize)")
        if turn.index == 0:
            turn.obs_token_ids = chat.prompt_ids(messages)
        else:
            message = {"role": turn.role, "content": turn.observation}
            turn.obs_token_ids = chat.delta_ids(messages, message, prev)
            messages.append(message)
        turn.obs_span = (pos, pos + len(turn.obs_token_ids))
        pos = turn.obs_span[1]
        turn.action_span = (pos, pos + len(turn.action_token_ids))
        pos = turn.action_span[1]
        prev = turn.action_token_ids
        messages.append({"role": "assistant", "content": turn.action})
    return traj


def retokenize(trajs: list[Trajectory], chat: ChatTokenizer) -> dict[str, float]:
    """Give turns that came back as text only (a backend without token ids, a scripted expert) the
    ids of their text plus EOS, in place, and measure re-tokenisation drift.

    ``retokenized_turns``: turns trained on re-tokenised text. ``drifted_turns``: turns whose ids
    would not survive text: a sampled turn whose ids differ from re-tokenising its text (what a
    text-only backend would have trained on instead; the closing EOS aside), or a
    re-tokenised turn whose ids change on a decode/encode round trip (text that does not tokenise
    back to itself, such as special-token markup). For re-tokenised turns this is a lower bound:
    the ids the engine really sampled are unknown, and a model often samples a split of a word
    that tokenising its text would not give.
    """
    retokenized = drifted = 0
    for traj in trajs:
        for turn in traj.turns:
            ids = turn.action_token_ids
            if ids is None:
                text_ids = chat.encode(turn.action)
                turn.action_token_ids, turn.action_logprobs = text_ids + [chat.eos_id], None
                retokenized += 1
                drifted += chat.encode(chat.decode(text_ids)) != text_ids
            else:
                sampled = ids[:-1] if ids and ids[-1] == chat.eos_id else ids
                drifted += chat.encode(turn.action) != sampled
    return {"rollout/retokenized_turns": float(retokenized), "rollout/drifted_turns": float(drifted)}


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
