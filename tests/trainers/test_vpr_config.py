"""The trainer's state-group mode refuses what it cannot run before loading any model."""

from __future__ import annotations

import pytest

from agentgym.errors import RecipeError
from agentgym.trainers.config import recipe_from_dict


@pytest.mark.parametrize("rollout", [{"mode": "bogus"}, {"mode": "state_group", "dynamic_sampling": True},
                                     {"mode": "state_group", "ray": True, "deterministic": False}])
def test_bad_state_group_settings_are_recipe_errors(rollout):
    with pytest.raises(RecipeError, match="mode"):
        recipe_from_dict({"rollout": rollout})


def test_env_without_an_oracle_is_refused_before_the_model_loads(tmp_path):
    from agentgym.trainers.trainer import Trainer

    recipe = recipe_from_dict({"env": {"id": "agentgym/Bifurcation-v0"}, "rollout": {"mode": "state_group"},
                               "credit": {"method": "vpr"}, "model": {"path": str(tmp_path / "absent")},
                               "train": {"out_dir": str(tmp_path / "out")}})
    with pytest.raises(RecipeError, match="verify_action"):
        Trainer(recipe)
