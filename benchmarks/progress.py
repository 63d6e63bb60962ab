"""Progress of the benchmark's long phases, drawn by the hub's own progress code (hub.cli.progress):
a bar on a terminal, plain lines when stderr is not one (a log or CI), so a log stays readable.

Ctrl-C stops cleanly: the first asks the running phase to stop at its next step (a batch sent, a
backlog read), a second stops at once. Either way the stack is torn down and `Phases.summary`
says which phases finished, which was stopped and which never began (`python -m benchmarks`
prints it and exits 130).
"""
from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

from hub.cli.progress import Bar, Interrupts
from hub.core.progress import Lines, Progress, Stopped

LINE_EVERY_S = 2.0        # a plain line at most this often (and at the end of the phase)


class Throttled:
    """Plain lines, at most one every `every` seconds, and the last step always."""

    def __init__(self, every: float = LINE_EVERY_S) -> None:
        self.lines = Lines()
        self.every = every
        self.last = 0.0
        self.shown = -1         # `done` of the last line written

    def begin(self, progress: Progress) -> None:
        self.lines.begin(progress)
        self.last = time.monotonic()

    def update(self, progress: Progress) -> None:
        now = time.monotonic()
        final = progress.total is not None and progress.done >= progress.total and progress.done != self.shown
        if final or (now - self.last >= self.every and progress.done != self.shown):
            self.lines.update(progress)
            self.last, self.shown = now, progress.done

    def end(self, progress: Progress) -> None:
        self.lines.end(progress)


class Interrupted(Exception):
    """The run was stopped by Ctrl-C; `summary` says what finished and what did not."""

    def __init__(self, summary: str) -> None:
        super().__init__(summary)
        self.summary = summary


class Phases:
    """The run's phases in order, each not started, running, finished, stopped or failed."""

    def __init__(self, names: list[str], interrupts: Interrupts | None = None) -> None:
        self.status = {name: "not started" for name in names}
        self.interrupts = interrupts
        self.lock = threading.Lock()

    def asked_to_stop(self) -> bool:
        return bool(self.interrupts and self.interrupts.asked)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        if self.asked_to_stop():
            raise KeyboardInterrupt
        self.status[name] = "running"
        try:
            yield
        except (Stopped, KeyboardInterrupt):
            self.status[name] = "stopped"
            raise
        except BaseException:
            self.status[name] = "failed"
            raise
        self.status[name] = "finished"

    def skip(self, name: str) -> None:
        self.status[name] = "skipped"

    @contextmanager
    def meter(self, label: str, total: int | None, unit: str) -> Iterator[Progress]:
        """A Progress for one phase: a bar on a terminal, throttled plain lines otherwise; its
        `step` raises Stopped once Ctrl-C was pressed. Steps may come from several threads."""
        sink: Any = Bar() if sys.stderr.isatty() else Throttled()
        progress = Progress(label, total, unit, [sink], should_stop=self.asked_to_stop)
        progress.start(total)
        try:
            yield progress
        finally:
            progress.finish()

    def summary(self) -> str:
        width = max(len(name) for name in self.status)
        return "\n".join(f"  {name.ljust(width)}  {state}" for name, state in self.status.items())


def step_to(progress: Progress, done: int, note: str | None = None) -> None:
    """Move `progress` to `done` (never back), with a new note."""
    progress.step(max(0, done - progress.done), note)
