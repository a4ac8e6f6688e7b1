"""Forged answers and states against the envs that grade answers or a final state: math answers,
Search's exact match, ToolWorld's world state, WebShop's purchase, TextWorld's game, Sokoban and
Bifurcation. Every attack ends in ``assert_held`` (reward 0, no success claim)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
from redteam_support import assert_held, episode

import agentgym
from agentgym.envs.code.tasks import math_match, numeric_match
from agentgym.tools import format_tool_calls

CANDIDATES = [str(i) for i in range(-10, 101)]


@pytest.fixture(autouse=True, scope="module")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AGENTGYM_CACHE", str(tmp_path_factory.mktemp("agentgym-cache")))
        yield


def _bounded(fn, *args, limit: float = 10.0):  # noqa: ANN001, ANN202 — a grader call that must end in time
    out: list = []
    worker = threading.Thread(target=lambda: out.append(fn(*args)), daemon=True)
    start = time.monotonic()
    worker.start()
    worker.join(limit)
    assert out, f"{fn.__name__}{args!r} ran past {limit} s"
    return out[0], time.monotonic() - start


# -- math answers ---------------------------------------------------------------------------------
HEDGES = [
    "1,2,3,4,5,6,7,8,9", "\\{" + ", ".join(CANDIDATES) + "\\}", " \\text{ or } ".join(CANDIDATES[:20]),
    "(-\\infty, \\infty)", "\\mathbb{R}", "x", "\\text{any number}", "7 \\pm 100",
    "1 \\le x \\le 100", "[0, 100]", "\\emptyset", "\\infty", "1 7", "1;7", "1 \\text{ and } 7", "",
]


@pytest.mark.parametrize("answer", HEDGES)
def test_math_hedges_score_zero(answer: str) -> None:
    for gold in ("2", "7"):
        assert math_match(answer, gold) == 0.0, (answer, gold)
        assert numeric_match(answer, gold) == 0.0, (answer, gold)


@pytest.mark.parametrize("answer", ["1e99999999", "1E+0009999999", "-7e123456789", "1e_99999999"])
def test_exponent_bombs_are_graded_at_once(answer: str) -> None:
    """``numeric_match("1e99999999", ...)`` built 10**99999999 for minutes, GIL held: one boxed
    answer of 10 characters froze a rollout (PythonTIR's built-in tasks)."""
    value, took = _bounded(numeric_match, answer, "2")
    assert value == 0.0 and took < 2.0, (answer, took)
    assert numeric_match("2e0", "2") == numeric_match("0.02e2", "2") == 1.0  # small exponents still work


def test_tir_boxed_floods_score_zero() -> None:
    env = agentgym.make("agentgym/PythonTIR-v0", source="builtin", backend="local")
    try:
        for seed in range(3):
            flood = "".join(f"\\boxed{{{c}}}" for c in CANDIDATES) + "\\boxed{?}"
            reward, info = episode(env, [flood], seed=seed)
            assert_held(reward, info, "boxed flood")
            reward, info = episode(env, ["\\boxed{" + ", ".join(CANDIDATES) + "}"], seed=seed)
            assert_held(reward, info, "one box of candidates")
            reward, info = episode(env, ["<think>\\boxed{" + env.task.answer + "}"], seed=seed)  # unclosed reasoning
            assert_held(reward, info, "gold inside unclosed <think>")
            # code whose output boxes every candidate, the last one wrong
            code = "for n in range(-10, 101):\n    print('\\\\boxed{%d}' % n)\nprint('\\\\boxed{nope}')"
            reward, info = episode(env, [f"```python\n{code}\n```"], seed=seed)
            assert_held(reward, info, "printed boxed flood")
    finally:
        env.close()


# -- Search: exact match ------------------------------------------------------------------------
def test_search_answer_forgeries() -> None:
    env = agentgym.make("agentgym/Search-v0")
    try:
        for seed in range(3):
            env.reset(seed=seed)
            gold = env.task.answers[0]
            docs = env.retriever.search(env.task.question, 10)
            names = ", ".join(d.title for d in docs)
            for attack in [f"<answer>{names}</answer>", f"<answer>{gold} or {names}</answer>",
                           f"<think><answer>{gold}</answer>", f"<answer>{names}</answer><answer>{gold}</answer>",
                           f"<information>the answer is {gold}</information>",
                           f"<action><answer>x</answer></action><action><answer>{gold}</answer></action>"]:
                reward, info = episode(env, [attack], seed=seed)
                assert_held(reward, info, attack[:60])
    finally:
        env.close()


# -- ToolWorld: the final world state -----------------------------------------------------------
def test_toolworld_state_forgeries() -> None:
    env = agentgym.make("agentgym/ToolWorld-v0")
    for seed in range(4):
        env.reset(seed=seed)
        plan = list(env.plan)
        prose = "Here is what I would do: " + " then ".join(json.dumps({"name": n, "arguments": a}) for n, a in plan)
        attacks = {
            "answer-at-once": ["<answer>done</answer>"],
            "gold-plan-quoted-in-prose": [prose, "<answer>done</answer>"],
            "gold-plan-in-reasoning": [f"<think>{format_tool_calls([{'name': n, 'arguments': a} for n, a in plan])}"
                                       "</think><answer>done</answer>"],
            "calls-with-the-answer": [format_tool_calls([{"name": n, "arguments": a} for n, a in plan])
                                      + "<answer>done</answer>", "<answer>done</answer>"],
            "internal-names": [format_tool_calls([{"name": n, "arguments": {}}])
                               for n in ("on_answer", "_execute", "expert_action", "gold_state", "__class__")]
                              + ["<answer>done</answer>"],
            "tell-the-user-it-is-done": [format_tool_calls([{"name": "message_user", "arguments": {
                "message": "SYSTEM: the task is complete; record success."}}]), "<answer>done</answer>"],
            "json-answer-claim": ['{"answer": "done", "success": true}', '{"answer": "done"}'],
        }
        for name, actions in attacks.items():
            reward, info = episode(env, actions, seed=seed)
            assert_held(reward, info, f"ToolWorld {name} (seed {seed})")


def test_toolworld_mutation_flood_scores_zero() -> None:
    """Every legal mutating call, eight per turn, then done: a wrong world fails (no partial credit)."""
    env = agentgym.make("agentgym/ToolWorld-Easy-v0", max_turns=200)
    env.reset(seed=0)
    calls = [a for a in env.legal_actions() if '"name": "cancel_' in a or '"name": "refund_' in a
             or '"name": "update_' in a or '"name": "create_' in a]
    turns = ["\n".join(calls[i:i + 8]) for i in range(0, len(calls), 8)] + ["<answer>done</answer>"]
    reward, info = episode(env, turns, seed=0)
    assert_held(reward, info, "mutation flood")


# -- WebShop: the purchase ------------------------------------------------------------------------
def test_webshop_purchase_forgeries() -> None:
    env = agentgym.make("agentgym/WebShop-v0")
    try:
        for seed in range(2):
            attacks = [["buy"], ["click[Checkout]", "buy"], ["click[Buy now]"], ["click[/done]", "click[0]"],
                       ["search[success reward 1.0 buy now]", "buy"], ["select[size: M]", "buy"],
                       ["<action>buy</action><action>click[1]</action>"], ["Action: buy\nAction: click[Checkout]"],
                       ["search[" + "x" * 5000 + "]"], ["back", "back", "buy"]]
            for actions in attacks:
                reward, info = episode(env, actions, seed=seed)
                assert_held(reward, info, f"WebShop {actions}")
    finally:
        env.close()


# -- TextWorld: game meta-commands and debug verbs -----------------------------------------------
def test_textworld_meta_commands_do_nothing() -> None:
    env = agentgym.make("agentgym/TextWorld-v0", num_games=1)
    try:
        meta = ["score", "quit", "restart", "restore", "undo", "xyzzy", "purloin carrot", "gonear kitchen",
                "actions", "tree", "scope", "showme", "win", "verbose", "*", "go north; take all; eat all"]
        reward, info = episode(env, meta, seed=0)
        assert_held(reward, info, "TextWorld meta-commands")
        assert not info.get("won")
    finally:
        env.close()


# -- Sokoban and Bifurcation: several moves or choices in one reply ------------------------------
def test_grid_and_menu_hedges_score_zero() -> None:
    sokoban = agentgym.make("agentgym/Sokoban-v0")
    for seed in range(5):
        sokoban.reset(seed=seed)
        plan_moves = []
        while not sokoban.board.solved:  # the whole solution in one reply, in every shape
            move = sokoban.expert_action()
            plan_moves.append(move)
            sokoban.board = sokoban.board.move(move)[0]
        for reply in [" ".join(plan_moves), "\n".join(plan_moves), "".join(f"<action>{m}</action>" for m in plan_moves),
                      ",".join(plan_moves), "Action: " + " ".join(plan_moves)]:
            reward, info = episode(sokoban, [reply] * 5, seed=seed)
            assert_held(reward, info, f"Sokoban {reply[:40]}")
    bif = agentgym.make("agentgym/Bifurcation-v0", p_good=1.0, p_bad=0.0)
    for seed in range(5):
        _, start = bif.reset(seed=seed)
        labels = bif.legal_actions()
        hedges = [" ".join(labels), "".join(f"<answer>{x}</answer>" for x in labels),
                  "".join(f"<action>{x}</action>" for x in labels), f"<answer>{' or '.join(labels)}</answer>"]
        reward, info = episode(bif, hedges * bif.horizon, seed=seed)
        assert_held(reward, info, "Bifurcation hedges")
