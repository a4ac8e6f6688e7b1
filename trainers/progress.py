"""Progress of a training run's phases, for the person watching it.

The trainer reports every phase the same way (SFT demonstrations and steps, eval and rollout
episodes, update sequences) to a :class:`Progress`. :class:`ConsoleProgress` shows it as rich
bars on a terminal and, where output goes to a file or a pipe (a bar prints nothing there until
the run ends), as a plain line every ``every`` seconds: a log then shows that the run is alive,
its rate and when the phase and the run should end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, TextColumn
from rich.progress import Progress as RichProgress

__all__ = ["ConsoleProgress", "Phase", "Progress"]


@dataclass
class Phase:
    """A phase in flight: ``done`` of ``total`` ``unit`` since ``started`` (``time.monotonic``)."""

    name: str
    total: int
    unit: str
    done: int = 0
    started: float = field(default_factory=time.monotonic)

    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-9)

    def status(self) -> str:
        """``40/64 episodes, 12.3 episodes/s, ETA 0:02``: rate and ETA from 5% done (concurrent
        episodes all finish near the end, so the first one's rate says little)."""
        text = f"{self.done}/{self.total} {self.unit}"
        if self.done and self.done >= 0.05 * self.total:
            text += f", {_rate(self.rate())} {self.unit}/s, ETA {_clock((self.total - self.done) / self.rate())}"
        return text


class Progress:
    """Hears each phase: :meth:`start`, :meth:`advance` as units get done, :meth:`end`; and each
    finished iteration. This base class only keeps track (library use shows nothing); ``phase``
    is the one in flight, left set when an exception (Ctrl-C) stops it, to say where a run stopped.
    """

    def __init__(self, iterations: int = 0, start: int = 0):
        self.iterations, self.done_iterations = iterations, start
        self.phase: Phase | None = None
        self._first_done: tuple[float, int] | None = None  # (when, which): this process's first finished iteration
        self._last_done = 0.0

    def start(self, name: str, total: int, unit: str) -> None:
        self.phase = Phase(name, total, unit)
        self._show()

    def advance(self, n: int = 1) -> None:
        if self.phase is not None:
            self.phase.done += n
            self._show()

    def end(self) -> None:
        self._show(ended=True)
        self.phase = None

    def iteration_done(self, i: int) -> None:
        """Iteration ``i`` (0: the warm start and first eval) is done, its eval included."""
        if self._first_done is None:
            self._first_done = (time.monotonic(), i)
        self.done_iterations, self._last_done = i, time.monotonic()

    def where(self) -> str:
        """``before RL`` (warm start, first eval) or ``iter 4/30`` (the iteration in flight)."""
        if self.done_iterations == 0 and self._first_done is None:
            return "before RL"
        return f"iter {self.done_iterations + 1}/{self.iterations}"

    def run_eta(self) -> str:
        """Time left for the remaining iterations, at this process's mean time per iteration so far."""
        if self._first_done is None or self.done_iterations <= self._first_done[1]:
            return ""
        since, first = self._first_done
        per = (self._last_done - since) / (self.done_iterations - first)
        left = per * (self.iterations - self.done_iterations) - (time.monotonic() - self._last_done)
        return f"run ETA {_clock(left)}"

    def _show(self, ended: bool = False) -> None:
        """Draw the phase (no-op here)."""


class ConsoleProgress(Progress):
    """Rich bars (the run's iterations, the phase in flight) on a terminal; elsewhere a line per
    phase at most every ``every`` seconds (the first one at once) plus one when such a phase ends.
    Use it as a context manager (the bars draw inside it)."""

    def __init__(self, console: Console, iterations: int, start: int = 0, every: float = 10.0):
        super().__init__(iterations, start)
        self.console, self.every = console, every
        self._t0 = time.monotonic()
        self._last_line = -float("inf")
        self._printed_in_phase = False
        self.bars: RichProgress | None = None
        if console.is_terminal:
            self.bars = RichProgress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
                                     console=console)
            self._run_bar = self.bars.add_task("iterations", total=iterations, completed=start,
                                               status=f"{start}/{iterations}")
            self._phase_bar = self.bars.add_task("", total=None, status="", visible=False)

    def __enter__(self) -> ConsoleProgress:
        if self.bars is not None:
            self.bars.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bars is not None:
            self.bars.stop()

    def iteration_done(self, i: int) -> None:
        super().iteration_done(i)
        if self.bars is not None:
            self.bars.update(self._run_bar, completed=i, status=f"{i}/{self.iterations} {self.run_eta()}")

    def _show(self, ended: bool = False) -> None:
        p = self.phase
        if p is None:
            return
        if self.bars is not None:
            self.bars.update(self._phase_bar, description=f"{self.where()}: {p.name}", total=p.total,
                             completed=p.done, status=p.status(), visible=not ended)
            return
        now = time.monotonic()
        if ended:
            if self._printed_in_phase:  # a phase long enough to get a line says when it is done
                took = now - p.started
                self._line(f"{p.name} done: {p.done} {p.unit} in {took:.0f}s ({_rate(p.rate())} {p.unit}/s)")
            self._printed_in_phase = False
        elif now - self._last_line >= self.every:
            self._line(f"{p.name} {p.status()}")
            self._last_line, self._printed_in_phase = now, True

    def _line(self, text: str) -> None:
        eta = self.run_eta()
        self.console.print(f"[{_clock(time.monotonic() - self._t0)}] {self.where()}: {text}" + (f", {eta}" if eta else ""),
                           highlight=False)


def _rate(per_second: float) -> str:
    return f"{per_second:.0f}" if per_second >= 100 else f"{per_second:.3g}"


def _clock(seconds: float) -> str:
    """``1:05`` or ``1:02:03``."""
    s = max(int(seconds + 0.5), 0)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"
