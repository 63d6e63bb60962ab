"""Progress of long work, the same for a terminal, a log and the API.

A piece of long work (re-sync every contact, retry failed syncs, replay messages, import or export
a feed) takes a `Progress` and calls `step(n)` after each step it has finished whole. What the
steps look like depends on who watches:

  at a terminal   a bar on stderr: done of total, rate, time left (hub.cli.progress)
  in a log or CI  one plain line per step on stderr: `resync: 1,500/3,000 contacts (50%), 740/s, ~2s left`
  over the API    the figures in Redis (hub.core.tasks), read by GET /v1/jobs/<id>

Stopping: Ctrl-C (or a cancel over the API) asks the work to stop; `step` then raises `Stopped`
at the next step boundary, so a step is never left half done. The command prints what was done,
what was not, and how to finish (the work's `resume` hint), and exits 130. A second Ctrl-C stops
at once. Progress goes to stderr so a command's JSON on stdout stays parseable.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable, Protocol

class Stopped(Exception):
    """The work was asked to stop and has stopped at a step boundary."""

    def __init__(self, progress: "Progress") -> None:
        super().__init__(f"{progress.label}: stopped after {progress.done:,} of {progress.total_text()}")
        self.progress = progress


class Sink(Protocol):
    def begin(self, progress: "Progress") -> None: ...
    def update(self, progress: "Progress") -> None: ...
    def end(self, progress: "Progress") -> None: ...


class Progress:
    """Done of total for one piece of work; `step` after each finished step."""

    def __init__(self, label: str, total: int | None = None, unit: str = "items", sinks: list[Sink] | None = None,
                 should_stop: Callable[[], bool] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.total, self.unit = label, total, unit
        self.done = self.base = 0
        self.note = ""              # what the work adds to its line (rows read, the file name ...)
        self.resume = ""            # how to finish after a stop (the command to run again)
        self.sinks = list(sinks or [])
        self.should_stop = should_stop or (lambda: False)
        self.clock = clock
        self.started = clock()
        self.began = False

    def start(self, total: int | None = None, unit: str | None = None, done: int = 0) -> None:
        """The total once it is known (counting it can be a step of its own); `done` is what an
        earlier, stopped run already did."""
        self.done = self.base = done
        if total is not None:
            self.total = total
        if unit is not None:
            self.unit = unit
        self.started = self.clock()
        self.began = True
        for sink in self.sinks:
            sink.begin(self)

    def step(self, n: int = 1, note: str | None = None) -> None:
        """`n` more done; raises Stopped when a stop was asked for (the step itself is finished)."""
        if not self.began:
            self.start()
        self.done += n
        if note is not None:
            self.note = note
        for sink in self.sinks:
            sink.update(self)
        self.check()

    def check(self) -> None:
        if self.total is not None and self.done >= self.total:
            return              # everything is done: nothing is left to stop
        if self.should_stop():
            raise Stopped(self)

    def finish(self) -> None:
        for sink in self.sinks:
            sink.end(self)

    # -- figures ---------------------------------------------------------------------------------
    def elapsed(self) -> float:
        return max(self.clock() - self.started, 1e-9)

    def rate(self) -> float:
        return (self.done - self.base) / self.elapsed()

    def left_seconds(self) -> float | None:
        if self.total is None or self.done <= self.base:
            return None
        return max(self.total - self.done, 0) / self.rate()

    def remaining(self) -> int | None:
        return None if self.total is None else max(self.total - self.done, 0)

    def total_text(self) -> str:
        return f"{self.total:,} {self.unit}" if self.total is not None else f"? {self.unit}"

    def figures(self) -> dict[str, Any]:
        left = self.left_seconds()
        return {"done": self.done, "total": self.total, "unit": self.unit, "rate_per_s": round(self.rate(), 1),
                "eta_s": None if left is None else round(left, 1), "note": self.note}

    def line(self) -> str:
        """The plain line of one step."""
        share = f" ({100 * self.done // self.total}%)" if self.total else ""
        left = self.left_seconds()
        eta = f", ~{duration(left)} left" if left is not None and self.done < (self.total or 0) else ""
        note = f", {self.note}" if self.note else ""
        total = f"/{self.total:,}" if self.total is not None else ""
        return f"{self.label}: {self.done:,}{total} {self.unit}{share}, {self.rate():,.0f}/s{eta}{note}"

    def summary(self, stopped: bool) -> str:
        """What was done and what was not, after the work ended or stopped."""
        if not stopped:
            return f"{self.label}: done, {self.done:,} {self.unit} in {duration(self.elapsed())}"
        left = self.remaining()
        text = f"{self.label}: stopped; {self.done:,} {self.unit} done"
        text += f", {left:,} not done" if left is not None else ""
        return text + (f". {self.resume}" if self.resume else "")


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Lines:
    """One plain line per step, flushed at once, for logs and CI."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(text + "\n")
        stream.flush()

    def begin(self, progress: Progress) -> None:
        self.write(f"{progress.label}: {progress.total_text()} to do")

    def update(self, progress: Progress) -> None:
        self.write(progress.line())

    def end(self, progress: Progress) -> None:
        pass


def quiet(label: str = "", total: int | None = None, unit: str = "items") -> Progress:
    """Progress nobody watches (an API call that answers when the work is done)."""
    return Progress(label, total, unit)
