"""The hub's one scheduler: its periodic jobs, enqueued by RQ's own `rq.cron.CronScheduler`.

Every `hub worker` pool runs a scheduler process; a Redis lease (hub.core.lease) lets one of them
enqueue at a time, the others stand by and take over within HUB_SCHEDULER_LEASE seconds when the
active one goes silent. Each run of a job is also claimed once in Redis (`hub:cron:<name>:<slot>`,
the slot being the interval's step since the epoch or the cron time), so even two schedulers that
both believe they lead (one stalled past its lease, say) enqueue a run once. The jobs go to the
`hub-periodic` queue, served by one worker per pool; RQ's tools (`rq cron`, the job history
`rq:cron_job:<name>:jobs`) see them as any other cron job.
"""
from __future__ import annotations

import logging
import math
import os
import signal
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

from redis import Redis
from rq import Queue
from rq.cron import CronJob, CronScheduler
from rq.job import Job
from rq.serializers import JSONSerializer

from hub.core.lease import Lease
from hub.core import jobnames, keys

QUEUE = "hub-periodic"
log = logging.getLogger("hub.scheduler")


@dataclass(frozen=True)
class Periodic:
    """One periodic job: what to run (a dotted path or a function), where, and how often."""

    name: str
    func: str | Callable[..., Any]
    queue: str = QUEUE
    interval_seconds: float | None = None
    cron: str | None = None
    args: tuple[Any, ...] = ()
    timeout: int = 300


def periodic_jobs(config: Mapping[str, Any]) -> list[Periodic]:
    """The hub's periodic jobs. Add an entry here; the function must also work when called directly.
    An interval of 0 turns a job off."""
    from hub.core.audit import periodic_audits

    jobs = [
        Periodic("sweep", jobnames.SWEEP, interval_seconds=config["SWEEP_INTERVAL"], timeout=120),
        Periodic("vendor-jobs", jobnames.VENDOR_JOBS_SWEEP, interval_seconds=config["SWEEP_INTERVAL"], timeout=120),
        *(Periodic(**entry) for entry in periodic_audits(dict(config))),
    ] + ([  # CSV feeds over SFTP (docs/feeds.md), when HUB_FEEDS_FILE names some
        Periodic("feeds-poll", jobnames.FEEDS_POLL, interval_seconds=float(config.get("FEEDS_POLL_INTERVAL", 60)),
                 timeout=3600),
        Periodic("feeds-exports", jobnames.FEEDS_EXPORTS_DUE, interval_seconds=60, timeout=120),
    ] if config.get("FEEDS_FILE") else [])
    return [job for job in jobs if job.cron or (job.interval_seconds or 0) > 0]


def dotted(func: str | Callable[..., Any]) -> str:
    return func if isinstance(func, str) else f"{func.__module__}.{func.__qualname__}"


class ClaimedCronJob(CronJob):
    """A CronJob whose runs are aligned slots, each enqueued by whoever claims it first."""

    def __init__(self, periodic: Periodic) -> None:
        interval = periodic.interval_seconds
        super().__init__(QUEUE if not periodic.queue else periodic.queue, func_name=dotted(periodic.func),
                         args=periodic.args, interval=interval, cron=periodic.cron,  # type: ignore[arg-type]
                         job_timeout=periodic.timeout, result_ttl=600, name=periodic.name)
        if interval:
            self.next_enqueue_time = self.slot_start(self.slot_of(datetime.now(timezone.utc)))

    def slot_of(self, moment: datetime) -> int:
        return math.floor(moment.timestamp() / float(self.interval or 1))

    def slot_start(self, slot: int) -> datetime:
        return datetime.fromtimestamp(slot * float(self.interval or 1), timezone.utc)

    def get_next_enqueue_time(self) -> datetime:
        if self.interval:
            return self.slot_start(self.slot_of(datetime.now(timezone.utc)) + 1)
        return super().get_next_enqueue_time()

    def should_run(self) -> bool:
        return self.next_enqueue_time is not None and datetime.now(timezone.utc) >= self.next_enqueue_time

    def current_slot(self) -> int:
        if self.interval:
            return self.slot_of(datetime.now(timezone.utc))
        assert self.next_enqueue_time is not None
        return int(self.next_enqueue_time.timestamp())

    def enqueue(self, connection: Redis) -> Job | None:  # type: ignore[override]
        """Claim this run, then enqueue it (JSON, like every hub job); None when already claimed."""
        slot = self.current_slot()
        keep = int((self.interval or 3600) * 2) + 60
        if not connection.set(keys.CRON.format(self.name, slot), os.getpid(), nx=True, ex=keep):
            return None
        queue = Queue(self.queue_name, connection=connection, serializer=JSONSerializer)
        job = queue.enqueue(self.func_name, args=self.args, kwargs=self.kwargs, meta={"slot": slot},
                            description=f"{self.name} (slot {slot})", **self.job_options)
        assert job.enqueued_at is not None
        stamp = job.enqueued_at.timestamp()
        with connection.pipeline() as pipe:
            pipe.zadd(self.job_history_key, {job.id: stamp})
            pipe.zremrangebyrank(self.job_history_key, 0, -1001)
            pipe.expire(self.job_history_key, 7 * 86400)
            pipe.execute()
        log.info("periodic job queued", extra={"periodic": self.name, "slot": slot, "job": job.id})
        return job


class HubScheduler(CronScheduler):
    """RQ's CronScheduler that enqueues only while it holds the hub's scheduler lease."""

    def __init__(self, connection: Redis, jobs: list[Periodic], lease_ttl: float) -> None:
        super().__init__(connection, logging_level=os.environ.get("HUB_LOG_LEVEL", "WARNING"))
        self.lease = Lease(connection, "scheduler", lease_ttl)
        self.lease_ttl = lease_ttl
        self._cron_jobs = [ClaimedCronJob(p) for p in jobs]

    def leading(self) -> bool:
        """Renew the lease when held, else try to take it."""
        if self.lease.token and self.lease.renew():
            return True
        self.lease.token = None
        if self.lease.acquire():
            log.warning("scheduler active", extra={"scheduler": self.name})
            return True
        return False

    def enqueue_jobs(self) -> list[CronJob]:
        if not self.leading():
            return []
        return super().enqueue_jobs()

    def calculate_sleep_interval(self) -> float:
        """Wake at least three times per lease, so the leader renews in time and a standby
        notices within one lease that the leader went silent."""
        return max(0.05, min(super().calculate_sleep_interval(), self.lease_ttl / 3))

    def _request_stop(self, signum: int, frame: Any) -> None:
        """One stop is enough: the pool and the process group may both send a TERM."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        super()._request_stop(signum, frame)

    def register_death(self, pipeline: Any = None) -> None:
        self.lease.release()     # hand over at once on a clean stop
        super().register_death(pipeline)


def run() -> None:
    """The scheduler process of a worker pool (`python -m hub.jobs.scheduler`)."""
    from hub.core import logs
    from hub.core.bootstrap import build_services
    from hub.core.services import using

    logs.setup(names=("hub", "rq"))
    core = build_services()
    with using(core):
        config = core.config
        HubScheduler(core.redis, periodic_jobs(config), config["SCHEDULER_LEASE"]).start()


if __name__ == "__main__":
    run()
    sys.exit(0)
