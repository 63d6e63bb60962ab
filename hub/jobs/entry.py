"""The functions RQ runs: one thin entry point per kind of hub job.

The core enqueues each by its dotted path (hub/core/jobnames.py names them all), so it never
imports this module; each entry point reaches the services the worker bound before it forked
its work horse (hub.jobs.workers.run_one) and calls the core. RQ stores these paths in every job
it keeps (queued, scheduled, failed), so renaming one needs a data layout step (hub/core/migrate.py).
"""
from __future__ import annotations

from typing import Any, Callable

from hub.core import audit as audit_core
from hub.core import contacts, failed, feed, services, sync, tasks, vendorchecks, vendorjobs
from hub.core.feeds import jobs as feed_jobs
from hub.core.progress import Progress


def bound() -> services.Services:
    """The worker's services (raises NoServices, naming the fix, when a job runs outside a worker)."""
    return services.current()


# -- syncing ------------------------------------------------------------------------------------

def flush(connector: str) -> dict[str, Any]:
    bound()
    return sync.flush(connector)


def sync_contacts(connector: str, emails: list[str]) -> dict[str, Any]:
    bound()
    return sync.sync_contacts(connector, emails)


def erase_contacts(connector: str, emails: list[str]) -> dict[str, Any]:
    bound()
    return sync.erase_contacts(connector, emails)


def check_vendor_job(connector: str, ref: str) -> dict[str, Any]:
    bound()
    return vendorchecks.check(connector, ref)


# -- periodic (the scheduler, hub.jobs.scheduler) ----------------------------------------------

def sweep() -> dict[str, int]:
    bound()
    return sync.sweep()


def sweep_vendor_jobs() -> dict[str, int]:
    bound()
    return vendorjobs.sweep_all()


def audit(connector: str) -> dict[str, Any]:
    bound()
    return audit_core.audit_job(connector)


def poll_feeds() -> dict[str, Any]:
    bound()
    return feed_jobs.poll_feeds()


def exports_due(now: str | None = None) -> list[str]:
    bound()
    return feed_jobs.exports_due(now)


def export_feed(name: str) -> dict[str, Any]:
    bound()
    return feed_jobs.export(name)


# -- /v1/jobs tasks -----------------------------------------------------------------------------

def task_work(kind: str, params: dict[str, Any]) -> Callable[[Progress], dict[str, Any]]:
    """The work of one kind of API job (hub.core.tasks.KINDS), given its validated parameters."""
    if kind == "resync":
        return lambda progress: contacts.resync_all(progress, params["connectors"], restart=params["restart"])
    if kind == "failed_retry":
        return lambda progress: {"retried": len(failed.retry(params["ids"], progress))}

    def replay(progress: Progress) -> dict[str, Any]:
        result = feed.replay(bound().redis, params["endpoint"], params["ids"], params["start"], params["end"], progress)
        return {"queued": result["queued"], "not_found": len(result["not_found"])}
    return replay


def run_task(job_id: str, kind: str, params: dict[str, Any]) -> None:
    bound()
    tasks.run(job_id, kind, task_work(kind, params))
