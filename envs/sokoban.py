"""``agentgym/Sokoban-v0``: small text Sokoban whose states repeat across rollouts.

Boards are tiny (6×6 by default, 1–2 boxes), so rollouts of one task keep revisiting the same
positions: ``state_key`` is the board string itself (player included), which gives GiGPO's
anchor groups real members.

**Levels** are generated per seed by *reverse play*: start from the solved state (boxes on their
targets), walk the player randomly and sometimes *pull* the box behind it. Every pull is a push
played backwards, so every generated level is solvable by construction. A breadth-first solver
then measures the optimal number of moves; levels shorter than ``MIN_MOVES`` or longer than
``max_moves`` are redrawn (from the same seeded rng, so a seed still fixes the level).

**Actions**: ``up``/``down``/``left``/``right`` or ``u``/``d``/``l``/``r``, any case, after the
shared action rule of every built-in env (:func:`agentgym.parsers.extract_action`: reasoning
dropped, one ``<action>…</action>`` or an ``Action:`` prefix unwrapped), optionally wrapped in
``<answer>…</answer>``. Anything else is a ``parse_error``
turn (nothing moves). Walking into a wall or an unpushable box is a valid move that changes
nothing (``info["moved"]`` is False).

**Reward**: 1.0 on the move that puts the last box on a target (the episode terminates),
minus ``step_penalty`` on every turn (default 0). ``info["deadlock"]`` flags a box stuck in a
corner off-target; with ``end_on_deadlock`` the episode then terminates (reward 0).

``expert_action()`` follows a move-optimal breadth-first plan; plans are cached per board string
for the whole process, so a group of rollouts solves each board once.

**Oracle verifier** (VPR's ``V(s, a)``, :mod:`agentgym.state_group`): ``verify_action(action)``
scores a candidate reply in the current position without moving anything: ``ORACLE_REWARD``
(2.0) for a move that starts a shortest solution, 0.0 for any other move that changes the
board, ``INVALID_REWARD`` (−2.0) for a reply that does not parse, a move that changes nothing
(into a wall or an unpushable box) and a move after which the level can no longer be solved.
The values are the released VPR Sokoban worker's defaults (docs/credit.md#vpr).
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentgym.core import StepResult, TextEnv
from agentgym.parsers import extract_action

__all__ = ["INVALID_REWARD", "ORACLE_REWARD", "Board", "SokobanEnv", "generate_level", "optimal_moves", "parse_move",
           "solve", "verify_move"]

Cell = tuple[int, int]
MOVES: dict[str, Cell] = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}
ALIASES = {**{m: m for m in MOVES}, "u": "up", "d": "down", "l": "left", "r": "right"}
WALL, FLOOR, TARGET, BOX, BOX_ON_TARGET, PLAYER, PLAYER_ON_TARGET = "#", "_", ".", "$", "*", "@", "+"
LEGEND = (f"Legend: {WALL} wall, {FLOOR} floor, {PLAYER} you, {BOX} box, {TARGET} target, "
          f"{BOX_ON_TARGET} box on a target, {PLAYER_ON_TARGET} you on a target.")
SYSTEM_PROMPT = (
    "You are playing Sokoban. Push every box onto a target. You can push one box at a time and "
    "cannot pull. Reply with one move per turn: up, down, left or right, e.g. <action>left</action>."
)
MIN_MOVES = 3
ORACLE_REWARD, LEGAL_REWARD, INVALID_REWARD = 2.0, 0.0, -2.0
_MAX_ACTION_CHARS = 200
_ANSWER_TAGS = ("<answer>", "</answer>")


@dataclass(frozen=True)
class Board:
    """An immutable Sokoban position; ``str(board)`` is its canonical text (and state key)."""

    height: int
    width: int
    walls: frozenset[Cell]
    targets: frozenset[Cell]
    boxes: frozenset[Cell]
    player: Cell

    def __str__(self) -> str:
        rows = []
        for r in range(self.height):
            row = []
            for c in range(self.width):
                cell = (r, c)
                if cell in self.walls:
                    row.append(WALL)
                elif cell == self.player:
                    row.append(PLAYER_ON_TARGET if cell in self.targets else PLAYER)
                elif cell in self.boxes:
                    row.append(BOX_ON_TARGET if cell in self.targets else BOX)
                else:
                    row.append(TARGET if cell in self.targets else FLOOR)
            rows.append("".join(row))
        return "\n".join(rows)

    @classmethod
    def parse(cls, text: str) -> Board:
        """Inverse of ``str(board)``."""
        walls, targets, boxes, player = set(), set(), set(), None
        rows = text.split("\n")
        for r, row in enumerate(rows):
            for c, ch in enumerate(row):
                cell = (r, c)
                if ch == WALL:
                    walls.add(cell)
                if ch in (TARGET, BOX_ON_TARGET, PLAYER_ON_TARGET):
                    targets.add(cell)
                if ch in (BOX, BOX_ON_TARGET):
                    boxes.add(cell)
                if ch in (PLAYER, PLAYER_ON_TARGET):
                    player = cell
        if player is None:
            raise ValueError("board has no player")
        return cls(len(rows), max(map(len, rows)), frozenset(walls), frozenset(targets), frozenset(boxes), player)

    @property
    def solved(self) -> bool:
        return self.boxes <= self.targets

    @property
    def boxes_on_targets(self) -> int:
        return len(self.boxes & self.targets)

    def move(self, direction: str) -> tuple[Board, bool]:
        """The board after ``direction``, and whether anything moved."""
        dr, dc = MOVES[direction]
        nxt = (self.player[0] + dr, self.player[1] + dc)
        if nxt in self.walls:
            return self, False
        boxes = self.boxes
        if nxt in boxes:
            beyond = (nxt[0] + dr, nxt[1] + dc)
            if beyond in self.walls or beyond in boxes:
                return self, False
            boxes = (boxes - {nxt}) | {beyond}
        return Board(self.height, self.width, self.walls, self.targets, boxes, nxt), True

    @property
    def deadlocked(self) -> bool:
        """A box off-target wedged in a corner can never move again."""
        for r, c in self.boxes - self.targets:
            vertical = (r - 1, c) in self.walls or (r + 1, c) in self.walls
            horizontal = (r, c - 1) in self.walls or (r, c + 1) in self.walls
            if vertical and horizontal:
                return True
        return False


# Board string -> remaining move-optimal plan (None = unsolvable). Shared by every env in the
# process; bounded so a long run cannot grow it without limit.
_PLANS: dict[str, tuple[str, ...] | None] = {}
_MAX_PLANS = 200_000


def solve(board: Board) -> tuple[str, ...] | None:
    """A move-optimal solution (breadth-first over player and box positions), or None."""
    key = str(board)
    if key in _PLANS:
        return _PLANS[key]
    if len(_PLANS) > _MAX_PLANS:
        _PLANS.clear()
    parents: dict[Board, tuple[Board, str] | None] = {board: None}
    queue = deque([board])
    while queue:
        current = queue.popleft()
        if current.solved:
            _PLANS[str(current)] = ()
            path: list[tuple[Board, str]] = []
            while (link := parents[current]) is not None:
                current, move = link
                path.append((current, move))
            path.reverse()
            moves = tuple(m for _, m in path)
            for i, (state, _) in enumerate(path):  # every state on the way gets its plan too
                _PLANS[str(state)] = moves[i:]
            return moves
        for direction in MOVES:
            nxt, moved = current.move(direction)
            if moved and nxt not in parents and not nxt.deadlocked:
                parents[nxt] = (current, direction)
                queue.append(nxt)
    _PLANS[key] = None
    return None


def optimal_moves(board: Board) -> frozenset[str]:
    """Every move that starts *some* shortest solution (empty when solved or unsolvable).

    A move is optimal iff it changes the board and what remains is solved, or solvable in
    exactly one move fewer than the board itself (both distances from :func:`solve`).
    """
    plan = solve(board)
    if not plan:
        return frozenset()
    out = set()
    for direction in MOVES:
        nxt, moved = board.move(direction)
        if not moved:
            continue
        rest = () if nxt.solved else solve(nxt)
        if rest is not None and len(rest) == len(plan) - 1:
            out.add(direction)
    return frozenset(out)


def verify_move(board: Board, action: str) -> tuple[float, bool, bool, str | None]:
    """VPR's oracle on one candidate reply: ``(reward, valid, solves, error)``, the board untouched.

    Only a reply that parses to a move that changes the board can score above the floor: text
    that merely mentions a move, an empty or oversized reply, and a no-op move all score
    ``INVALID_REWARD``, as does a move into a position that can no longer be solved.
    """
    move, error = parse_move(action)
    if move is None:
        return INVALID_REWARD, False, False, error
    nxt, moved = board.move(move)
    if not moved:
        return INVALID_REWARD, False, False, f"{move} changes nothing: the way is blocked"
    if nxt.solved:
        return ORACLE_REWARD, True, True, None
    if solve(nxt) is None:
        return INVALID_REWARD, True, False, None
    return (ORACLE_REWARD if move in optimal_moves(board) else LEGAL_REWARD), True, False, None


def _connected(cells: set[Cell]) -> bool:
    if not cells:
        return False
    start = next(iter(cells))
    seen, stack = {start}, [start]
    while stack:
        r, c = stack.pop()
        for dr, dc in MOVES.values():
            nxt = (r + dr, c + dc)
            if nxt in cells and nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return len(seen) == len(cells)


def generate_level(
    rng: np.random.Generator, *, width: int, height: int, n_boxes: int, n_walls: int, max_moves: int
) -> tuple[Board, int]:
    """A solvable level by reverse play, and its optimal number of moves."""
    interior = [(r, c) for r in range(1, height - 1) for c in range(1, width - 1)]
    border = {(r, c) for r in range(height) for c in range(width)} - set(interior)
    for _ in range(1000):
        floor = set(interior)
        for _ in range(n_walls):
            cell = interior[int(rng.integers(len(interior)))]
            if cell in floor and _connected(floor - {cell}):
                floor.remove(cell)
        cells = sorted(floor)
        picks = rng.choice(len(cells), n_boxes + 1, replace=False)
        targets = frozenset(cells[int(i)] for i in picks[:-1])
        player, boxes = cells[int(picks[-1])], set(targets)
        for _ in range(int(rng.integers(2, 6)) * len(cells)):
            dr, dc = list(MOVES.values())[int(rng.integers(4))]
            nxt = (player[0] + dr, player[1] + dc)
            if nxt not in floor or nxt in boxes:
                continue
            behind = (player[0] - dr, player[1] - dc)
            if behind in boxes and rng.random() < 0.7:  # pull: a push played backwards
                boxes.remove(behind)
                boxes.add(player)
            player = nxt
        board = Board(height, width, frozenset(border | (set(interior) - floor)), targets, frozenset(boxes),
                      player)
        if board.boxes & board.targets:  # want every box to need a push
            continue
        plan = solve(board)
        if plan is not None and MIN_MOVES <= len(plan) <= max_moves:
            return board, len(plan)
    raise RuntimeError(f"could not generate a {width}x{height} level with {n_boxes} boxes; check the sizes")


def parse_move(action: str) -> tuple[str | None, str | None]:
    """``(direction, None)`` for a valid move, else ``(None, error)``."""
    extracted = extract_action(action)
    if extracted.error is not None:
        return None, str(extracted.error)
    text = extracted.text
    if len(text) > _MAX_ACTION_CHARS:
        return None, f"the action is {len(text)} characters; reply with just one move"
    open_tag, close_tag = _ANSWER_TAGS
    if text.lower().startswith(open_tag) and text.lower().endswith(close_tag):
        text = text[len(open_tag): len(text) - len(close_tag)]
    move = ALIASES.get(text.strip().lower())
    if move is not None:
        return move, None
    shown = text if len(text) <= 40 else text[:37] + "..."
    return None, f"expected up, down, left or right (optionally as <action>left</action>), got {shown!r}"


class SokobanEnv(TextEnv):
    """Text Sokoban on small reverse-play-generated boards; ``state_key`` is the board."""

    system_prompt = SYSTEM_PROMPT
    threaded_async = False  # microseconds per step (the solver only runs for expert_action)

    def __init__(
        self,
        *,
        width: int = 6,
        height: int = 6,
        n_boxes: int = 1,
        n_walls: int = 2,
        max_moves: int = 20,
        step_penalty: float = 0.0,
        end_on_deadlock: bool = False,
        max_turns: int | None = 40,
        render_mode: str | None = None,
    ):
        if min(width, height) < 5 or (width - 2) * (height - 2) < n_boxes + 3:
            raise ValueError(f"a {width}x{height} board is too small for {n_boxes} boxes")
        if n_boxes < 1 or n_walls < 0 or max_moves < MIN_MOVES:
            raise ValueError(f"need n_boxes ≥ 1, n_walls ≥ 0, max_moves ≥ {MIN_MOVES}")
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        self.width, self.height, self.n_boxes, self.n_walls = width, height, n_boxes, n_walls
        self.max_moves, self.step_penalty, self.end_on_deadlock = max_moves, step_penalty, end_on_deadlock
        self.board: Board | None = None
        self.optimal_moves = 0

    def _observation(self, header: str) -> str:
        assert self.board is not None
        return (f"{header}\n\n{self.board}\n\n{LEGEND}\n"
                f"Boxes on targets: {self.board.boxes_on_targets}/{len(self.board.boxes)}.\n"
                "Reply with one move: up, down, left or right (e.g. <action>left</action>).")

    def _info(self, **extra: Any) -> dict[str, Any]:
        assert self.board is not None
        return {"state_key": str(self.board), "boxes_on_targets": self.board.boxes_on_targets,
                "deadlock": self.board.deadlocked, **extra}

    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.board, self.optimal_moves = generate_level(
            self.np_random, width=self.width, height=self.height, n_boxes=self.n_boxes,
            n_walls=self.n_walls, max_moves=self.max_moves,
        )
        digest = hashlib.sha1(str(self.board).encode()).hexdigest()[:12]
        info = self._info(task_id=f"sokoban-{self.width}x{self.height}-b{self.n_boxes}-{digest}",
                          optimal_moves=self.optimal_moves)
        return self._observation("Push every box ($) onto a target (.)."), info

    def _step(self, action: str) -> StepResult:
        assert self.board is not None
        move, error = parse_move(action)
        if move is None:
            obs = self._observation(f"Invalid reply: {error}. Nothing moved.")
            return obs, 0.0 - self.step_penalty, False, False, self._info(parse_error=error, void=True, moved=False)
        before = self.board
        self.board, moved = before.move(move)
        if not moved:
            header = f"You cannot move {move}: the way is blocked."
        elif self.board.boxes != before.boxes:
            header = f"You pushed a box {move}."
        else:
            header = f"You moved {move}."
        info = self._info(moved=moved, move=move, success=self.board.solved)
        if self.board.solved:
            return f"{header} Every box is on a target: solved!\n\n{self.board}", 1.0 - self.step_penalty, True, False, info
        if self.end_on_deadlock and info["deadlock"]:
            obs = f"{header} A box is stuck in a corner: the level can no longer be solved.\n\n{self.board}"
            return obs, 0.0 - self.step_penalty, True, False, info
        return self._observation(header), 0.0 - self.step_penalty, False, False, info

    def legal_actions(self) -> list[str]:
        """The moves that change the board (all four if none does)."""
        if self.board is None:
            return list(MOVES)
        return [m for m in MOVES if self.board.move(m)[1]] or list(MOVES)

    def verify_action(self, action: str) -> tuple[float, bool, bool, str | None]:
        """VPR's oracle verifier in the current position (:func:`verify_move`); nothing moves."""
        if self.board is None:
            raise RuntimeError("verify_action before reset")
        return verify_move(self.board, action)

    def expert_action(self) -> str:
        """The next move of a move-optimal plan; any legal move when none exists."""
        plan = solve(self.board) if self.board is not None else None
        return plan[0] if plan else self.legal_actions()[0]
