"""Task images: built once per task content on the local engine, then reused by tag.

The tag is ``agentgym/terminal-<task>:<sha256 of the task directory, 16 hex>``, so an edited task
builds anew and an unchanged one never does (across processes too: the engine keeps the image).
The build runs with no network (``network_mode=none``) and never pulls: a task's Dockerfile
starts ``FROM`` an image the engine already has (the shipped tasks: ``agentgym/sandbox-python:1``).

A sandbox mounts a fresh tmpfs over the task's working directory (the root stays read-only), so
the image's files there are also kept as a tar archive (:func:`workdir_archive`), unpacked into
each new container at its first use.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from agentgym.errors import InfraError
from agentgym.sandboxes.engine import docker_client
from agentgym.sandboxes.images import image_present

from .tasks import TerminalTask

__all__ = ["TaskBuildError", "TaskImage", "build_task_image", "clear_cache", "image_tag"]

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
_images: dict[str, TaskImage] = {}  # by tag: what this process built or found


class TaskBuildError(InfraError):
    """A task's image could not be built (a broken Dockerfile, a missing base image, no engine):
    infrastructure, never the agent's fault."""


@dataclass(frozen=True)
class TaskImage:
    """A built task image: its tag, working directory and that directory's files (a tar)."""

    tag: str
    workdir: str
    archive: bytes
    built: bool  # built by this call (False: found in the engine's cache)
    seconds: float


def image_tag(task: TerminalTask) -> str:
    slug = re.sub(r"[^a-z0-9_.-]+", "-", task.name.lower()).strip("-.") or "task"
    return f"agentgym/terminal-{slug}:{task.digest[:16]}"


def build_task_image(task: TerminalTask, *, client: Any = None) -> TaskImage:
    """The task's image, built now if the engine lacks it (see the module docstring); cached per
    process, one build at a time per tag. Raises :class:`TaskBuildError`."""
    tag = image_tag(task)
    with _locks_guard:
        lock = _locks.setdefault(tag, threading.Lock())
    with lock:
        known = _images.get(tag)
        if known is not None:
            return dataclasses.replace(known, built=False, seconds=0.0)
        image = _images[tag] = _build(task, tag, client)
        return image


def clear_cache() -> None:
    """Forget what this process knows (the engine keeps its images): the next call asks the engine."""
    _images.clear()


def _build(task: TerminalTask, tag: str, client: Any) -> TaskImage:
    import docker.errors

    start = time.perf_counter()
    own = client is None
    try:
        client = client or docker_client()
        built = not image_present(client, tag)
        if built:
            client.images.build(path=str(task.environment_dir), tag=tag, rm=True, forcerm=True, pull=False,
                                network_mode="none", timeout=task.build_timeout,
                                labels={"agentgym.terminal-task": task.name})
        workdir = client.api.inspect_image(tag)["Config"].get("WorkingDir") or "/"
        if workdir in ("/", "/tmp"):
            raise TaskBuildError(f"task {task.name}: its image's WORKDIR is {workdir}; give the task a working "
                                 "directory of its own (e.g. WORKDIR /app)")
        archive = _workdir_archive(client, tag, workdir)
    except TaskBuildError:
        raise
    except (docker.errors.DockerException, OSError) as exc:
        raise TaskBuildError(f"cannot build the image of task {task.name} from {task.environment_dir}: "
                             f"{exc}") from exc
    finally:
        if own and client is not None:
            client.close()
    return TaskImage(tag, workdir, archive, built=built, seconds=time.perf_counter() - start)


def _workdir_archive(client: Any, tag: str, workdir: str) -> bytes:
    """The image's files under ``workdir`` as a tar whose members are relative to it."""
    container = client.api.create_container(tag, command=["true"], network_disabled=True)["Id"]
    try:
        stream, _ = client.api.get_archive(container, workdir.rstrip("/") + "/.")
        return b"".join(stream)
    finally:
        client.api.remove_container(container, force=True)
