"""TextWorld text games (``agentgym/TextWorld-v0`` and its variants).

Modules: ``games`` (generation with the ``textworld`` package and the on-disk cache), ``env``
(the env). Nothing heavy is imported here: ``textworld`` loads when an env is built.
"""

from __future__ import annotations

__all__ = ["register_textworld_envs"]

_TYPES = {"cooking": "Cooking", "treasure_hunter": "TreasureHunter", "coin_collector": "CoinCollector"}
_LEVELS = {"easy": "Easy", "medium": "Medium", "hard": "Hard"}


def register_textworld_envs() -> None:
    """Register ``agentgym/TextWorld-v0`` (cooking, easy) and one id per game type and
    difficulty, e.g. ``agentgym/TextWorld-TreasureHunter-Hard-v0`` (idempotent)."""
    from agentgym.registry import register

    register(
        "agentgym/TextWorld-v0",
        "agentgym.envs.textworld.env:TextWorldEnv",
        max_turns=50,
        description="TextWorld games generated offline by the textworld package (kwargs game=cooking|"
        "treasure_hunter|coin_collector, difficulty=easy|medium|hard); admissible commands, "
        "state_key from world facts. Needs the textworld extra.",
    )
    for game, type_name in _TYPES.items():
        for difficulty, level_name in _LEVELS.items():
            register(
                f"agentgym/TextWorld-{type_name}-{level_name}-v0",
                "agentgym.envs.textworld.env:TextWorldEnv",
                kwargs={"game": game, "difficulty": difficulty},
                max_turns=50,
                description=f"TextWorld {game.replace('_', ' ')} games, {difficulty}. Needs the textworld extra.",
            )
