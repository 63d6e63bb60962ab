"""The worker pool: one RQ worker process per connector queue, one for the periodic jobs, and the
hub's scheduler, each respawned when it dies.

One queue per process lets RQ move each job atomically (BLMOVE into an intermediate list), so a
crash cannot lose a job; short heartbeats get an abandoned job picked up within about two
minutes. Every process catches up on start: a connector with dirty contacts gets a flush.

Stopping: the first TERM (or INT) is a warm shutdown, each worker finishes its job and exits; a
second signal, or HUB_POOL_STOP_TIMEOUT seconds without an exit, is a cold one, each worker kills
its work horse (RQ forks horses into their own process group, so nothing else reaches them); and
whatever still runs after that, horses included, is killed outright. No horse outlives its pool
on a stop. (A pool that is itself SIGKILLed cannot do this; the flush lease covers that case.)
"""
from __future__ import annotations

import gc
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rq import Worker
from rq.serializers import JSONSerializer
from hub.core import keys

log = logging.getLogger("hub.workers")
SCHEDULER = "scheduler"
FEED = "feed"       # the event feed's delivery process (hub.jobs.feed)
COLD_GAP = 1.2      # RQ ignores a second signal within a second of the first


def run_one(queue: str, burst: bool = False) -> None:
    """Run a single RQ worker on `queue` with the hub's services bound (its work horses, forked
    from it, inherit them): no web app is built."""
    from rq import Queue

    from hub.core import logs
    from hub.core.bootstrap import build_services
    from hub.core.migrate import migrate
    from hub.core.services import using
    # The job functions, with the core, the connectors and the feeds they use, imported once
    # here: every work horse is forked from this process, so none imports them again (a flush
    # job would otherwise spend about 0.1 s of CPU importing before its first contact).
    import hub.jobs.entry  # noqa: F401

    logs.setup(names=("hub", "rq"))  # first: a worker that dies at start still logs JSON
    core = build_services()
    with using(core):
        r = core.redis
        migrate(r, core.erasure)   # no job runs on an older data layout (hub/core/migrate.py)
        if queue.startswith("sync-"):
            connector = queue.removeprefix("sync-")
            if r.zcard(keys.dirty(connector)) or r.zcard(keys.erase(connector)):
                r.delete(keys.FLUSH_FLAG.format(connector))
                core.queues.kick([connector])
        config = core.config
        # Syncing is asynchronous, answering a sender is not: under load the ingest API gets the
        # CPU first and the workers catch up (the dirty set keeps their work, nothing is lost).
        os.nice(config["WORKER_NICE"])   # RQ's own lines are JSON too (above), with the job id
        target = Queue(queue, connection=r, serializer=JSONSerializer)
        worker = Worker([target], connection=r, serializer=JSONSerializer,
                        worker_ttl=config["WORKER_TTL"], maintenance_interval=config["MAINTENANCE_INTERVAL"],
                        job_monitoring_interval=10)
        # What is loaded by now (modules, services) lives as long as the worker: kept out of the
        # garbage collector's sweeps, so a work horse's collections walk only its own objects.
        gc.collect()
        gc.freeze()
        worker.work(burst=burst, with_scheduler=True, logging_level=os.environ.get("HUB_LOG_LEVEL", "WARNING"))


def children_of(pid: int) -> list[int]:
    """Direct children of a process (Linux /proc), e.g. a worker's work horse."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def kill_group(pid: int) -> None:
    """SIGKILL a process, and its whole group when it leads one (a horse and what it started)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def become_subreaper() -> None:
    """Horses orphaned by a dying worker are re-parented to the pool, so its stop reaches them."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)   # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        log.warning("cannot adopt orphaned work horses on this platform")


class Pool:
    """The supervisor behind `hub worker`."""

    def __init__(self, connectors: list[str], stop_timeout: float) -> None:
        from hub.jobs.scheduler import QUEUE

        self.queues = [f"sync-{name}" for name in connectors] + [QUEUE]
        self.stop_timeout = stop_timeout
        self.children: dict[str, subprocess.Popen[Any]] = {}
        self.signals = 0
        self.first_signal = 0.0

    def spawn(self, name: str) -> None:
        module = {SCHEDULER: ["hub.jobs.scheduler"], FEED: ["hub.jobs.feed"]}.get(name, ["hub.jobs.workers", name])
        self.children[name] = subprocess.Popen([sys.executable, "-m", *module])
        log.warning("%s started (pid %s)", name, self.children[name].pid)

    def on_signal(self, signum: int, frame: Any) -> None:
        self.signals += 1
        if self.signals == 1:
            self.first_signal = time.monotonic()

    def alive(self) -> list[subprocess.Popen[Any]]:
        return [c for c in self.children.values() if c.poll() is None]

    def adopted(self) -> list[int]:
        """Orphaned horses the pool adopted that still run (the finished ones are reaped)."""
        known = {c.pid for c in self.children.values()}
        running = []
        for pid in children_of(os.getpid()):
            if pid in known:
                continue
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if not done:
                running.append(pid)
        return running

    def signal_all(self, sig: int) -> None:
        for child in self.alive():
            try:
                child.send_signal(sig)
            except ProcessLookupError:
                pass

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        become_subreaper()
        for name in [*self.queues, SCHEDULER, FEED]:
            self.spawn(name)
        while not self.signals:
            for name, child in list(self.children.items()):
                if child.poll() is not None and not self.signals:
                    log.warning("%s exited with %s; respawning", name, child.returncode)
                    self.spawn(name)
            self.adopted()      # reaps the orphans that finished their job
            time.sleep(0.2)
        self.shut_down()

    def shut_down(self) -> None:
        """Warm, then cold on a second signal or the timeout, then kill what is left."""
        self.signal_all(signal.SIGTERM)
        cold_at: float | None = None
        while self.alive() or self.adopted():
            now = time.monotonic()
            wants_cold = self.signals > 1 or now - self.first_signal > self.stop_timeout
            if cold_at is None and wants_cold and now - self.first_signal >= COLD_GAP:
                log.warning("cold shutdown: stopping the jobs in flight")
                self.signal_all(signal.SIGTERM)     # RQ's cold shutdown: the worker kills its horse
                for pid in self.adopted():
                    kill_group(pid)
                cold_at = now
            if cold_at is not None and now - cold_at > 3:
                # A worker that missed its cold signal (RQ ignores one within a second of the
                # first): its horse is killed from here, and the worker ends its own way.
                for pid in [p for c in self.alive() for p in children_of(c.pid)] + self.adopted():
                    kill_group(pid)
            if cold_at is not None and now - cold_at > 10:
                for child in self.alive():
                    child.kill()
            time.sleep(0.1)
        for child in self.children.values():
            child.wait()


def run_pool(connectors: list[str], stop_timeout: float | None = None) -> None:
    """Start and supervise the pool until SIGTERM / SIGINT."""
    from hub.core import logs
    from hub.core.config import load

    logs.setup()  # the pool's own lines as JSON, like every other process

    Pool(connectors, load()["POOL_STOP_TIMEOUT"] if stop_timeout is None else stop_timeout).run()


if __name__ == "__main__":
    run_one(sys.argv[1], burst="--burst" in sys.argv)
