"""Every process logs JSON, one record a line: the worker pool's own lines, and a worker's
traceback when it dies (here: its Redis cannot be reached), which is one record, not many lines."""
from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable

import pytest

from hub.core import logs
from hub.core.processes import free_port


def test_the_pool_and_a_dying_worker_write_only_json_records(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {**os.environ, "HUB_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
           "HUB_KLAVIYO_API_KEY": "pk_test", "HUB_KLAVIYO_BASE_URL": "http://127.0.0.1:9/klaviyo",
           "HUB_LOG_LEVEL": "INFO"}
    pool = subprocess.Popen([sys.executable, "-m", "hub", "worker"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    records: list[dict[str, Any]] = []
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        assert pool.stdout is not None
        while time.monotonic() < deadline:
            line = pool.stdout.readline()
            if not line:
                break
            lines.append(line)
            records.append(json.loads(line))  # fails on any line that is not one JSON object
            started = any(r["logger"] == "hub.workers" and "started" in r["msg"] for r in records)
            died = any(r["level"] == "critical" and "traceback" in r for r in records)
            if started and died:
                break
    finally:
        os.killpg(pool.pid, signal.SIGTERM)
        rest, _ = pool.communicate(timeout=60)
    lines += rest.splitlines(keepends=True)
    records += [json.loads(line) for line in rest.splitlines()]
    assert any(r["logger"] == "hub.workers" and "started (pid" in r["msg"] for r in records)
    crashes = [r for r in records if r["level"] == "critical"]
    assert crashes and all(r["exc_type"] == "ConnectionError" for r in crashes)
    assert all("Traceback (most recent call last)" in r["traceback"] for r in crashes)
    assert all(line.count("\n") == 1 for line in lines)



class InterruptedPipe(io.RawIOBase):
    """The bytes end of a pipe whose first write is interrupted by a signal handler that logs,
    as happens when the pipe is full and the pool or RQ gets SIGTERM."""

    def __init__(self, interrupt: Callable[[], None]) -> None:
        self.data = bytearray()
        self.interrupt: Callable[[], None] | None = interrupt

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:  # type: ignore[no-untyped-def,override]
        if self.interrupt is not None:
            handler, self.interrupt = self.interrupt, None
            handler()
        self.data += bytes(b)
        return len(b)


def test_a_signal_handler_that_logs_mid_write_keeps_every_line_whole(capsys) -> None:  # type: ignore[no-untyped-def]
    log = logging.getLogger("hub.test_interrupted")
    pipe = InterruptedPipe(lambda: log.warning("warm shut down requested"))
    # Python's own buffered text stream, as sys.stderr is: it refuses a reentrant write
    stream = io.TextIOWrapper(io.BufferedWriter(pipe), encoding="utf-8", line_buffering=True)
    handler = logs.setup("INFO", stream=stream, names=("hub.test_interrupted",))
    try:
        log.info("flushing klaviyo")
        log.info("stopped")
    finally:
        log.removeHandler(handler)
    assert "Logging error" not in capsys.readouterr().err
    lines = pipe.data.decode().splitlines()
    assert [json.loads(line)["msg"] for line in lines] == ["flushing klaviyo", "warm shut down requested", "stopped"]


class Stop(Exception):
    pass


def test_a_signal_that_raises_mid_write_waits_for_the_line_then_reaches_the_caller(capsys) -> None:  # type: ignore[no-untyped-def]
    """RQ's scheduler raises StopRequested from its SIGTERM handler. Sent while a line is being
    written, the signal runs once the line is whole, and its exception reaches the code that
    logged, as it would anywhere else."""
    log = logging.getLogger("hub.test_stopped")
    main = threading.main_thread().ident
    assert main is not None
    # a real signal, mid-write, to the main thread (where Python runs signal handlers)
    pipe = InterruptedPipe(lambda: signal.pthread_kill(main, signal.SIGUSR1))

    def stop_requested(signum: int, frame: Any) -> None:
        log.warning("stop requested")
        raise Stop()

    previous = signal.signal(signal.SIGUSR1, stop_requested)
    stream = io.TextIOWrapper(io.BufferedWriter(pipe), encoding="utf-8", line_buffering=True)
    handler = logs.setup("INFO", stream=stream, names=("hub.test_stopped",))
    try:
        with pytest.raises(Stop):
            log.info("flushing klaviyo")
    finally:
        log.removeHandler(handler)
        signal.signal(signal.SIGUSR1, previous)
    assert "Logging error" not in capsys.readouterr().err
    assert [json.loads(line)["msg"] for line in pipe.data.decode().splitlines()] == ["flushing klaviyo", "stop requested"]
