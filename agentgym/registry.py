"""Env registry: Gymnasium-style ids (``agentgym/Name-v0``), specs as plain data.

A spec is JSON-serialisable so a worker process (or a Ray actor) can rebuild the env from it
without sharing this process's registry. Third-party packages register through the entry-point
group ``agentgym.envs``, loaded by ``import agentgym`` (and again when an id is missing, for
plugins installed since); envs can also be declared in YAML. Every registered id is also
registered with Gymnasium, so ``gymnasium.make`` works too, plugin ids included.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import json
import re
import sys
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import gymnasium

from agentgym.core import TextEnv
from agentgym.errors import (
    AlreadyRegisteredError,
    ConfigError,
    InfraError,
    NameNotFoundError,
    UnknownEnvError,
    VersionNotFoundError,
)

__all__ = ["EnvSpec", "UnknownEnvError", "check_env_config", "load_yaml", "make", "register", "registry", "spec",
           "unregister"]

ENTRY_POINT_GROUP = "agentgym.envs"
_ID_PATTERN = re.compile(r"^(?:[\w:.-]+/)?[\w:.-]+-v\d+$")
_VERSION = re.compile(r"-v\d+$")
# ``verifiers/<module>-v0``: the verifiers env of an importable module, registered on first use
# (agentgym.envs.verifiers). Not ``verifiers:<module>``: gymnasium.make reads ``a:b`` as "import a, make b".
_VERIFIERS_ID = re.compile(r"^verifiers/([A-Za-z_][\w.-]*)-v0$")
# ``verifiers-v1/<taskset module>-v0``: a verifiers 0.4 (v1) taskset played by its harness (agentgym.envs.verifiers_v1)
_VERIFIERS_V1_ID = re.compile(r"^verifiers-v1/([A-Za-z_][\w.-]*)-v0$")


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """Everything needed to build an env, as plain data.

    ``entry_point`` is ``"module:attr"`` where attr is a TextEnv subclass or a factory.
    """

    id: str
    entry_point: str
    kwargs: dict[str, Any] = dataclasses.field(default_factory=dict)
    max_turns: int | None = None
    description: str = ""

    def make(self, **overrides: Any) -> TextEnv:
        module_name, _, attr = self.entry_point.partition(":")
        if not attr:
            raise ValueError(f"entry_point must look like 'module:attr', got {self.entry_point!r}")
        factory = getattr(importlib.import_module(module_name), attr)
        kwargs = {**self.kwargs, **overrides}
        kwargs.setdefault("max_turns", self.max_turns)
        env = factory(**kwargs)
        env.agentgym_spec = dataclasses.replace(self, kwargs=kwargs, max_turns=kwargs["max_turns"])
        return env

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EnvSpec:
        return cls(**json.loads(text))


registry: dict[str, EnvSpec] = {}
_loaded_entry_points: set[str] = set()


def _entry_point_string(entry_point: str | Callable[..., TextEnv]) -> str:
    if isinstance(entry_point, str):
        return entry_point
    qualname = getattr(entry_point, "__qualname__", "")
    if "<" in qualname or not qualname:
        raise ValueError("entry_point must be importable (module-level class or function)")
    return f"{entry_point.__module__}:{qualname}"


def register(
    id: str,
    entry_point: str | Callable[..., TextEnv],
    *,
    kwargs: dict[str, Any] | None = None,
    max_turns: int | None = None,
    description: str = "",
    force: bool = False,
) -> EnvSpec:
    """Register an env id. Re-registering an id raises unless ``force`` (or the spec is equal)."""
    if not _ID_PATTERN.match(id):
        raise ValueError(f"env id must look like 'namespace/Name-v0', got {id!r}")
    new = EnvSpec(id, _entry_point_string(entry_point), dict(kwargs or {}), max_turns, description)
    json.dumps(new.kwargs)  # fail now, not in a worker, if kwargs are not plain data
    old = registry.get(id)
    if old is not None and old != new and not force:
        raise AlreadyRegisteredError(f"env id {id!r} is already registered (pass force=True to replace it)")
    registry[id] = new
    gym_spec = gymnasium.registry.get(id)
    # Our Gymnasium entry looks the id up at call time, so it never goes stale; registering it
    # again would only make Gymnasium warn on every idempotent or forced re-register.
    if gym_spec is None or not isinstance(gym_spec.entry_point, _GymnasiumEntry):
        gymnasium.register(id=id, entry_point=_GymnasiumEntry(id), disable_env_checker=True)
    return new


class _GymnasiumEntry:
    """Callable that lets ``gymnasium.make(id, **kw)`` build the env through our spec."""

    def __init__(self, env_id: str):
        self.env_id = env_id

    def __call__(self, **kwargs: Any) -> TextEnv:
        return make(self.env_id, **kwargs)


def _load_entry_points() -> None:
    """Load the ``agentgym.envs`` plugins not loaded yet (``import agentgym`` does it, so that
    ``gymnasium.make`` sees plugin ids too). A plugin that fails to load is skipped with a
    warning: one broken package must not take every env down with it."""
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = f"{ep.name}={ep.value}"
        module = sys.modules.get(ep.module)
        if key in _loaded_entry_points or getattr(getattr(module, "__spec__", None), "_initializing", False):
            continue  # loaded, or that plugin is importing agentgym right now (it registers when done)
        _loaded_entry_points.add(key)
        try:
            loaded = ep.load()  # importing the module registers its envs
            if callable(loaded) and not isinstance(loaded, type):
                loaded()  # or the entry point is a function that registers them
        except Exception as e:  # noqa: BLE001 — any error in someone else's package
            warnings.warn(f"skipping env plugin {ep.name!r} ({ep.value}): {type(e).__name__}: {e}",
                          RuntimeWarning, stacklevel=2)


def unregister(id: str) -> EnvSpec:
    """Remove ``id`` from agentgym's registry and Gymnasium's; return its spec (unknown: raises)."""
    removed = spec(id)
    del registry[id]
    gym_spec = gymnasium.registry.get(id)
    if gym_spec is not None and isinstance(gym_spec.entry_point, _GymnasiumEntry):
        del gymnasium.registry[id]
    return removed


def spec(id: str) -> EnvSpec:
    """The spec of ``id``. Unknown ids raise :class:`VersionNotFoundError` (listing the name's
    registered versions) when only the version is wrong, else :class:`NameNotFoundError` (with
    close matches). ``verifiers/<module>-v0`` is registered on first use: the verifiers env that
    the module's ``load_environment()`` builds (:mod:`agentgym.envs.verifiers`);
    ``verifiers-v1/<taskset module>-v0`` a verifiers v1 taskset (:mod:`agentgym.envs.verifiers_v1`)."""
    if id not in registry:
        _load_entry_points()
    if id not in registry and (found := _VERIFIERS_ID.match(id)):
        register(id, "agentgym.envs.verifiers:VerifiersEnv", kwargs={"environment": found.group(1)},
                 description=f"the verifiers env of module {found.group(1)} (its load_environment())")
    if id not in registry and (found := _VERIFIERS_V1_ID.match(id)):
        register(id, "agentgym.envs.verifiers_v1:VerifiersV1Env", kwargs={"taskset": found.group(1)},
                 description=f"the verifiers v1 taskset {found.group(1)}, played by its harness")
    if id not in registry:
        name = _VERSION.sub("", id)
        versions = sorted(k for k in registry if _VERSION.sub("", k) == name)
        if versions:
            raise VersionNotFoundError(f"No version {id!r} registered; {name!r} has: {', '.join(versions)}",
                                       env_id=id, suggestions=versions)
        close = difflib.get_close_matches(id, list(registry), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise NameNotFoundError(f"No env registered as {id!r}.{hint} (see `agentgym envs list`)",
                                env_id=id, suggestions=close)
    return registry[id]


def all_specs() -> list[EnvSpec]:
    """Every spec: built-ins, entry points and whatever was registered in this process."""
    _load_entry_points()
    return [registry[k] for k in sorted(registry)]


def make(id: str | EnvSpec, **kwargs: Any) -> TextEnv:
    """Build an env from an id or a spec; ``kwargs`` override the spec's kwargs."""
    env_spec = id if isinstance(id, EnvSpec) else spec(id)
    return env_spec.make(**kwargs)


