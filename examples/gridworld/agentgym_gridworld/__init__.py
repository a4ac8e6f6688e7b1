"""A complete user env: walk to the goal of a small text grid (``gridworld/Grid-v0``).

Everything an env can offer agentgym is here, with the types it must return:

- ``system_prompt`` (str): the rules, sent once as the system message of every episode.
- ``_reset(options) -> (observation: str, info: dict)``: pick the task with ``self.np_random``
  (seeded by ``reset(seed=...)``, so a seed is a task). ``info["task_id"]`` (str) names the task:
  it is stored on the trajectory, and episodes with the same seed form a GRPO/GiGPO group.
  ``info["state_key"]`` (hashable, e.g. a tuple) says "the same decision situation": GiGPO pools
  the turns of a group that share it, so equal states must give equal keys.
- ``_step(action: str) -> (observation, reward: float, terminated, truncated, info)``. A malformed
  action never raises: it gets an observation the agent can read and ``info["parse_error"]``.
- ``expert_action() -> str``: the scripted policy (``--policy scripted``) and the trainer's SFT warm
  start (``sft.steps > 0``) imitate it, so training a small model from scratch needs it.
- ``legal_actions() -> list[str]``: the random policy (``--policy random``) samples from it.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from agentgym import register
from agentgym.core import StepResult, TextEnv

MOVES = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}


class GridWorldEnv(TextEnv):
    """Walk from ``A`` to ``G`` on a ``size``×``size`` grid with ``walls`` random walls (``#``)."""

    system_prompt = ("You are in a grid world. A is you, G is the goal, # is a wall, . is free. "
                     "Answer with one move: up, down, left or right.")
    threaded_async = False  # a step takes microseconds: no worker thread needed

    def __init__(self, *, size: int = 5, walls: int = 4, max_turns: int | None = None,
                 render_mode: str | None = None):
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        if size < 2 or not 0 <= walls <= size * size - 2:
            raise ValueError(f"need size >= 2 and 0 <= walls <= size*size - 2, got size={size}, walls={walls}")
        self.size, self.walls = size, walls
        self.wall_cells: frozenset[tuple[int, int]] = frozenset()
        self.agent = self.goal = (0, 0)

    # -- the task ---------------------------------------------------------------------
    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        cells = [(r, c) for r in range(self.size) for c in range(self.size)]
        while True:  # draw until the goal is reachable (a few draws at most on small grids)
            picks = self.np_random.choice(len(cells), size=self.walls + 2, replace=False)
            self.agent, self.goal = cells[picks[0]], cells[picks[1]]
            self.wall_cells = frozenset(cells[i] for i in picks[2:])
            if self._path() is not None:
                break
        return self._render(), {"task_id": f"grid{self.size}-{self._layout()}", "state_key": self._state()}

    def _step(self, action: str) -> StepResult:
        move = action.strip().lower().rstrip(".")
        if move not in MOVES:
            obs = f"'{action.strip()[:40]}' is not a move; answer up, down, left or right.\n{self._render()}"
            return obs, 0.0, False, False, {"parse_error": "not a move", "state_key": self._state()}
        dr, dc = MOVES[move]
        r, c = self.agent[0] + dr, self.agent[1] + dc
        if 0 <= r < self.size and 0 <= c < self.size and (r, c) not in self.wall_cells:
            self.agent = (r, c)
        won = self.agent == self.goal
        return ("You reached the goal." if won else self._render()), float(won), won, False, {
            "state_key": self._state(), "success": won}

    # -- what the policies use ------------------------------------------------------------
    def expert_action(self) -> str:
        """The first move of a shortest path (breadth-first search)."""
        path = self._path()
        return path[0] if path else "up"

    def legal_actions(self) -> list[str]:
        return list(MOVES)

    # -- helpers ----------------------------------------------------------------------------
    def _state(self) -> tuple[str, tuple[int, int]]:
        return self._layout(), self.agent

    def _layout(self) -> str:
        return "".join("#" if (r, c) in self.wall_cells else "G" if (r, c) == self.goal else "."
                       for r in range(self.size) for c in range(self.size))

    def _render(self) -> str:
        def cell(r: int, c: int) -> str:
            if (r, c) == self.agent:
                return "A"
            return "#" if (r, c) in self.wall_cells else "G" if (r, c) == self.goal else "."

        return "\n".join("".join(cell(r, c) for c in range(self.size)) for r in range(self.size))

    def _path(self) -> list[str] | None:
        seen, queue = {self.agent}, deque([(self.agent, [])])
        while queue:
            (r, c), moves = queue.popleft()
            if (r, c) == self.goal:
                return moves
            for name, (dr, dc) in MOVES.items():
                nxt = (r + dr, c + dc)
                if (0 <= nxt[0] < self.size and 0 <= nxt[1] < self.size and nxt not in self.wall_cells
                        and nxt not in seen):
                    seen.add(nxt)
                    queue.append((nxt, [*moves, name]))
        return None


register("gridworld/Grid-v0", "agentgym_gridworld:GridWorldEnv", kwargs={"size": 5, "walls": 4}, max_turns=20,
         description="Example user env: walk to the goal of a 5x5 text grid")
register("gridworld/Grid3-v0", "agentgym_gridworld:GridWorldEnv", kwargs={"size": 3, "walls": 1}, max_turns=10,
         description="Example user env: walk to the goal of a 3x3 text grid")
