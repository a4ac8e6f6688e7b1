"""``agentgym/Bifurcation-v0``: controlled credit-assignment tasks (docs/credit.md#bifurcation).

An episode is a journey of ``horizon`` stages. Each stage shows a scene and a small menu of
labelled options (``1`` … ``n_options``); the action is a label, optionally wrapped in
``<answer>…</answer>`` (whitespace and case are ignored), after the shared action rule of every
built-in env (:func:`agentgym.parsers.extract_action`: reasoning dropped, one
``<action>…</action>`` or an ``Action:`` prefix unwrapped). Exactly one stage, ``t_star``, is
decisive: its good option leads to success with probability ``p_good``, every other option with
``p_bad``. All other stages are outcome-irrelevant: ``n_distractors`` of them use the same
solemn scenes as the decisive stage (they *look* decisive but are not); the rest are filler
scenes that say the choice does not matter. The reward comes only at the end: 1.0 on success,
0.0 on failure. A good credit assigner puts its advantage mass on ``t_star`` and ≈0 elsewhere.

**Seeding.** The seed fixes the task: ``t_star`` (unless given), which stages are distractors,
every scene and its option order, which label is good. The outcome is a draw from the env's
seeded rng, so an episode is reproducible from seed + actions. Consequence: rollouts of one
group (same seed) share that draw — common random numbers: with the same decisive choice they
get the same outcome, and filler choices provably never change it. For independent outcomes
across a group, pass ``options={"outcome_seed": k}`` (e.g. the member index) to ``reset``;
the outcome is then drawn from an rng seeded by (task, k), still reproducible.

**Observation noise** (``noise`` ∈ [0, 1]): each stage's observation gets, with that
probability, a nuisance line (a sentence and a pace count) drawn from an rng seeded by the
task, the stage and the options chosen so far. So two rollouts in the same Markov state may see
different text if they got there by different filler choices: observation-keyed anchors
fragment, ``state_key`` anchors do not.

**state_key** (GiGPO anchors) = ``"stage=<s>|<menu>|decisive=<status>"``, where ``menu`` is
the stage's options in label order and ``status`` is ``pending`` until the decisive choice is
made, then ``good`` or ``bad``; ``"end|decisive=<status>"`` after the last stage. Whether the
decisive choice was good is *hidden* (never shown in the observation) but it is the Markov
state: after ``t_star`` good and bad rollouts fall into different anchor groups, so a filler
stage's step advantage compares like with like and carries no decisive credit. An invalid
action (a ``parse_error`` turn; it counts towards ``max_turns``) re-shows the same menu and
keeps the same key. ``info["stage"]`` is the decision index; it equals the turn index when
every action was valid, and ``t_star`` counts stages.

**Several decisive stages** (``t_stars``, the regime of the turn-level credit papers): each
has its own good label and the episode succeeds with ``p_good`` only if *every* decisive choice
was good (else ``p_bad``), so a failed episode can hold good decisions that an episode-level
advantage punishes. ``decisive`` in the state_key is then ``good`` while every decisive choice
so far was good, ``bad`` after the first bad one. **Independent outcomes**
(``independent_outcomes``): each episode draws its outcome from its own rng, keyed by the
episode's id in the rollout engine (:func:`agentgym.policies.base.current_episode`), by
``options["outcome_seed"]`` when given, else by how many resets this env instance has done —
so group members with the same choices can get different outcomes, reproducibly.

kwargs: ``horizon`` (stages), ``t_star`` (None = drawn per seed), ``t_stars`` (the decisive
stages, overrides ``t_star``), ``p_good``, ``p_bad`` (``p_bad == p_good`` is the null control:
no stage matters), ``n_options`` (2–6), ``n_distractors`` (0 … horizon − #decisive; None = 1, or
0 when no stage is left), ``noise``, ``independent_outcomes``, ``max_turns`` (None = 2 × horizon).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from agentgym.core import StepResult, TextEnv
from agentgym.parsers import extract_action
from agentgym.policies.base import current_episode

__all__ = ["BifurcationEnv", "BifurcationTask", "parse_choice"]

SYSTEM_PROMPT = (
    "You are on a journey of several stages. At each stage, pick one of the numbered options by "
    "replying with its number, e.g. <answer>2</answer>. You learn only at the end whether you arrived."
)

# (scene, option pool): decisive and distractor stages draw from the same solemn scenes.
DECISION_SCENES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("The road forks at a ruined shrine. Pilgrims say this choice decides the whole journey.",
     ("the mossy stairs", "the collapsed tunnel", "the cliff ledge", "the dry riverbed",
      "the rope bridge", "the hidden door")),
    ("A hooded merchant offers you one relic, warning that your fate hangs on it.",
     ("the bronze key", "the cracked mirror", "the silver compass", "the wax seal",
      "the bone dice", "the glass vial")),
    ("Gates stand before the citadel. Only the right one, the guard says, leads home.",
     ("the red gate", "the blue gate", "the green gate", "the black gate", "the white gate",
      "the golden gate")),
    ("An old map shows routes across the marsh; the scribe swears only one is safe.",
     ("the northern causeway", "the reed channel", "the sunken road", "the heron path",
      "the ferry crossing", "the eastern dyke")),
)
FILLER_SCENES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("You stop at an inn for the night. Pick a room; any will do.",
     ("the attic room", "the room by the stairs", "the corner room", "the garden room",
      "the room over the stable", "the narrow room")),
    ("A street musician asks for a song. It makes no difference to your journey.",
     ("a ballad", "a jig", "a lullaby", "a march", "a drinking song", "a hymn")),
    ("You pass a bakery. Choose a pastry for the road; they are all fine.",
     ("a honey roll", "a plum tart", "a seed cake", "a pretzel", "a cheese bun", "an apple turnover")),
    ("You rest by a well and idly pick a direction to watch the sky.",
     ("north", "east", "south", "west", "straight up", "the horizon")),
)
NOISE_LINES: tuple[str, ...] = (
    "A crow caws somewhere to the east.",
    "Your boots are muddy.",
    "Clouds drift over the hills.",
    "A cart rattles past in the distance.",
    "You hum an old tune.",
    "The wind smells of rain.",
)
MAX_OPTIONS = 6
_ANSWER = re.compile(r"\s*<answer>(.*)</answer>\s*", re.S | re.I)
_MAX_ACTION_CHARS = 200


def parse_choice(action: str, labels: list[str]) -> tuple[str | None, str | None]:
    """``(label, None)`` for a valid choice, else ``(None, error)``.

    Accepts a bare label or ``<answer>label</answer>``, ignoring surrounding whitespace and case.
    """
    extracted = extract_action(action)
    if extracted.error is not None:
        return None, str(extracted.error)
    if len(extracted.text) > _MAX_ACTION_CHARS:
        return None, f"the action is {len(extracted.text)} characters; reply with just an option number"
    match = _ANSWER.fullmatch(extracted.text)
    text = (match.group(1) if match else extracted.text).strip().lower()
    if text in labels:
        return text, None
    shown = text if len(text) <= 40 else text[:37] + "..."
    return None, f"expected one of {', '.join(labels)} (optionally as <answer>N</answer>), got {shown!r}"


@dataclasses.dataclass(frozen=True)
class BifurcationTask:
    """One seeded task: everything about an episode except the outcome draw."""

    horizon: int
    t_star: int
    kinds: tuple[str, ...]  # per stage: "decisive" | "distractor" | "filler"
    scenes: tuple[str, ...]
    menus: tuple[tuple[str, ...], ...]  # per stage: option texts in label order
    good_label: str
    noise_seed: int
    # every decisive stage and its good label; () = just t_star with good_label
    decisive: tuple[tuple[int, str], ...] = ()

    @property
    def good_labels(self) -> dict[int, str]:
        """Decisive stage -> its good label."""
        return dict(self.decisive) if self.decisive else {self.t_star: self.good_label}

    @property
    def task_id(self) -> str:
        fields = dataclasses.asdict(self)
        if not self.decisive:  # one decisive stage: the id it had before t_stars existed
            del fields["decisive"]
        digest = hashlib.sha1(json.dumps(fields).encode()).hexdigest()[:12]
        return f"bifurcation-H{self.horizon}-t{self.t_star}-{digest}"


class BifurcationEnv(TextEnv):
    """Controlled bifurcation task: one decisive stage at ``t_star``, delayed 0/1 reward."""

    system_prompt = SYSTEM_PROMPT
    threaded_async = False  # microseconds per step

    def __init__(
        self,
        *,
        horizon: int = 5,
        t_star: int | None = None,
        t_stars: Sequence[int] | None = None,
        p_good: float = 0.9,
        p_bad: float = 0.1,
        n_options: int = 3,
        n_distractors: int | None = None,
        noise: float = 0.0,
        independent_outcomes: bool = False,
        max_turns: int | None = None,
        render_mode: str | None = None,
    ):
        if horizon < 1:
            raise ValueError(f"horizon must be ≥ 1, got {horizon}")
        if t_stars is not None:
            stars = sorted({int(s) for s in t_stars})
            if not stars or len(stars) != len(t_stars) or not all(0 <= s < horizon for s in stars):
                raise ValueError(f"t_stars must be distinct stages in [0, {horizon - 1}], got {list(t_stars)}")
            if t_star is not None and t_star != stars[0]:
                raise ValueError(f"t_star {t_star} is not the first of t_stars {stars}; give one of them")
            t_star = stars[0]
        if t_star is not None and not 0 <= t_star < horizon:
            raise ValueError(f"t_star must be in [0, {horizon - 1}], got {t_star}")
        if not 0.0 <= p_bad <= p_good <= 1.0:
            raise ValueError(f"need 0 ≤ p_bad ≤ p_good ≤ 1, got p_good={p_good}, p_bad={p_bad}")
        if not 2 <= n_options <= MAX_OPTIONS:
            raise ValueError(f"n_options must be in [2, {MAX_OPTIONS}], got {n_options}")
        n_decisive = 1 if t_stars is None else len(t_stars)
        if n_distractors is None:
            n_distractors = min(1, horizon - n_decisive)
        if not 0 <= n_distractors <= horizon - n_decisive:
            raise ValueError(f"n_distractors must be in [0, {horizon - n_decisive}], got {n_distractors}")
        if not 0.0 <= noise <= 1.0:
            raise ValueError(f"noise must be in [0, 1], got {noise}")
        super().__init__(max_turns=2 * horizon if max_turns is None else max_turns, render_mode=render_mode)
        self.horizon, self.fixed_t_star = horizon, t_star
        self.t_stars = None if t_stars is None or len(t_stars) == 1 else tuple(sorted(int(s) for s in t_stars))
        self.independent_outcomes, self.resets = independent_outcomes, 0
        self.p_good, self.p_bad = p_good, p_bad
        self.n_options, self.n_distractors, self.noise = n_options, n_distractors, noise
        self.labels = [str(i + 1) for i in range(n_options)]
        self.task: BifurcationTask | None = None
        self.stage = 0
        self.choices: list[int] = []  # option index chosen at each completed stage
        self.decisive = "pending"
        self.outcome_rng: np.random.Generator | None = None

    # -- task ---------------------------------------------------------------------------
    def _draw_task(self) -> BifurcationTask:
        rng = self.np_random
        horizon = self.horizon
        t_star = int(rng.integers(horizon)) if self.fixed_t_star is None else self.fixed_t_star
        stars = self.t_stars or (t_star,)
        others = [s for s in range(horizon) if s not in stars]
        distractors = {int(s) for s in rng.choice(others, self.n_distractors, replace=False)} if others else set()
        kinds, scenes, menus = [], [], []
        for stage in range(horizon):
            kind = "decisive" if stage in stars else "distractor" if stage in distractors else "filler"
            pool = FILLER_SCENES if kind == "filler" else DECISION_SCENES
            scene, options = pool[int(rng.integers(len(pool)))]
            picks = rng.choice(len(options), self.n_options, replace=False)
            kinds.append(kind)
            scenes.append(scene)
            menus.append(tuple(options[int(i)] for i in picks))
        good_label = self.labels[int(rng.integers(self.n_options))]
        noise_seed = int(rng.integers(2**31))  # drawn before the extra labels: one-t* tasks are unchanged
        decisive = () if self.t_stars is None else (
            (t_star, good_label), *((s, self.labels[int(rng.integers(self.n_options))]) for s in stars[1:]))
        return BifurcationTask(horizon, t_star, tuple(kinds), tuple(scenes), tuple(menus), good_label, noise_seed,
                               decisive)

    @property
    def state_key(self) -> str:
        if self.stage >= self.horizon:
            return f"end|decisive={self.decisive}"
        menu = "/".join(self.task.menus[self.stage]) if self.task else ""
        return f"stage={self.stage}|{menu}|decisive={self.decisive}"

    # -- observations -------------------------------------------------------------------
    def _menu_text(self) -> str:
        assert self.task is not None
        lines = [f"Stage {self.stage + 1} of {self.horizon}."]
        if self.noise > 0:
            rng = np.random.default_rng([self.task.noise_seed, self.stage, *self.choices])
            if rng.random() < self.noise:
                lines.append(f"{NOISE_LINES[int(rng.integers(len(NOISE_LINES)))]} "
                             f"(You have walked {int(rng.integers(100, 10000))} paces.)")
        lines.append(self.task.scenes[self.stage])
        lines += [f"{label}) {text}" for label, text in zip(self.labels, self.task.menus[self.stage], strict=True)]
        lines.append(f"Reply with one option number ({', '.join(self.labels)}), e.g. <answer>1</answer>.")
        return "\n".join(lines)

    def _info(self, **extra: Any) -> dict[str, Any]:
        assert self.task is not None
        return {"state_key": self.state_key, "stage": self.stage, "t_star": self.task.t_star,
                "horizon": self.horizon, **extra}

    # -- the contract -------------------------------------------------------------------
    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self.task = self._draw_task()
        self.stage, self.choices, self.decisive = 0, [], "pending"
        self.resets += 1
        outcome_seed = options.get("outcome_seed")
        if outcome_seed is None and self.independent_outcomes:
            episode = current_episode()
            outcome_seed = (int(hashlib.sha1(episode.traj_id.encode()).hexdigest()[:15], 16)
                            if episode is not None and episode.traj_id else self.resets)
        self.outcome_rng = (self.np_random if outcome_seed is None
                            else np.random.default_rng([self.task.noise_seed, int(outcome_seed)]))
        intro = (f"You set out on a journey of {self.horizon} stages. At each stage pick one option; "
                 "you learn at the end whether you arrived.\n\n")
        info = self._info(task_id=self.task.task_id, good_label=self.task.good_label,
                          kinds=list(self.task.kinds))
        if self.task.decisive:
            info["good_labels"] = {str(s): label for s, label in self.task.decisive}
        return intro + self._menu_text(), info

    def _step(self, action: str) -> StepResult:
        assert self.task is not None
        label, error = parse_choice(action, self.labels)
        if label is None:
            obs = f"Invalid reply: {error}.\n\n{self._menu_text()}"
            return obs, 0.0, False, False, self._info(parse_error=error, void=True)
        index = self.labels.index(label)
        good = self.task.good_labels.get(self.stage)
        if good is not None and self.decisive != "bad":  # one bad decisive choice fails the journey
            self.decisive = "good" if label == good else "bad"
        self.choices.append(index)
        chosen = self.task.menus[self.stage][index]
        self.stage += 1
        if self.stage < self.horizon:
            return f"You chose {chosen}.\n\n{self._menu_text()}", 0.0, False, False, self._info(choice=label)
        p = self.p_good if self.decisive == "good" else self.p_bad
        assert self.outcome_rng is not None
        success = bool(self.outcome_rng.random() < p)
        obs = (f"You chose {chosen}.\n\nThe journey is over. "
               + ("You arrived safely. Success!" if success else "You did not arrive. Failure."))
        info = self._info(choice=label, success=success, chose_good=self.decisive == "good")
        return obs, float(success), True, False, info

    def legal_actions(self) -> list[str]:
        return list(self.labels)

    def expert_action(self) -> str:
        """The good option at a decisive stage; the first option elsewhere (it does not matter)."""
        if self.task is not None:
            return self.task.good_labels.get(self.stage, self.labels[0])
        return self.labels[0]