def check_env_config(env_spec: EnvSpec, overrides: dict[str, Any] | None = None, *, seed: int = 0) -> TextEnv:
    """Build ``env_spec`` with ``overrides`` and reset it to the task of ``seed``; return the env
    (the caller closes it). An error is raised as :class:`ConfigError` naming the kwargs in force
    (the spec's and the overrides), so a bad kwarg stops a run before its first episode instead of
    failing every episode as if the infrastructure had. An :class:`InfraError` from the reset is
    the infrastructure's, not the config's: it is raised as it is."""
    overrides = dict(overrides or {})
    effective = {**env_spec.kwargs, **overrides}
    where = f"kwargs {effective}" + (f" (overrides: {overrides})" if overrides and env_spec.kwargs else "")
    try:
        env = env_spec.make(**overrides)
    except Exception as e:  # noqa: BLE001 — any construction error is a configuration error here
        raise ConfigError(f"env {env_spec.id} could not be built with {where}: {type(e).__name__}: {e}") from e
    try:
        env.reset(seed=seed)
    except InfraError:
        env.close()
        raise
    except Exception as e:  # noqa: BLE001
        env.close()
        raise ConfigError(f"env {env_spec.id} was built but could not be reset (seed {seed}) with {where}: "
                          f"{type(e).__name__}: {e}") from e
    return env


