"""Verifiers environments written against the real ``verifiers`` package (its classic API), for
the adapter's tests: ``load_environment(kind=...)`` is the convention of verifiers' env packages,
so ``verifiers/vf_arith-v0`` names this module.

* ``single``: a ``vf.SingleTurnEnv``; the rubric scores ``<answer>`` (an ``XMLParser``) against
  the row's answer, plus a format reward weighted 0.2.
* ``guess``: a ``vf.MultiTurnEnv``: guess a number in 1-8; ``env_response`` says higher/lower; a
  ``@vf.stop`` condition ends the game on the right guess; reward 1 for a win.
* ``guess_final``: ``guess`` ending with ``state["final_env_response"]`` instead.
* ``tools``: a ``vf.ToolEnv`` whose tools look up secret numbers and add them; the answer is
  their sum.
* ``notes``: a ``vf.StatefulToolEnv`` whose tool gets an argument injected from the state.
* ``raising``: the ``single`` env with a reward function that raises (a bug in the rubric).
* ``stop_on_tool_error``: the ``tools`` env with ``stop_errors`` (verifiers ends the rollout when
  a tool call is malformed).
"""

from __future__ import annotations

import verifiers as vf
from datasets import Dataset

SECRETS = {"red": 3, "blue": 11, "green": 7, "gold": 20}


def _single(rows: int, raising: bool) -> vf.Environment:
    data = [{"question": f"What is {a} + {b}?", "answer": str(a + b)}
            for a, b in [(2, 3), (4, 4), (7, 5), (10, 6), (1, 1), (9, 9)][:rows]]
    parser = vf.XMLParser(["answer"])

    def correct(completion, answer) -> float:
        return 1.0 if (parser.parse_answer(completion) or "").strip() == answer else 0.0

    def formatted(completion) -> float:
        return 1.0 if parser.parse_answer(completion) is not None else 0.0

    funcs, weights = [correct, formatted], [1.0, 0.2]
    if raising:
        def broken(completion) -> float:
            raise ZeroDivisionError("the rubric divided by zero")

        funcs, weights = [*funcs, broken], [*weights, 1.0]
    rubric = vf.Rubric(funcs=funcs, weights=weights, parser=parser)
    return vf.SingleTurnEnv(dataset=Dataset.from_list(data), parser=parser, rubric=rubric,
                            system_prompt="Answer with <answer>NUMBER</answer>.")


class GuessEnv(vf.MultiTurnEnv):
    """Guess the secret number (the row's answer) with higher/lower hints. ``released`` records the
    rows whose rollout-local resources its cleanup handler freed (what a sandbox env does there)."""

    released: list[int] = []

    def __init__(self, final_message: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.final_message = final_message

    async def setup_state(self, state: vf.State) -> None:
        state["solved"] = False

    @vf.cleanup
    async def release(self, state: vf.State) -> None:
        GuessEnv.released.append(state["example_id"])

    @vf.stop
    async def solved(self, state: vf.State) -> bool:
        return state["solved"]

    async def env_response(self, messages: vf.Messages, state: vf.State, **kwargs) -> vf.Messages:
        text = (messages[-1].content or "").strip()
        if not text.isdigit():
            return [vf.UserMessage(content="Reply with a single number from 1 to 8.")]
        guess, secret = int(text), int(state["answer"])
        if guess == secret:
            state["solved"] = True
            reply = [vf.UserMessage(content="Correct!")]
            if self.final_message:  # the other way to end: the env's last word (TextArenaEnv's way)
                state["final_env_response"] = reply
            return reply
        return [vf.UserMessage(content="Higher." if guess < secret else "Lower.")]


def _guess(rows: int, final_message: bool = False) -> vf.Environment:
    data = [{"question": "I picked a number from 1 to 8. Guess it.", "answer": str(n)}
            for n in [5, 2, 8, 3, 6][:rows]]

    def won(state) -> float:
        return 1.0 if state["solved"] else 0.0

    return GuessEnv(dataset=Dataset.from_list(data), rubric=vf.Rubric(funcs=[won]), max_turns=6,
                    final_message=final_message)


def lookup(name: str) -> int:
    """The secret number called name.

    Args:
        name: red, blue, green or gold.
    """
    return SECRETS[name]


def add(a: int, b: int) -> int:
    """The sum of two integers.

    Args:
        a: first number.
        b: second number.
    """
    return a + b


def _tools(rows: int, stop_errors: bool) -> vf.Environment:
    pairs = [("red", "blue"), ("green", "gold"), ("blue", "gold")][:rows]
    data = [{"question": f"What is the {x} number plus the {y} number? Look both up, then answer "
             "<answer>SUM</answer>.", "answer": str(SECRETS[x] + SECRETS[y])} for x, y in pairs]
    parser = vf.XMLParser(["answer"])

    def correct(completion, answer) -> float:
        return 1.0 if (parser.parse_answer(completion) or "").strip() == answer else 0.0

    return vf.ToolEnv(dataset=Dataset.from_list(data), tools=[lookup, add], max_turns=5, parser=parser,
                      rubric=vf.Rubric(funcs=[correct], parser=parser),
                      stop_errors=[Exception] if stop_errors else None)


class NotesEnv(vf.StatefulToolEnv):
    """A ``vf.StatefulToolEnv``: ``note(text)`` appends to a list in the rollout's state, which
    ``update_tool_args`` injects (the model never sees the ``notes`` argument)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_tool(note, args_to_skip=["notes"])

    async def setup_state(self, state: vf.State) -> None:
        state["notes"] = []

    def update_tool_args(self, tool_name, tool_args, messages, state, **kwargs) -> dict:
        return {**tool_args, "notes": state["notes"]}


def note(text: str, notes: list) -> str:
    """Write a note.

    Args:
        text: what to write.
        notes: the notebook (injected by the env).
    """
    notes.append(text)
    return f"{len(notes)} notes"


def _notes(rows: int) -> vf.Environment:
    words = ["apple", "river", "stone"][:rows]
    data = [{"question": f"Write the note '{w}' twice, then reply done.", "answer": w} for w in words]

    def wrote_twice(state, answer) -> float:
        return 1.0 if state["notes"] == [answer, answer] else 0.0

    return NotesEnv(dataset=Dataset.from_list(data), rubric=vf.Rubric(funcs=[wrote_twice]), max_turns=4)


def load_environment(kind: str = "single", rows: int = 6) -> vf.Environment:
    if kind in ("single", "raising"):
        return _single(rows, raising=kind == "raising")
    if kind in ("guess", "guess_final"):
        return _guess(rows, final_message=kind == "guess_final")
    if kind == "notes":
        return _notes(rows)
    if kind in ("tools", "stop_on_tool_error"):
        return _tools(rows, stop_errors=kind == "stop_on_tool_error")
    raise ValueError(f"unknown kind {kind!r}")
