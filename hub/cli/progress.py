"""Progress at a terminal: a bar (click's progressbar) or plain lines on stderr, Ctrl-C as a clean
stop at the next step boundary (hub.core.progress has the figures)."""
from __future__ import annotations

import signal
import sys
from contextlib import contextmanager
from typing import Any, Iterator

import click

from hub.core.progress import Lines, Progress, Stopped


class Bar:
    """click's progressbar on a terminal: position, percentage, rate and time left."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.at = 0
        self.open = False       # a line without a total is being rewritten in place

    def begin(self, progress: Progress) -> None:
        self.end(progress)          # a new piece of the work (the next file) gets its own bar
        if progress.total is None:
            return
        self.bar = click.progressbar(length=progress.total, label=progress.label, file=sys.stderr, show_pos=True,
                                     show_eta=True, show_percent=True,
                                     item_show_func=lambda _: f"{progress.rate():,.0f} {progress.unit}/s"
                                     + (f"  {progress.note}" if progress.note else ""))
        self.bar.__enter__()
        self.at = 0

    def update(self, progress: Progress) -> None:
        if self.bar is None and progress.total is not None:
            self.begin(progress)
        if self.bar is None:
            click.echo(f"\r{progress.line()}", nl=False, err=True)
            self.open = True
            return
        self.bar.update(progress.done - self.at, progress.note)
        self.at = progress.done

    def end(self, progress: Progress) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None
        elif self.open:
            click.echo("", err=True)
        self.open = False


class Interrupts:
    """The first SIGINT asks the work to stop at its next step boundary; a second one stops now."""

    def __init__(self) -> None:
        self.asked = False
        self.previous: Any = None

    def handle(self, signum: int, frame: Any) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True

    def __enter__(self) -> "Interrupts":
        self.previous = signal.signal(signal.SIGINT, self.handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        signal.signal(signal.SIGINT, self.previous)


def on_terminal() -> bool:
    return sys.stderr.isatty()


@contextmanager
def command(label: str, total: int | None = None, unit: str = "items") -> Iterator[Progress]:
    """Progress for a CLI command: a bar or lines on stderr, Ctrl-C as a clean stop. On a stop the
    summary (done, not done, how to finish) is printed and the command exits 130."""
    with Interrupts() as interrupts:
        progress = Progress(label, total, unit, [Bar() if on_terminal() else Lines()],
                            should_stop=lambda: interrupts.asked)
        try:
            yield progress
        except Stopped:
            progress.finish()
            click.echo(progress.summary(stopped=True), err=True)
            raise SystemExit(130) from None
        except BaseException:
            progress.finish()       # the bar gives the terminal its cursor back before the error shows
            raise
        progress.finish()
        if progress.began:
            click.echo(progress.summary(stopped=False), err=True)