def _check_signature(entry_point: Any, kwargs: dict[str, Any], where: str) -> None:
    """Check, when an env is declared, that its entry point imports and takes these kwargs by name
    (their values are checked when a run builds the env: :func:`check_env_config`)."""
    if not isinstance(entry_point, str) or ":" not in entry_point:
        raise ConfigError(f"{where}: entry_point must look like 'module:attr', got {entry_point!r}")
    module_name, _, attr = entry_point.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"{where}: entry point {entry_point!r} cannot be loaded: {type(e).__name__}: {e}") from None
    try:
        inspect.signature(factory).bind_partial(**kwargs)
    except TypeError as e:
        raise ConfigError(f"{where}: {entry_point} does not take kwargs {kwargs}: {e}") from None
    except ValueError:  # no signature to read (a builtin): the run will tell
        pass


def load_yaml(path: str | Path) -> list[EnvSpec]:
    """Register the envs declared in a YAML file.

    The file holds ``envs:`` (or a bare list) of mappings with ``id``, ``entry_point`` and
    optionally ``kwargs``, ``max_turns``, ``description``. An entry may instead name an
    existing ``base`` id and override its kwargs, to declare variants without code.
    """
    import yaml

    data = yaml.safe_load(Path(path).read_text())
    entries = data.get("envs", []) if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected a list of envs under 'envs:'")
    specs = []
    for entry in entries:
        entry = dict(entry)
        if "base" in entry:
            base = spec(entry.pop("base"))
            entry.setdefault("entry_point", base.entry_point)
            changed = entry.get("kwargs", {})
            entry["kwargs"] = {**base.kwargs, **changed}
            entry.setdefault("max_turns", base.max_turns)
            # The base's description would describe another env; say what differs instead.
            entry.setdefault("description", f"variant of {base.id}" + (f" with {changed}" if changed else ""))
        unknown = set(entry) - {"id", "entry_point", "kwargs", "max_turns", "description"}
        if unknown:
            raise ConfigError(f"{path}: unknown keys {sorted(unknown)} in env {entry.get('id')!r}")
        if not isinstance(entry.get("kwargs", {}), dict):
            raise ConfigError(f"{path}: 'kwargs' of env {entry.get('id')!r} must be a mapping, got {entry['kwargs']!r}")
        _check_signature(entry.get("entry_point"), entry.get("kwargs", {}), f"{path}: env {entry.get('id')!r}")
        specs.append(register(entry.pop("id"), entry.pop("entry_point"), **entry))
    return specs
