"""One scheduler for the hub: with two worker pools running (two schedulers), each run of a
periodic job is enqueued and executed once; when the active pool dies, the other takes over."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from rq.cron import CronScheduler
from rq.job import Job
from rq.serializers import JSONSerializer

from tests.faults.conftest import report

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

HISTORY = "rq:cron_job:sweep:jobs"


def runs(redis_client: Any) -> list[Job]:
    ids = [i.decode() for i in redis_client.zrange(HISTORY, 0, -1)]
    return [j for j in Job.fetch_many(ids, connection=redis_client, serializer=JSONSerializer) if j is not None]


def finished(redis_client: Any, at_least: int) -> list[Job]:
    """All runs so far, once at least `at_least` of them have finished."""
    jobs = runs(redis_client)
    return jobs if sum(1 for j in jobs if j.get_status() == "finished") >= at_least else []


def check_once(jobs: list[Job]) -> list[int]:
    """Each slot enqueued once, and each finished run executed once; returns the slots."""
    slots = [j.meta["slot"] for j in jobs]
    assert len(slots) == len(set(slots)), f"a run was enqueued twice: {sorted(slots)}"
    for job in jobs:
        if job.get_status() == "finished":
            assert [r.type for r in job.results()] == [job.latest_result().Type.SUCCESSFUL], job.id  # type: ignore[union-attr]
    return slots


def test_periodic_job_runs_once_with_two_pools(stack_factory, redis_client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    stack = stack_factory(env={"HUB_SWEEP_INTERVAL": "1", "HUB_SCHEDULER_LEASE": "3"})
    stack.start_worker("worker2")
    stack.wait_for(lambda: len(CronScheduler.all(redis_client)) == 2, what="both pools' schedulers")
    jobs = stack.wait_for(lambda: finished(redis_client, 4), timeout=90, what="four sweeps")
    check_once(jobs)

    # The active scheduler's pool dies (whole tree); the standby takes over within one lease.
    active = redis_client.get("hub:lease:scheduler").decode().split(" ", 1)[1]
    victim = next(name for name in ("worker", "worker2") if active.endswith(f":{find_scheduler_pid(stack, name)}"))
    before = len(jobs)
    stack.kill_worker(victim)
    jobs = stack.wait_for(lambda: finished(redis_client, before + 3), timeout=90, what="sweeps after the failover")
    slots = check_once(jobs)
    report(tmp_path, "two pools, then the active scheduler's pool SIGKILLed",
           {"runs": len(jobs), "distinct_slots": len(set(slots)), "doubled": len(slots) - len(set(slots))})


def find_scheduler_pid(stack, name: str) -> int:  # type: ignore[no-untyped-def]
    """The pid of the scheduler process in pool `name` (a child of the pool)."""
    from hub.jobs.workers import children_of

    for pid in children_of(stack.procs[name].pid):
        if b"hub.jobs.scheduler" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    raise AssertionError(f"no scheduler in pool {name}")
