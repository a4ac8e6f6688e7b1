"""``agentgym/Terminal-v0``: Harbor-format terminal tasks, played in agentgym's Docker sandboxes.

Each episode is one task in a fresh container of the task's image (from the shared warm pool):
the agent calls ``shell``, ``read_file`` and ``write_file`` over several turns, then answers
(``<answer>done</answer>``), or runs out of turns or of its time budget. Then the task's own
``tests/test.sh`` runs in the same container and the reward file it writes
(``/logs/verifier/reward.txt``, or ``reward.json``'s ``reward``) is the episode's reward; success
is a reward of at least 1.

Grading, in order (the agent never sees the tests, and what it leaves behind cannot forge them):

1. Every process of the sandbox user is killed (the executor already ends each call's processes;
   this sweeps again) and ``/tests`` and ``/logs`` are emptied: a reward file or test file planted
   there is gone.
2. ``tests/`` is copied in, only now.
3. ``test.sh`` runs with a clean environment (``env -i``: system ``PATH`` only, a fresh ``HOME``,
   the task's ``[verifier] env``; ``bash --noprofile --norc``), from the task's working directory,
   under the task's ``verifier.timeout_sec``. The root filesystem is read-only, so no shim or
   modified interpreter can stand on that ``PATH``.
4. The reward file is read after the call, when the executor has killed whatever test.sh started.

An episode in which no call reached the container (malformed actions only, then an answer) gets
the grade of the task's untouched container, computed once per task content and process.

Limits: ``[agent] timeout_sec`` bounds the total time the agent's commands run in the container
(model thinking time is not counted); ``[environment] cpus`` and ``memory_mb`` become the sandbox's
limits; ``allow_internet = false`` (or ``network_mode = "no-network"``) leaves only loopback.

Failures: a test.sh that times out or writes reward 0 is the agent's failure (reward 0); a
container, engine or image build that fails raises an ``InfraError`` (the episode is masked); a
test.sh that exits without writing a reward file raises ``EnvCodeError`` (a broken task); one
killed by a signal scores 0 (the graded code runs as the same user and can kill it).
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path
from typing import Any, ClassVar

from agentgym.core import StepResult
from agentgym.envs.code.sandbox import LazySandbox
from agentgym.errors import EnvCodeError, InfraError, ToolError
from agentgym.sandboxes import BaseSandbox, ExecResult, SandboxError, SandboxSpec
from agentgym.tools import ToolEnv, tool

from .images import TaskImage, build_task_image
from .tasks import TASKS_DIR, TerminalTask, load_tasks

__all__ = ["GRADER_PATH", "TerminalEnv", "grade"]

TESTS_DIR, LOGS_DIR = "/tests", "/logs"
REWARD_TXT, REWARD_JSON = f"{LOGS_DIR}/verifier/reward.txt", f"{LOGS_DIR}/verifier/reward.json"
GRADER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SEED_ARCHIVE = "/tmp/.agentgym-task-files.tar"
# The grade of a task's untouched container, by task content: an episode whose calls never reached
# its container (only malformed actions, then an answer) gets it without a container of its own.
_UNTOUCHED_GRADES: dict[str, tuple[float, dict[str, Any]]] = {}
SWEEP = (f"kill -KILL -1 2>/dev/null; chmod -R u+rwX {TESTS_DIR} {LOGS_DIR} 2>/dev/null; "
         f"find {TESTS_DIR} {LOGS_DIR} -mindepth 1 -maxdepth 1 -exec rm -rf {{}} + ; "
         f"[ -z \"$(find {TESTS_DIR} {LOGS_DIR} -mindepth 1 -print -quit)\" ] && mkdir -p {LOGS_DIR}/verifier")


def task_spec(task: TerminalTask, image: TaskImage) -> SandboxSpec:
    """The sandbox for a task: its image and limits, its working directory, /tests and /logs
    writable (tmpfs), the root read-only; alive long enough for the whole episode."""
    return SandboxSpec(image=image.tag, cpus=task.cpus, memory_mb=task.memory_mb, pids=256, network=task.network,
                       workdir_mb=256, timeout=60.0, ttl=task.agent_timeout + task.verifier_timeout + 3600.0,
                       mounts=(image.workdir, TESTS_DIR, LOGS_DIR))


def _float(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise EnvCodeError(f"{where} holds {value!r}, not a finite number")
    return float(value)


def _read_reward(box: BaseSandbox, task: TerminalTask) -> float | None:
    """reward.txt's number, else reward.json's ``reward`` (or its only value); None when neither exists."""
    try:
        text = box.read_file(REWARD_TXT).decode("utf-8", "replace").strip()
    except FileNotFoundError:
        pass
    else:
        try:
            return _float(float(text), f"{task.name}: {REWARD_TXT}")
        except ValueError as exc:
            raise EnvCodeError(f"{task.name}: {REWARD_TXT} holds {text[:80]!r}, not a number") from exc
    try:
        data = json.loads(box.read_file(REWARD_JSON))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise EnvCodeError(f"{task.name}: {REWARD_JSON} is not JSON: {exc}") from exc
    if isinstance(data, dict) and "reward" in data:
        return _float(data["reward"], f"{task.name}: {REWARD_JSON}['reward']")
    if isinstance(data, dict) and len(data) == 1:
        return _float(next(iter(data.values())), f"{task.name}: {REWARD_JSON}")
    raise EnvCodeError(f"{task.name}: {REWARD_JSON} needs a 'reward' key (or a single value): {str(data)[:120]}")


def grade(box: BaseSandbox, task: TerminalTask, workdir: str) -> tuple[float, dict[str, Any]]:
    """Run the task's tests in ``box`` (see the module docstring): ``(reward, info)``.
    SandboxError (infra) and EnvCodeError (a test.sh that exited without writing a reward) propagate;
    a test.sh killed by a signal scores 0."""
    swept = box.run_shell(SWEEP, timeout=30.0)
    if not swept.ok:
        raise InfraError(f"{task.name}: could not clear {TESTS_DIR} and {LOGS_DIR} before grading: "
                         f"{(swept.stderr or swept.error)[-300:]}")
    for rel, (data, mode) in task.test_files().items():
        box.write_file(f"{TESTS_DIR}/{rel}", data, mode)
    env = " ".join(shlex.quote(f"{k}={v}") for k, v in (("PATH", GRADER_PATH), ("LANG", "C.UTF-8"),
                                                         *task.verifier_env))
    command = (f"home=$(mktemp -d) && cd {shlex.quote(workdir)} && exec env -i {env} HOME=\"$home\" "
               f"bash --noprofile --norc {TESTS_DIR}/test.sh")
    result: ExecResult = box.run_shell(command, timeout=task.verifier_timeout)
    info: dict[str, Any] = {"verifier_exit_code": result.exit_code, "verifier_timed_out": result.timed_out,
                            "verifier_output": (result.stdout + result.stderr)[-2000:]}
    try:
        reward = _read_reward(box, task)
    except FileNotFoundError:  # a directory on the way is gone
        reward = None
    except OSError as exc:  # a symlink, FIFO or directory where the reward file should be: tampering
        info["reward_file_error"] = str(exc)
        return 0.0, info
    if reward is None and result.exit_code is not None and (result.exit_code < 0 or result.exit_code >= 128):
        # test.sh died by a signal: the code under test runs as the same user and can kill it (kill -9 -1).
        # Scored as the agent's failure: an EnvCodeError here would let a policy turn a failing episode
        # into an uncounted one.
        info["verifier_killed"] = True
        return 0.0, info
    if reward is None:
        if not result.timed_out:
            raise EnvCodeError(f"{task.name}: tests/test.sh exited {result.exit_code} without writing "
                               f"{REWARD_TXT} or {REWARD_JSON}: {(result.stdout + result.stderr)[-300:]}")
        reward = 0.0  # the tests ran out of time: the agent's work did not pass them in time
    return reward, info


class TerminalEnv(ToolEnv):
    """Harbor-format terminal tasks in Docker sandboxes (see the module docstring).

    ``tasks_dir``: a directory of task directories (default: the shipped ones) or one task.
    ``task``: play only the task of that name. ``shell_timeout``: the longest one ``shell`` call
    may run (seconds; the task's remaining time budget caps it too).
    """

    threaded_async: ClassVar[bool] = True  # every call talks to a container
    system_prompt_template: ClassVar[str] = (
        "You are working in a Linux container (bash, coreutils, python3). Use the tools to complete the task; "
        "each shell call starts a fresh shell in the task's working directory, and processes it starts end "
        "with the call. Call a tool as <tool_call>{{\"name\": NAME, \"arguments\": {{...}}}}</tool_call> "
        "(at most {max_calls} per turn). When the task is complete, answer <answer>done</answer>: the task's "
        "tests then run.\n\nTools:\n{tools}"
    )

    def __init__(self, tasks_dir: str | Path = TASKS_DIR, *, task: str | None = None, shell_timeout: float = 60.0,
                 max_turns: int | None = 30, max_result_chars: int = 8_192, render_mode: str | None = None) -> None:
        super().__init__(max_turns=max_turns, max_result_chars=max_result_chars, max_calls_per_turn=4,
                         render_mode=render_mode)
        tasks = load_tasks(tasks_dir)
        if task is not None:
            tasks = [t for t in tasks if t.name == task]
            if not tasks:
                raise ValueError(f"no task {task!r} under {tasks_dir}")
        self.tasks = tasks
        self.num_tasks = len(tasks)
        self.shell_timeout = shell_timeout
        self.task: TerminalTask | None = None
        self.image: TaskImage | None = None
        self._sandboxes: dict[str, LazySandbox] = {}
        self._seeded: BaseSandbox | None = None
        self._budget = 0.0
        self.labels: dict[str, str] | None = None  # extra container labels (tests use them to find leaks)

    # -- the episode ----------------------------------------------------------------------------
    def _reset(self, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name = options.get("task")
        if name is not None:
            found = [t for t in self.tasks if t.name == name]
            if not found:
                raise ValueError(f"no task {name!r}; known: {', '.join(t.name for t in self.tasks)}")
            task = found[0]
        else:
            task = self.tasks[self.pool_index(len(self.tasks))]
        if self.task is not None and self.task.name != task.name:
            self._sandboxes[self.task.name].close()  # no longer demand for the last task's image
        self.task, self.image = task, build_task_image(task)
        lazy = self._sandboxes.get(task.name)
        if lazy is None:
            lazy = self._sandboxes[task.name] = LazySandbox(self, task_spec(task, self.image), backend="docker",
                                                            pool="terminal", labels=self.labels)
        lazy.recycle()  # the last episode's container goes; a fresh one warms up in the pool
        self._seeded = None
        self._budget = task.agent_timeout
        obs = (f"Task {task.name} (working directory {self.image.workdir}):\n\n{task.instruction}")
        return obs, {"task_id": task.name}

    def _box(self) -> BaseSandbox:
        """The episode's container, with the task's files unpacked into its working directory."""
        assert self.task is not None and self.image is not None
        lazy = self._sandboxes[self.task.name]
        box = lazy.get()
        if box is not self._seeded:
            try:
                box.write_file(SEED_ARCHIVE, self.image.archive)
                done = box.run_shell(f"tar -xf {SEED_ARCHIVE} -C {shlex.quote(self.image.workdir)}; rc=$?; "
                                     f"rm -f {SEED_ARCHIVE}; exit $rc", timeout=60.0)
            except SandboxError:
                lazy.recycle()
                raise
            if not done.ok:
                raise InfraError(f"{self.task.name}: unpacking the task's files failed: {done.stderr[-300:]}")
            self._seeded = box
        return box

    def _run(self, command: str) -> ExecResult:
        if self._budget <= 0:
            raise ToolError("the task's time budget is spent")
        limit = min(self.shell_timeout, self._budget)
        try:
            result = self._box().run_shell(f"cd {shlex.quote(self.image.workdir)} && {command}", timeout=limit)
        except SandboxError:
            self._sandboxes[self.task.name].recycle()
            raise
        self._budget = 0.0 if result.timed_out and limit >= self._budget else self._budget - result.duration
        return result

    def _path(self, path: str) -> str:
        if not isinstance(path, str) or not path or "\0" in path:
            raise ToolError("path must be a non-empty string")
        return path if path.startswith("/") else f"{self.image.workdir}/{path}"

    # -- tools ----------------------------------------------------------------------------------
    @tool
    def shell(self, command: str) -> str:
        """Run a bash command in the task's working directory; returns the exit code and output.

        Args:
            command: the command line (bash syntax)
        """
        result = self._run(f"exec bash -c {shlex.quote(command)}")
        status = "timed out" if result.timed_out else f"exit code {result.exit_code}"
        return f"[{status}]\n{result.stdout}{result.stderr}"

    @tool
    def read_file(self, path: str) -> str:
        """Read a text file.

        Args:
            path: absolute, or relative to the working directory
        """
        try:
            return self._box().read_file(self._path(path)).decode("utf-8", "replace")
        except OSError as exc:
            raise ToolError(f"cannot read {path}: {exc.strerror or exc}") from None

    @tool
    def write_file(self, path: str, content: str) -> str:
        """Write a text file (parent directories are made).

        Args:
            path: absolute, or relative to the working directory
            content: the whole new content
        """
        try:
            self._box().write_file(self._path(path), content)
        except OSError as exc:
            raise ToolError(f"cannot write {path}: {exc.strerror or exc}") from None
        return f"wrote {len(content.encode())} bytes to {path}"

    # -- ending ---------------------------------------------------------------------------------
    def _finish(self, why: str) -> tuple[str, float, dict[str, Any]]:
        assert self.task is not None and self.image is not None
        lazy = self._sandboxes[self.task.name]
        untouched = self._seeded is None  # no call reached a container this episode
        cached = _UNTOUCHED_GRADES.get(self.task.digest) if untouched else None
        if cached is not None:
            reward, info = cached[0], dict(cached[1])
        else:
            try:
                reward, info = grade(self._box(), self.task, self.image.workdir)
            except SandboxError:
                lazy.recycle()
                raise
            if untouched:
                _UNTOUCHED_GRADES[self.task.digest] = (reward, dict(info))
        success = reward >= 1.0
        info.update(success=success, reward=reward, ended=why)
        verdict = "passed" if success else "failed"
        return f"The task's tests {verdict} (reward {reward:g}).", reward, info

    def on_answer(self, answer: str) -> tuple[str, float, bool, dict[str, Any]]:
        obs, reward, info = self._finish("answer")
        return obs, reward, True, info

    def after_calls(self, calls: list[dict[str, Any]]) -> tuple[float, bool, dict[str, Any]]:
        if self._budget > 0:
            return 0.0, False, {}
        obs, reward, info = self._finish("agent_timeout")
        return reward, True, {**info, "grading_note": obs}

    def _step(self, action: str) -> StepResult:
        """ToolEnv's step; on the last turn (``max_turns``) the tests run whatever the action was."""
        obs, reward, terminated, truncated, info = super()._step(action)
        if not terminated and self.max_turns is not None and self.turn >= self.max_turns:
            note, reward, graded = self._finish("max_turns")
            obs, terminated, info = f"{obs}\n\nOut of turns. {note}", True, {**info, **graded}
        return obs, reward, terminated, truncated, info

    def expert_action(self) -> str:
        """The task's solution/solve.sh as one shell call, then the answer."""
        assert self.task is not None
        script = self.task.solution()
        command = f"bash <<'AGENTGYM_SOLVE'\n{script}\nAGENTGYM_SOLVE"
        if script is None or any(e.get("arguments") == {"command": command} for e in self.history):
            return "<answer>done</answer>"
        return f"<tool_call>{json.dumps({'name': 'shell', 'arguments': {'command': command}})}</tool_call>"

    def close(self) -> None:
        for lazy in self._sandboxes.values():
            lazy.close()
        super().close()
