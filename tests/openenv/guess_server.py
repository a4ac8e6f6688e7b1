"""A small OpenEnv env written the way OpenEnv's own envs are (typed Action and Observation,
``openenv-core``'s ``create_fastapi_app``), served by uvicorn: guess a number in 1..100 in at
most 7 guesses. Its action has a non-text field, so agentgym's adapter plays it in JSON mode.

``python guess_server.py PORT`` serves it on 127.0.0.1:PORT.
"""

from __future__ import annotations

import random
import sys
from typing import Any

from openenv.core.env_server.http_server import create_fastapi_app
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import Action, Observation, State
from pydantic import Field


class GuessAction(Action):
    guess: int = Field(ge=1, le=100, description="Your guess, 1..100.")


class GuessObservation(Observation):
    hint: str = Field(description="What the agent reads.")
    guesses_left: int = 7


class GuessEnvironment(Environment):
    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self) -> None:
        super().__init__()
        self.secret, self.left, self.steps = 0, 0, 0

    def reset(self, seed: int | None = None, episode_id: str | None = None, **kwargs: Any) -> GuessObservation:
        self.secret, self.left, self.steps = random.Random(seed).randint(1, 100), 7, 0
        return GuessObservation(hint="Guess my number between 1 and 100.", guesses_left=self.left)

    def step(self, action: GuessAction, timeout_s: float | None = None, **kwargs: Any) -> GuessObservation:
        self.left, self.steps = self.left - 1, self.steps + 1
        if action.guess == self.secret:
            return GuessObservation(hint="Correct!", done=True, reward=1.0, guesses_left=self.left)
        hint = "higher" if action.guess < self.secret else "lower"
        return GuessObservation(hint=f"No: {hint}.", done=self.left == 0, reward=0.0, guesses_left=self.left)

    @property
    def state(self) -> State:
        return State(step_count=self.steps)


app = create_fastapi_app(GuessEnvironment, GuessAction, GuessObservation, max_concurrent_envs=8)

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
