"""SimpleTIR's void-turn judge (CREDIT.md §5.1), for tests and for envs that want its semantics.

The credit pipeline never parses text: it reads the per-turn ``void`` flag the env's parser set
during the rollout. This function is the reference definition of that flag for SimpleTIR parity.
"""

from __future__ import annotations

import re

__all__ = ["is_void_simpletir"]

_COMPLETE_BLOCK = re.compile(r"```(?:py|python)?\n(.*?)\n```", re.DOTALL)


def is_void_simpletir(text: str) -> bool:
    """Void iff the text has no *complete* fenced python block and no ``\\boxed{``."""
    return _COMPLETE_BLOCK.search(text) is None and "\\boxed{" not in text
