"""Export trajectories to and from Hugging Face ``datasets`` (the ``datasets`` extra).

One row per trajectory; turns are a list of structs. Free-form values (``info``, each turn's
``tool_calls``) are stored as JSON strings, because Arrow needs one schema for every row and
tool arguments differ from call to call.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from agentgym.trajectory import Trajectory

if TYPE_CHECKING:
    import datasets

__all__ = ["from_hf_dataset", "to_hf_dataset"]

_JSON_FIELDS = ("info",)
_JSON_TURN_FIELDS = ("tool_calls",)


def _row(trajectory: Trajectory) -> dict[str, Any]:
    row = trajectory.to_dict()
    for key in _JSON_FIELDS:
        row[key] = json.dumps(row[key], default=str)
    row["turns"] = [
        {**turn, **{key: json.dumps(turn[key]) for key in _JSON_TURN_FIELDS}} for turn in row["turns"]
    ]
    return row


def to_hf_dataset(trajectories: Iterable[Trajectory]) -> datasets.Dataset:
    """A ``datasets.Dataset`` with one row per trajectory."""
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError("exporting needs the 'datasets' extra: pip install 'agentgym-rl[datasets]'") from e
    return datasets.Dataset.from_list([_row(t) for t in trajectories])


def from_hf_dataset(dataset: Iterable[dict[str, Any]]) -> list[Trajectory]:
    """Trajectories back from rows written by :func:`to_hf_dataset`."""
    trajectories = []
    for row in dataset:
        row = dict(row)
        for key in _JSON_FIELDS:
            row[key] = json.loads(row[key])
        row["turns"] = [
            {**turn, **{key: json.loads(turn[key]) for key in _JSON_TURN_FIELDS}} for turn in row["turns"]
        ]
        trajectories.append(Trajectory.from_dict(row))
    return trajectories
