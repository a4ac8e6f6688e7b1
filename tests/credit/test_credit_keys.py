"""Anchor keys are compared by content with their type (issue 13 item 1), in one place
(``agentgym.trajectory.canonical_key``) used by both batch builders and the rollout engine."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from agentgym.core import TextEnv
from agentgym.credit import TurnBatch, anchor_groups, gigpo
from agentgym.policies.simple import ScriptedPolicy
from agentgym.registry import EnvSpec
from agentgym.rollout import WorkItem, rollout
from agentgym.trajectory import KEY_TAG, canonical_key


def _board(flip: tuple[int, int] | None = None) -> np.ndarray:
    b = np.zeros((40, 40), dtype=np.int8)
    if flip is not None:
        b[flip] = 1
    return b


def test_boards_that_print_alike_are_different_keys() -> None:
    a, b = _board(), _board((20, 20))
    assert str(a) == str(b)  # numpy abbreviates: the old str() comparison pooled them
    assert canonical_key(a) != canonical_key(b)
    assert canonical_key(a) == canonical_key(_board())
    # the same content in another memory layout is the same key; another dtype or shape is not
    assert canonical_key(np.asfortranarray(b)) == canonical_key(b)
    assert canonical_key(a.astype(np.int16)) != canonical_key(a)
    assert canonical_key(a.reshape(80, 20)) != canonical_key(a)


def test_type_tags_separate_lookalikes() -> None:
    keys = [(1, 2), "(1, 2)", [1, 2], (1.0, 2), (True, 2), ("1", 2), {"a": (1, 2)}, frozenset({1, 2})]
    enc = [canonical_key(k) for k in keys]
    assert len(set(enc)) == len(keys)
    assert canonical_key("(1, 2)") == "(1, 2)"  # text keys stay themselves
    assert all(e.startswith(KEY_TAG) for e in enc if e != "(1, 2)")
    # recursion is order-insensitive only where the type is: dicts and sets
    assert canonical_key({"a": 1, "b": [1, 2]}) == canonical_key({"b": [1, 2], "a": 1})
    assert canonical_key((("ab", "c"),)) != canonical_key((("a", "bc"),))  # length-prefixed
    assert canonical_key(np.int64(3)) == canonical_key(3) and canonical_key(-0.0) == canonical_key(0.0)
    assert canonical_key(None) is None
    with pytest.raises(TypeError, match="no canonical form"):
        canonical_key(object())


def _rows(keys: list) -> dict:
    # one group, three one-turn trajectories, rewards 1, 0, 0
    return dict(group_id=["g"] * 3, traj_id=["a", "b", "c"], turn_idx=[0, 0, 0], reward=[1.0, 0.0, 0.0], state_key=keys)


def test_from_arrays_accepts_ndarray_keys_and_groups_by_content() -> None:
    b = TurnBatch.from_arrays(**_rows([_board(), _board((20, 20)), _board()]))
    codes, _ = anchor_groups(b)
    assert codes[0] == codes[2] != codes[1]
    # A^S: a and c share an anchor (mean 0.5); b is alone (0)
    np.testing.assert_allclose(gigpo(b, episode_weight=0.0), [0.5, 0.0, -0.5])


def test_tuple_and_its_text_are_different_anchors_on_both_paths() -> None:
    b = TurnBatch.from_arrays(**_rows([(1, 2), "(1, 2)", (1, 2)]))
    codes, _ = anchor_groups(b)
    assert codes[0] == codes[2] != codes[1]
    trajs = [{"traj_id": t, "group_id": "g", "outcome": r, "turns": [{"reward": r, "state_key": k}]}
             for t, r, k in [("a", 1.0, (1, 2)), ("b", 0.0, "(1, 2)"), ("c", 0.0, (1, 2))]]
    bt = TurnBatch.from_trajectories(trajs)
    np.testing.assert_array_equal(anchor_groups(bt)[0], codes)
    np.testing.assert_allclose(gigpo(bt), gigpo(b))


def test_plain_arrays_keep_the_fast_path_and_lists_mix_types_safely() -> None:
    ints = TurnBatch.from_arrays(**_rows(np.array([3, 4, 3])))
    assert anchor_groups(ints)[0].tolist() == [0, 1, 0]
    mixed = TurnBatch.from_arrays(**_rows([1, "1", None]))  # np.asarray would turn 1 into "1"
    codes, _ = anchor_groups(mixed)
    assert len(set(codes.tolist())) == 3
    assert mixed.state[2] == -1


def test_similarity_refuses_structured_keys() -> None:
    b = TurnBatch.from_arrays(**_rows([(1, 2), (1, 3), (1, 2)]))
    with pytest.raises(ValueError, match="non-text key"):
        anchor_groups(b, similarity=0.9)


class GridEnv(TextEnv):
    """Keys are numpy boards that print alike: only their content tells them apart."""

    def _reset(self, options: dict) -> tuple[str, dict]:
        self.n = 0
        return "go", {"state_key": _board()}

    def _step(self, action: str) -> tuple:
        self.n += 1
        return "ok", float(self.n == 2), self.n == 2, False, {"state_key": _board((20, self.n))}

    def expert_action(self) -> str:
        return "x"


def test_rollout_engine_stores_the_canonical_key() -> None:
    spec = EnvSpec(id="test/Grid-v0", entry_point=f"{__name__}:GridEnv")
    trajs = asyncio.run(rollout(spec, ScriptedPolicy(), [WorkItem(0, 0, 0, "g", "t")]))
    keys = [t.state_key for t in trajs[0].turns]
    assert keys == [canonical_key(_board()), canonical_key(_board((20, 1)))] and keys[0] != keys[1]
