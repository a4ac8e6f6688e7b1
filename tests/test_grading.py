"""agentgym.grading's bounded workers, beyond what the graders' own tests cover."""

from __future__ import annotations

import os

from agentgym.grading import bounded_call, shutdown


def test_a_worker_whose_pipe_has_a_high_fd_still_answers() -> None:
    """select() raises on an fd ≥ 1024; a trainer holding many sandboxes and sockets gets such fds
    for a new worker's pipes, so waiting on them must not use it."""
    shutdown()  # the next call starts a worker, whose pipes take the lowest free fds
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        assert min(set(range(1100)) - set(held) - {0, 1, 2} or {1100}) >= 3  # the low fds are taken
        graded = bounded_call("math:sqrt", [16.0], timeout=60.0)
        assert graded.error is None and graded.value == 4.0
    finally:
        for fd in held:
            os.close(fd)
        shutdown()
