"""Running the hub's commands as child processes: the demo, the end-to-end tests and the
benchmark all start the sandbox, the hub and a worker pool this way."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, Mapping

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
    """Wait until `url` answers 2xx; RuntimeError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def start(name: str, args: Iterable[str], env: Mapping[str, str], logs: Path,
          cwd: Path | None = None) -> subprocess.Popen[bytes]:
    """`python -m hub <args>` in its own session (so its children can be signalled together),
    its output appended to logs/<name>.log."""
    with open(logs / f"{name}.log", "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "hub", *args], env=dict(env), cwd=cwd,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 20) -> None:
    """SIGTERM each process group, then SIGKILL what has not exited after `timeout`."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
