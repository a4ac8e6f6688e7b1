"""Built-in environments. Importing this package registers them (``import agentgym`` does).

Env modules are imported only when an env is built, so listing envs stays cheap.
"""

from __future__ import annotations

__all__: list[str] = []  # importing registers the built-in envs; the env modules are the API

from agentgym.registry import register

from .code import register_code_envs
from .search import register_search_envs
from .terminal import register_terminal_envs
from .textworld import register_textworld_envs
from .toolworld import register_toolworld_envs
from .webshop import register_webshop_envs

register(
    "agentgym/Bifurcation-v0",
    "agentgym.envs.bifurcation:BifurcationEnv",
    max_turns=None,  # the env defaults to 2 × horizon, so a horizon override needs no max_turns
    description="Credit assignment (docs/credit.md#bifurcation): one decisive turn t* of H, delayed 0/1 reward; "
    "max_turns 2×H.",
)
register(
    "agentgym/Sokoban-v0",
    "agentgym.envs.sokoban:SokobanEnv",
    max_turns=40,
    description="Text Sokoban on small reverse-play (solvable) boards; state_key is the board.",
)
register_search_envs()
register_code_envs()
register_toolworld_envs()
register_textworld_envs()
register_webshop_envs()
register_terminal_envs()
