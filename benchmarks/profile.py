"""Profiling the single-event path under the benchmark's own load (`./dev bench --profile DIR`).

py-spy (the `profile` extra) samples the hub's gunicorn workers from outside, so the hub runs
unchanged: `py-spy record --subprocesses` on the master, for as long as the single-event phase
lasts. It writes the collapsed stacks (`single-hub.txt`: one line per distinct stack, frames
from the outermost in, then the number of samples; flamegraph.pl and speedscope read it) and a
summary (`single-hub-top.txt`): the functions with the largest share of the samples taken while a
worker was handling a connection (from gunicorn's `handle` in, so parsing, the app and closing the
socket), counted inclusively (a function and everything it called) and by self time. It samples
wall time: a worker waiting on Redis or on a socket counts as much as one computing.
"""
from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

RATE = 250     # samples a second per process
# A gunicorn worker handling one connection (sync's or gthread's): the samples the summary counts.
HANDLER = re.compile(r"^\w*Worker\.handle \(gunicorn/workers/")


def py_spy() -> str:
    here = Path(sys.executable).parent / "py-spy"
    found = str(here) if here.exists() else shutil.which("py-spy")
    if not found:
        raise RuntimeError("py-spy is not installed: pip install -e '.[profile]' (see docs/benchmark.md)")
    return found


class Profiler:
    """py-spy recording a process and its children until `stop()`."""

    def __init__(self, pid: int, directory: Path, name: str = "single-hub") -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.raw, self.top = directory / f"{name}.txt", directory / f"{name}-top.txt"
        self.log = open(directory / f"{name}.log", "wb")
        self.proc = subprocess.Popen([py_spy(), "record", "--pid", str(pid), "--subprocesses", "--format", "raw",
                                      "--rate", str(RATE), "--output", str(self.raw)],
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self) -> dict[str, Any]:
        """Stop recording (py-spy writes its file on SIGINT); the summary, also written to `top`."""
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()
        if not self.raw.exists():
            raise RuntimeError(f"py-spy wrote no profile; see {self.log.name}")
        summary = summarise(self.raw.read_text())
        self.top.write_text(render(summary))
        return {"samples": summary["samples"], "stacks": str(self.raw), "top": str(self.top)}


def function_of(frame: str) -> str:
    """`name (path/to/file.py:123)` -> `name (path/to/file.py)`: one entry per function."""
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def summarise(raw: str, limit: int = 40) -> dict[str, Any]:
    """Total samples and the top functions by inclusive and by self samples."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [function_of(f) for f in stack.split(";")]
        start = next((i for i, f in enumerate(frames) if HANDLER.match(f)), None)
        if start is None:          # the master, a worker waiting for a connection, a heartbeat
            continue
        frames = frames[start:]
        n = int(count)
        total += n
        for name in set(frames):
            inclusive[name] += n
        own[frames[-1]] += n
    return {"samples": total, "inclusive": inclusive.most_common(limit), "self": own.most_common(limit)}


def render(summary: dict[str, Any]) -> str:
    total = max(summary["samples"], 1)
    lines = [f"{summary['samples']} samples of workers handling a request", "",
             "inclusive (a function and what it called):"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in summary["inclusive"]]
    lines += ["", "self:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in summary["self"]]
    return "\n".join(lines) + "\n"
