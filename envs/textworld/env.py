"""``agentgym/TextWorld-v0``: TextWorld text games (cooking, treasure hunter, coin collector).

Games come from TextWorld's own generators (see :mod:`.games`: generated offline, cached on
disk) and are played by TextWorld itself: the compiled Inform 7 game runs in Jericho's
Z-machine, which writes the text, while TextWorld's logic engine tracks the world state, the
admissible commands, the score and the winning policy.

**Tasks.** An env plays a pool of ``num_games`` games, TextWorld seeds ``first_game …
first_game + num_games - 1`` (disjoint ranges make train/eval splits). ``reset(seed=s)``
picks a game with the seeded rng, so the same seed gives the same game; ``options={"game": i}``
picks game ``i`` of the pool. A game is generated the first time it is played.

**Actions.** One admissible command per turn, e.g. ``go north`` or ``take carrot from
fridge``, matched case- and whitespace-insensitively, after the shared action rule of every
built-in env (:func:`agentgym.parsers.extract_action`): reasoning in ``<think>…</think>`` is
dropped, and one ``<action>…</action>`` block (text around it ignored) or an ``Action:`` prefix
is unwrapped; two ``<action>`` blocks are an invalid turn, never "the last counts". Anything
else is a ``parse_error`` turn: the game does not move and the observation lists the
admissible commands. ``info["admissible_commands"]`` and ``legal_actions()`` give them too.

**Reward.** ``reward="score"`` (default): the change of the game's score divided by its
maximum score, every turn, so a won game sums to 1.0 (TextWorld wins exactly when every
quest's points are in). ``reward="win"``: 1.0 on the winning turn, else 0. The episode
terminates when the game is won or lost (cooking games are lost by, e.g., eating the wrong
thing); ``info`` carries ``won``, ``lost``, ``score`` and ``max_score``.

**state_key.** ``"<room> | <inventory> | <digest of all world facts>"`` from TextWorld's
state (its logical facts such as ``open(fridge)`` or ``in(carrot, I)``), never from the text:
TextWorld varies its prose, and two rollouts that reach the same world by different routes
(or that look around in between) are the same decision situation for GiGPO.

**Expert.** ``expert_action()`` replays the game's walkthrough while the episode has followed
it, skipping walkthrough commands that are not admissible when their turn comes (TextWorld's
cooking walkthroughs repeat, e.g., ``open fridge`` for a fridge that is already open: a no-op
in the world); after a deviation it follows TextWorld's winning policy from the current state.
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

from agentgym.core import StepResult, TextEnv
from agentgym.parsers import extract_action

from .games import game_file, import_textworld, quiet_jericho, settings_for, textworld_lock

__all__ = ["SYSTEM_PROMPT", "TextWorldEnv", "clean_text", "command_lookup", "parse_command", "score_reward"]

SYSTEM_PROMPT = (
    "You are playing a text adventure game. Each turn you read what happened and the list of "
    "admissible commands, then reply with exactly one of those commands, e.g. "
    "<action>go north</action>. You may think first inside <think>...</think>; give exactly one <action> block."
)
_BANNER_LINE = re.compile(r"^[\s_|\\/$]*$")
_MAX_ACTION_CHARS = 4000
_MAX_LOADED_GAMES = 8  # loaded games kept per env (a reload costs ~0.5 s; a reset ~30 ms)


def clean_text(text: str) -> str:
    """TextWorld's output without the ASCII-art banner, the status-bar prompt and the
    end-of-game restart menu, with runs of blank lines collapsed."""
    lines = []
    for line in text.split("\n"):
        if line.lstrip().startswith(">"):  # the prompt line carries the status bar; nothing follows
            break
        if "$$" in line or (line.strip() and _BANNER_LINE.match(line)):
            continue
        if line.startswith("Would you like to RESTART"):
            break
        lines.append(line.rstrip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _normalize(command: str) -> str:
    return " ".join(command.lower().split())


def command_lookup(admissible: Iterable[str]) -> dict[str, str]:
    """Normalised form -> admissible command (what :func:`parse_command` matches against)."""
    return {_normalize(c): c for c in admissible}


def parse_command(action: str, admissible: Mapping[str, str] | Iterable[str]) -> tuple[str | None, str | None]:
    """``(command, None)`` when ``action`` names an admissible command, else ``(None, error)``.
    ``admissible`` is the command list or its :func:`command_lookup`."""
    extracted = extract_action(action)
    if extracted.error is not None:
        return None, str(extracted.error)
    if len(extracted.text) > _MAX_ACTION_CHARS:
        return None, f"the action is {len(extracted.text)} characters; reply with one command"
    lookup = admissible if isinstance(admissible, Mapping) else command_lookup(admissible)
    wanted = _normalize(extracted.text)
    if wanted in lookup:
        return lookup[wanted], None
    if not wanted:
        return None, "the reply names no command"
    shown = wanted if len(wanted) <= 60 else wanted[:57] + "..."
    return None, f"{shown!r} is not an admissible command"



def score_reward(paid: float, score: int, before: int, max_score: int, won: bool) -> float:
    """The turn's reward in ``reward="score"`` mode: the share of the maximum score gained, paid
    as the difference between where the episode's return should now be (``score / max_score``,
    exactly 1.0 once won) and what was ``paid`` so far. So the rewards, summed in order (as the
    engine sums them), of a won game are exactly 1.0: ten increments of 0.1 sum to
    0.9999999999999999, and ``paid + (1.0 - paid) == 1.0`` holds for every float ``paid`` in [0, 1]."""
    if score == before and not won:
        return 0.0
    target = 1.0 if won else score / max(1, max_score)
    return target - paid

class TextWorldEnv(TextEnv):
    """TextWorld games generated by the textworld package; state_key from its world facts."""

    system_prompt = SYSTEM_PROMPT

    def __init__(
        self,
        *,
        game: str = "cooking",
        difficulty: str = "easy",
        num_games: int = 100,
        first_game: int = 0,
        reward: str = "score",
        list_commands: bool = True,
        cache_dir: str | None = None,
        max_turns: int | None = 50,
        render_mode: str | None = None,
    ):
        settings_for(game, difficulty)  # validates the names
        import_textworld()  # fail at construction, not at the first reset
        if num_games < 1 or first_game < 0:
            raise ValueError("num_games must be >= 1 and first_game >= 0")
        if reward not in ("score", "win"):
            raise ValueError(f"reward must be 'score' or 'win', got {reward!r}")
        super().__init__(max_turns=max_turns, render_mode=render_mode)
        self.game, self.difficulty = game, difficulty
        self.num_games, self.first_game = num_games, first_game
        self.num_tasks = num_games
        self.reward_mode, self.list_commands, self.cache_dir = reward, list_commands, cache_dir
        self._loaded: OrderedDict[int, Any] = OrderedDict()  # game seed -> textworld env
        self._env: Any = None
        self._state: Any = None
        self.game_seed = first_game
        self.history: list[str] = []
        self.walkthrough: list[str] = []
        self._next_step: int | None = 0  # walkthrough position while the episode follows it, else None
        self._actions: list[Any] = []  # TextWorld actions of the episode (None: no world change)
        self._planner: Any = None  # quest-tracking GameProgression, built when the expert needs it
        self._planned = 0  # how many of self._actions the planner has applied
        self._inform7: Any = None
        self._key = ""
        self._lookup: dict[str, str] = {}

    # -- games ----------------------------------------------------------------------------
    def _load(self, game_seed: int) -> Any:
        env = self._loaded.pop(game_seed, None)
        if env is None:
            textworld = import_textworld()
            # No policy_commands: asking for them makes TextWorld re-plan the winning policy on
            # every step; the expert plans on demand instead (see expert_action).
            infos = textworld.EnvInfos(admissible_commands=True, score=True, max_score=True, won=True,
                                       lost=True, game=True, objective=True)
            path = game_file(self.game, self.difficulty, game_seed, self.cache_dir)
            with textworld_lock, quiet_jericho():
                env = textworld.start(str(path), infos)
            env.seed(0)  # the Z-machine's rng; Jericho's default (-1) follows the clock
            if len(self._loaded) >= _MAX_LOADED_GAMES:
                _, oldest = self._loaded.popitem(last=False)
                oldest.close()
        self._loaded[game_seed] = env
        return env

    def _pick(self, options: dict[str, Any]) -> int:
        choice = options.get("game")
        if choice is None:
            return self.pool_index(self.num_games)
        if isinstance(choice, int) and not isinstance(choice, bool) and 0 <= choice < self.num_games:
            return choice
        raise ValueError(f"options['game'] must be an int in [0, {self.num_games}), got {choice!r}")

    # -- observation and state ----------------------------------------------------------------
    @property
    def admissible(self) -> list[str]:
        return list(self._state["admissible_commands"]) if self._state is not None else []

    def legal_actions(self) -> list[str]:
        """The admissible commands of the current state (TextWorld's list, sorted)."""
        return self.admissible

    def _observation(self, text: str) -> str:
        if not self.list_commands or self._state["won"] or self._state["lost"]:
            return text
        return f"{text}\n\nAdmissible commands: {', '.join(self.admissible)}."

    def _state_key(self) -> str:
        facts = sorted(str(f) for f in self._state["_facts"])
        room, inventory = "?", []
        for fact in self._state["_facts"]:
            names = [v.name for v in fact.arguments]
            if fact.name == "at" and names[0] == "P":
                room = names[1]
            elif fact.name == "in" and names[1] == "I":
                inventory.append(names[0])
        digest = hashlib.sha1("\n".join(facts).encode()).hexdigest()[:16]
        return f"{room} | {', '.join(sorted(inventory))} | {digest}"

    def _info(self) -> dict[str, Any]:
        state = self._state
        return {
            "state_key": self._key,
            "admissible_commands": self.admissible,
            "score": int(state["score"]),
            "max_score": int(state["max_score"]),
            "won": bool(state["won"]),
            "lost": bool(state["lost"]),
        }

    # -- the contract -------------------------------------------------------------------
    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        index = self._pick(options)
        self.game_seed = self.first_game + index
        self._env = self._load(self.game_seed)
        self._state = self._env.reset()
        self._key, self._lookup = self._state_key(), command_lookup(self.admissible)
        self.history, self._actions, self._planner, self._planned = [], [], None, 0
        self._paid = 0.0  # the rewards of this episode so far, summed in order as the engine sums them
        self.walkthrough = list(self._state["game"].walkthrough or [])
        self._next_step = 0
        info = {**self._info(), "task_id": f"{self.game}-{self.difficulty}-{self.game_seed}",
                "objective": self._state["objective"]}
        return self._observation(clean_text(self._state.feedback)), info

    def _step(self, action: str) -> StepResult:
        command, error = parse_command(action, self._lookup)
        if command is None:
            assert error is not None
            obs = self._observation(f"Invalid action: {error}. Reply with one admissible command.")
            return obs, 0.0, False, False, {**self._info(), "parse_error": error, "void": True}
        if self._next_step is not None:  # still on the walkthrough after this command?
            expected = self._walkthrough_index()
            self._next_step = expected + 1 if expected is not None and self.walkthrough[expected] == command else None
        before = int(self._state["score"])
        self._state, _, _ = self._env.step(command)
        self._key, self._lookup = self._state_key(), command_lookup(self.admissible)
        self.history.append(command)
        self._actions.append(self._state["_last_action"])
        info = self._info()
        info["success"] = info["won"]
        if self.reward_mode == "win":
            reward = 1.0 if info["won"] else 0.0
        else:
            reward = score_reward(self._paid, info["score"], before, info["max_score"], info["won"])
            self._paid += reward
        terminated = info["won"] or info["lost"]
        return self._observation(clean_text(self._state.feedback)), reward, terminated, False, info

    def _walkthrough_index(self) -> int | None:
        """Index of the walkthrough's next admissible command, or None when it is used up."""
        admissible = set(self._lookup.values())
        for index in range(self._next_step or 0, len(self.walkthrough)):
            if self.walkthrough[index] in admissible:
                return index
        return None

    def expert_action(self) -> str:
        """The walkthrough's next command, or TextWorld's winning policy after a deviation."""
        if self._next_step is not None and (index := self._walkthrough_index()) is not None:
            return self.walkthrough[index]
        policy = self._winning_commands()
        return policy[0] if policy else "look"

    def _winning_commands(self) -> list[str]:
        """TextWorld's winning policy from the current state (its quest-tracking planner,
        replaying this episode's actions), as commands; empty when the game can't be won."""
        if self._state is None:
            return []
        from textworld.generator.game import GameProgression
        from textworld.generator.inform7 import Inform7Game

        game = self._state["game"]
        if self._planner is None:
            with textworld_lock:
                self._planner, self._planned = GameProgression(game, track_quests=True), 0
                self._inform7 = Inform7Game(game)  # turns logic actions into commands
        for action in self._actions[self._planned:]:
            if action is not None:
                self._planner.update(action)
        self._planned = len(self._actions)
        policy = self._planner.winning_policy
        return self._inform7.gen_commands_from_actions(policy) if policy else []

    def close(self) -> None:
        while self._loaded:
            self._loaded.popitem()[1].close()
        self._env = self._state = None
