"""Sokoban's oracle verifier (VPR's V(s, a)): optimal against an independent breadth-first search,
and an attacker's malformed replies never score as good."""

from __future__ import annotations

from collections import deque

import pytest

from agentgym.envs.sokoban import (
    INVALID_REWARD,
    MOVES,
    ORACLE_REWARD,
    Board,
    SokobanEnv,
    optimal_moves,
    verify_move,
)

CORRIDOR = "######\n#@$_.#\n######"
# Two ways to reach the pushing cell (up then right, or right then up): both first moves are optimal.
PILLAR = "#######\n#_____#\n#__$_.#\n#@____#\n#######"


def distance(board: Board, limit: int = 200_000) -> int | None:
    """Moves to solve by a plain BFS over every position (no pruning): the test's own oracle."""
    seen, queue = {board: 0}, deque([board])
    while queue:
        cur = queue.popleft()
        if cur.solved:
            return seen[cur]
        for m in MOVES:
            nxt, moved = cur.move(m)
            if moved and nxt not in seen:
                seen[nxt] = seen[cur] + 1
                queue.append(nxt)
        assert len(seen) < limit
    return None


def test_corridor_and_pillar_by_hand() -> None:
    board = Board.parse(CORRIDOR)
    assert optimal_moves(board) == {"right"}
    assert verify_move(board, "right") == (ORACLE_REWARD, True, False, None)
    reward, valid, solves, error = verify_move(board, "left")  # into the wall: changes nothing
    assert (reward, valid, solves) == (INVALID_REWARD, False, False) and "blocked" in error
    pillar = Board.parse(PILLAR)
    assert distance(pillar) == 4 and optimal_moves(pillar) == {"up", "right"}
    assert optimal_moves(pillar) == {m for m in MOVES if pillar.move(m)[1]
                                     and distance(pillar.move(m)[0]) == distance(pillar) - 1}


def test_solving_move_is_flagged() -> None:
    board = Board.parse("######\n#_@$.#\n######")
    assert verify_move(board, "<action>right</action>") == (ORACLE_REWARD, True, True, None)


@pytest.mark.parametrize("kwargs", [{}, {"n_boxes": 2}])
def test_oracle_is_optimal_on_small_boards(kwargs: dict) -> None:
    """Along random walks from generated levels, a move scores ORACLE_REWARD iff it lowers the
    exact distance-to-solve by one, and INVALID_REWARD iff it is blocked or loses the level."""
    import random

    rng = random.Random(0)
    checked = 0
    for seed in range(12):
        env = SokobanEnv(**kwargs)
        env.reset(seed=seed)
        board = env.board
        for _ in range(8):
            d = distance(board)
            for m in MOVES:
                nxt, moved = board.move(m)
                reward, valid, solves, _ = verify_move(board, m)
                dn = distance(nxt) if moved else None
                if not moved or dn is None:
                    assert reward == INVALID_REWARD
                elif d is not None and dn == d - 1:
                    assert reward == ORACLE_REWARD and valid and solves == nxt.solved
                else:
                    assert reward == 0.0 and valid
                checked += 1
            legal = [m for m in MOVES if board.move(m)[1]]
            board = board.move(rng.choice(legal))[0]
            if board.solved:
                break
    assert checked > 300


@pytest.mark.parametrize("reply", [
    "", "   ", "up down", "I think up is best", "<action>up</action><action>left</action>",
    "upp", "up" * 150, "Action: jump", "<answer>", "right\x00left", "{'move': 'right'}",
])
def test_malformed_replies_score_as_invalid(reply: str) -> None:
    """A policy under RL is an attacker: only a parsed, legal move may score above the floor, and
    the position never moves while a candidate is scored."""
    env = SokobanEnv()
    env.reset(seed=3)
    before = str(env.board)
    reward, valid, solves, error = env.verify_action(reply)
    assert (reward, valid, solves) == (INVALID_REWARD, False, False) and error
    assert str(env.board) == before


def test_verify_action_leaves_the_env_unchanged_and_needs_a_reset() -> None:
    env = SokobanEnv()
    with pytest.raises(RuntimeError, match="before reset"):
        env.verify_action("up")
    env.reset(seed=1)
    before, turn = str(env.board), env.turn
    for m in MOVES:
        env.verify_action(m)
    assert str(env.board) == before and env.turn == turn
    best = next(iter(optimal_moves(env.board)))
    assert env.verify_action(f"Thinking...\n<action>{best.upper()}</action>")[0] == ORACLE_REWARD
