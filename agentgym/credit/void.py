"""SimpleTIR's void-turn judge (docs/credit.md#void-turns), for tests and for envs that want its semantics.

The credit pipeline never parses text: it reads the per-turn ``void`` flag the env's parser set
during the rollout. This function is the reference definition of that flag for SimpleTIR parity.

``agentgym/PythonTIR-v0`` flags a turn void when *it* cannot act on it (its parsers: thinking
stripped, a runnable block, a non-empty closed box). That disagrees with SimpleTIR's regex on
these cases (checked by tests/credit/test_credit_conventions.py):

====================================  ===============  ==================  =====================
turn text                             SimpleTIR regex  PythonTIR (default)  why
====================================  ===============  ==================  =====================
empty block ```` ```python\\n\\n``` ````   not void         void                 nothing to run
unclosed ``\\boxed{42``                 not void         void                 no answer to score
empty ``\\boxed{}``                     not void         void                 no answer to score
block only inside ``<think>``         not void         void                 thinking is not acted on
```` ```Python ```` (capital P)            void             not void             the block runs
``\\fbox{42}``                          void             not void             an answer, scored
====================================  ===============  ==================  =====================

Both are exposed: the env's flag by default, ``void_rule="simpletir"`` (a PythonTIR kwarg) to
set the flag by :func:`is_void_simpletir` for exact SimpleTIR parity of the loss mask.
"""

from __future__ import annotations

import re

__all__ = ["VOID_RULES", "is_void_simpletir"]

VOID_RULES = ("agentgym", "simpletir")
"""Values of PythonTIR's ``void_rule``: the env's own flag, or SimpleTIR's regex."""

_COMPLETE_BLOCK = re.compile(r"```(?:py|python)?\n(.*?)\n```", re.DOTALL)


def is_void_simpletir(text: str) -> bool:
    """Void iff the text has no *complete* fenced python block and no ``\\boxed{``."""
    return _COMPLETE_BLOCK.search(text) is None and "\\boxed{" not in text
