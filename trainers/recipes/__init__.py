"""The bundled recipes: ``agentgym train NAME`` finds NAME.yaml here (light: read by ``train --help``)."""

from __future__ import annotations

import re
from pathlib import Path

RECIPES_DIR = Path(__file__).parent


def summaries() -> dict[str, str]:
    """Each bundled recipe's name → the first sentence of its leading comment, for ``train --help``."""
    out = {}
    for path in sorted(RECIPES_DIR.glob("*.yaml")):
        lines = path.read_text().splitlines()
        comment = " ".join(line.lstrip("#").strip() for line in lines[:next(
            (i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))])
        out[path.stem] = re.split(r"(?<=\.)\s", comment, maxsplit=1)[0]
    return out
