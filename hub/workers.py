"""The worker pool: one RQ worker process per connector queue, respawned when it dies.

One queue per process lets RQ move each job atomically (BLMOVE into an intermediate list), so a
crash cannot lose a job; short heartbeats get an abandoned job picked up within about two
minutes. Every process catches up on start: a connector with dirty contacts gets a flush.
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from typing import Any

from rq import Worker
from rq.serializers import JSONSerializer

log = logging.getLogger("hub.workers")


def run_one(queue: str, burst: bool = False) -> None:
    """Run a single RQ worker on `queue` inside an app context."""
    from . import create_app, logs
    from .ledger import dirty_key, erase_key
    from .queue import get_queues

    app = create_app()
    connector = queue.removeprefix("sync-")
    with app.app_context():
        r = app.extensions["redis"]
        if r.zcard(dirty_key(connector)) or r.zcard(erase_key(connector)):
            r.delete(f"hub:flushq:{connector}")
            get_queues().kick([connector])
        config = app.config["HUB"]
        # Syncing is asynchronous, answering a sender is not: under load the ingest API gets the
        # CPU first and the workers catch up (the dirty set keeps their work, nothing is lost).
        os.nice(config["WORKER_NICE"])
        logs.setup(names=("hub", "rq"))  # RQ's own lines as JSON too, with the job id
        worker = Worker([get_queues().get(connector)], connection=r, serializer=JSONSerializer,
                        worker_ttl=config["WORKER_TTL"], maintenance_interval=config["MAINTENANCE_INTERVAL"],
                        job_monitoring_interval=10)
        worker.work(burst=burst, with_scheduler=True, logging_level=os.environ.get("HUB_LOG_LEVEL", "WARNING"))


def run_pool(connectors: list[str]) -> None:
    """Start and supervise one process per connector queue until SIGTERM / SIGINT."""
    children: dict[str, subprocess.Popen[Any]] = {}
    stopping = False

    def spawn(name: str) -> None:
        children[name] = subprocess.Popen([sys.executable, "-m", "hub.workers", f"sync-{name}"])
        log.warning("worker for %s started (pid %s)", name, children[name].pid)

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for name in connectors:
        spawn(name)
    while not stopping:
        for name, child in list(children.items()):
            if child.poll() is not None and not stopping:
                log.warning("worker for %s exited with %s; respawning", name, child.returncode)
                spawn(name)
        time.sleep(0.5)
    deadline = time.monotonic() + 30
    for child in children.values():
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()


if __name__ == "__main__":
    run_one(sys.argv[1], burst="--burst" in sys.argv)
