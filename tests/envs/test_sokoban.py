from __future__ import annotations

import pytest

from agentgym.envs.sokoban import MIN_MOVES, Board, SokobanEnv, parse_move, solve

# A corridor: the box is one push from the target.
CORRIDOR = "######\n#@$_.#\n######"


def env_on(board_text: str, **kwargs) -> SokobanEnv:
    env = SokobanEnv(**kwargs)
    env.reset(seed=0)
    env.board = Board.parse(board_text)
    return env


def test_board_string_round_trips() -> None:
    env = SokobanEnv(n_boxes=2)
    for seed in range(20):
        _, info = env.reset(seed=seed)
        assert str(Board.parse(info["state_key"])) == info["state_key"] == str(env.board)


@pytest.mark.parametrize("kwargs", [{}, {"n_boxes": 2}, {"width": 7, "height": 7, "n_boxes": 2, "n_walls": 4}])
def test_generated_levels_are_solvable_unsolved_and_in_range(kwargs: dict) -> None:
    env = SokobanEnv(**kwargs)
    for seed in range(50):
        obs, info = env.reset(seed=seed)
        board = env.board
        assert not board.boxes & board.targets and len(board.boxes) == len(board.targets) == env.n_boxes
        plan = solve(board)
        assert plan is not None and len(plan) == info["optimal_moves"]
        assert MIN_MOVES <= len(plan) <= env.max_moves
        assert str(board) in obs and "Legend:" in obs


def test_push_onto_target_solves() -> None:
    env = env_on(CORRIDOR)
    obs, reward, terminated, _, info = env.step("right")
    assert (reward, terminated, info["moved"]) == (0.0, False, True) and "pushed a box right" in obs
    obs, reward, terminated, _, info = env.step("right")
    assert (reward, terminated) == (1.0, True) and "solved" in obs and info["boxes_on_targets"] == 1
    assert info["state_key"] == "######\n#__@*#\n######"


def test_blocked_moves_change_nothing() -> None:
    env = env_on("######\n#@$$.#\n######")
    before = str(env.board)
    for move in ("right", "up", "left"):  # box into box, wall, wall
        obs, reward, terminated, _, info = env.step(move)
        assert not info["moved"] and info["parse_error"] is None and str(env.board) == before
        assert "blocked" in obs and reward == 0.0 and not terminated
    assert env.legal_actions() == ["up", "down", "left", "right"]  # nothing moves: all four


def test_legal_actions_are_the_moves_that_change_the_board() -> None:
    assert env_on(CORRIDOR).legal_actions() == ["right"]


def test_step_penalty_and_deadlock() -> None:
    env = env_on("#####\n#_@_#\n#$__#\n#__.#\n#####", step_penalty=0.1, end_on_deadlock=True)
    assert env.board.deadlocked is False
    _, reward, terminated, _, info = env.step("zzz")
    assert reward == pytest.approx(-0.1) and info["parse_error"] and not terminated
    _, reward, terminated, _, info = env.step("left")  # a plain step, no push
    assert not info["deadlock"] and not terminated
    _, reward, terminated, _, info = env.step("down")  # pushes the box into the bottom-left corner
    assert info["deadlock"] and terminated and reward == pytest.approx(-0.1)
    lenient = env_on("#####\n#_@_#\n#$__#\n#__.#\n#####")
    lenient.step("left")
    assert lenient.step("down")[2] is False  # deadlock is only reported by default


def test_solver_is_optimal_and_detects_unsolvable() -> None:
    assert solve(Board.parse(CORRIDOR)) == ("right", "right")
    assert solve(Board.parse("######\n#$@_.#\n######")) is None  # box against the wall, target behind you
    assert solve(Board.parse("#####\n#@*_#\n#####")) == ()


def test_expert_follows_the_plan_from_any_state() -> None:
    env = SokobanEnv(n_boxes=2)
    for seed in range(30):
        env.reset(seed=seed)
        for move in ("up", "left", "down"):  # wander off the plan first
            env.step(move)
        if solve(env.board) is None:
            continue
        for _ in range(env.max_moves * 2):
            _, reward, terminated, truncated, _ = env.step(env.expert_action())
            if terminated or truncated:
                break
        assert reward == 1.0


def test_state_keys_repeat_when_positions_repeat() -> None:
    """Different paths to the same position give the same anchor."""
    board = "######\n#_@__#\n#_$_.#\n######"
    keys = []
    for path in (("right", "left"), ("left", "right"), ()):
        env = env_on(board)
        for move in path:
            info = env.step(move)[4]
        keys.append(str(env.board) if not path else info["state_key"])
    assert keys == [board, board, board]


@pytest.mark.parametrize(("action", "move"), [("up", "up"), ("LEFT", "left"), (" Down\n", "down"), ("r", "right"),
                                              ("U", "up"), ("<action>left</action>", "left"),
                                              ("<ACTION> R </action>", "right"), ("<answer>up</answer>", "up")])
def test_accepted_moves(action: str, move: str) -> None:
    assert parse_move(action) == (move, None)


@pytest.mark.parametrize("action", ["", "north", "upp", "<action>left", "left right", "<action>x</action>", "l" * 500])
def test_rejected_moves(action: str) -> None:
    move, error = parse_move(action)
    assert move is None and error


@pytest.mark.parametrize("kwargs", [{"width": 4}, {"width": 5, "height": 5, "n_boxes": 7}, {"n_boxes": 0},
                                    {"max_moves": 1}])
def test_rejects_bad_kwargs(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SokobanEnv(**kwargs)
