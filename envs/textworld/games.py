"""TextWorld games: generated offline with the ``textworld`` package, cached on disk.

A game is fixed by (game type, difficulty, seed). :func:`game_file` returns the compiled
``.z8`` file of that game, generating it on first use with TextWorld's own challenge makers
(the ones ``tw-make tw-cooking|tw-treasure_hunter|tw-coin_collector`` runs) and compiling it
with the Inform 7 compiler that ships in the ``textworld`` wheel. Generation costs seconds
per game (TextWorld compiles each game twice: once to check the walkthrough, once for real),
so games are cached under ``$AGENTGYM_CACHE/textworld`` (default ``~/.cache/agentgym``) and
a process never generates the same file twice. Use :func:`generate_games` to build a pool
ahead of training, in parallel processes.

The cache directory names the TextWorld version and a digest of the generator settings, so a
change to either makes new games instead of reusing stale ones. Files are written to a
temporary directory and renamed into place, so concurrent processes never read half a game.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import threading
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from agentgym.cache import default_cache_dir

__all__ = [
    "DIFFICULTIES", "GAME_TYPES", "INSTALL_HINT", "game_file", "games_dir", "generate_games", "import_textworld",
    "quiet_jericho", "settings_for", "textworld_lock",
]

INSTALL_HINT = "pip install 'agentgym-rl[textworld]'"

# TextWorld challenge name of each game type.
GAME_TYPES: dict[str, str] = {
    "cooking": "tw-cooking",
    "treasure_hunter": "tw-treasure_hunter",
    "coin_collector": "tw-coin_collector",
}

# Generator settings per (game type, difficulty), as tw-make's options name them.
# Cooking follows the skills of the First TextWorld Problems games: easy is a one-ingredient
# recipe in one room; medium adds rooms, closed containers and cooking; hard adds more rooms,
# a third ingredient and cutting. Treasure hunter levels 1-10/11-20/21-30 are its own 5/10/20
# room tiers. Coin collector: quest length 5/10/15 with 0/1/2 distractor rooms per quest room.
DIFFICULTIES: dict[str, dict[str, dict[str, Any]]] = {
    "cooking": {
        "easy": {"recipe": 1, "take": 1, "go": 1},
        "medium": {"recipe": 2, "take": 2, "go": 6, "open": True, "cook": True},
        "hard": {"recipe": 3, "take": 3, "go": 9, "open": True, "cook": True, "cut": True},
    },
    "treasure_hunter": {"easy": {"level": 5}, "medium": {"level": 15}, "hard": {"level": 25}},
    "coin_collector": {"easy": {"level": 5}, "medium": {"level": 110}, "hard": {"level": 215}},
}
_COOKING_DEFAULTS = {"recipe_seed": 0, "split": None, "open": False, "cook": False, "cut": False, "drop": False}

# TextWorld is not thread-safe where it parses its logic files (a shared tatsu parser), which
# both generating and loading a game do; the rollout engine resets envs in worker threads.
textworld_lock = threading.RLock()


def import_textworld() -> Any:
    """``import textworld``, or an ImportError that names the extra to install."""
    try:
        import textworld
        import textworld.challenges
    except ImportError as e:
        raise ImportError(f"TextWorld envs need the 'textworld' package: {INSTALL_HINT}") from e
    return textworld


@contextlib.contextmanager
def quiet_jericho() -> Iterator[None]:
    """Hide Jericho's "not fully supported" warning: it only means Jericho cannot read the score
    of a TextWorld game, which TextWorld's own state tracking reports instead. The filter is
    also installed process-wide, because ``catch_warnings`` is not thread-safe and games load
    in the rollout engine's worker threads."""
    from jericho.jericho import UnsupportedGameWarning

    warnings.filterwarnings("ignore", category=UnsupportedGameWarning)
    with warnings.catch_warnings():  # also under a caller's simplefilter("always")
        warnings.simplefilter("ignore", UnsupportedGameWarning)
        yield


def settings_for(game: str, difficulty: str) -> dict[str, Any]:
    """tw-make settings of a game type and difficulty (raises on unknown names)."""
    if game not in DIFFICULTIES:
        raise ValueError(f"game must be one of {sorted(DIFFICULTIES)}, got {game!r}")
    if difficulty not in DIFFICULTIES[game]:
        raise ValueError(f"difficulty must be one of {list(DIFFICULTIES[game])}, got {difficulty!r}")
    settings = dict(DIFFICULTIES[game][difficulty])
    return {**_COOKING_DEFAULTS, **settings} if game == "cooking" else settings


def games_dir(game: str, difficulty: str, cache_dir: str | Path | None = None) -> Path:
    """Where the games of one variant live: the TextWorld version and the settings are in the name."""
    textworld = import_textworld()
    settings = settings_for(game, difficulty)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    root = Path(cache_dir or default_cache_dir()) / "textworld" / f"tw{textworld.__version__}"
    return root / f"{game}-{difficulty}-{digest}"


def _generate(game: str, difficulty: str, seed: int, target: Path) -> None:
    """Make and compile one game into ``target`` (``.z8`` plus the ``.json`` TextWorld reads)."""
    textworld = import_textworld()
    from textworld.generator import compile_game
    from textworld.generator.game import GameOptions

    make = textworld.challenges.CHALLENGES[GAME_TYPES[game]][1]
    target.parent.mkdir(parents=True, exist_ok=True)
    with textworld_lock, quiet_jericho(), tempfile.TemporaryDirectory(dir=target.parent, prefix=".tmp-") as tmp:
        options = GameOptions()
        options.seeds = seed
        options.path = str(Path(tmp) / target.name)
        with warnings.catch_warnings():  # big worlds exhaust a grammar's variants; the text is still fine
            warnings.simplefilter("ignore", textworld.GenerationWarning)
            made = make(settings_for(game, difficulty), options)
        compile_game(made, options)
        for ext in (".json", ".z8"):  # the .z8 last: its presence means the game is complete
            os.replace(Path(tmp) / target.with_suffix(ext).name, target.with_suffix(ext))


def game_file(game: str, difficulty: str, seed: int, cache_dir: str | Path | None = None) -> Path:
    """The ``.z8`` file of one game, generated and cached on first use."""
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"a game seed must be an int >= 0, got {seed!r}")
    target = games_dir(game, difficulty, cache_dir) / f"{game}-{difficulty}-{seed}.z8"
    if not (target.exists() and target.with_suffix(".json").exists()):
        _generate(game, difficulty, seed, target)
    return target


def _game_file_str(args: tuple[str, str, int, str | None]) -> str:
    return str(game_file(*args))


def generate_games(
    game: str, difficulty: str, seeds: Iterable[int], *, cache_dir: str | Path | None = None, workers: int = 1
) -> list[Path]:
    """Generate (or find cached) the games of ``seeds``, in ``workers`` processes."""
    cache = str(cache_dir) if cache_dir is not None else None
    jobs = [(game, difficulty, int(s), cache) for s in seeds]
    if workers <= 1:
        return [Path(_game_file_str(job)) for job in jobs]
    with ProcessPoolExecutor(workers) as pool:
        return [Path(p) for p in pool.map(_game_file_str, jobs)]

