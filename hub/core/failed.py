"""Failed syncs: RQ's FailedJobRegistry of each connector queue, read and steered by ops.

There is no second list: `rq info`, `rq requeue` and rq-dashboard see exactly these jobs. What the
hub adds over `rq requeue` is the reset of the attempt counters (RQ's requeue keeps
`retries_left` / `number_of_retries`, so a requeued job would get no automatic retries) and the
connector's own back-off counter; the job itself (hub.core.sync.sync_contacts, through its entry
point hub.jobs.entry.sync_contacts) re-reads the contacts' CURRENT state, so a retry never replays
an old count.
"""
from __future__ import annotations

import logging

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry, FinishedJobRegistry
from rq.results import Result
from rq.serializers import JSONSerializer

from hub.core import failindex
from hub.core.erasure import mentions
from hub.core.failedjob import _iso, describe, failure_text, last_line
from hub.core.progress import Progress
from hub.core.queue import get_queues
from hub.core.sync import ATTEMPTS
from hub.core import jobnames, services
log = logging.getLogger("hub")

RELATIVE = re.compile(r"^(\d+)\s*([smhd])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


class NotFound(LookupError):
    """No failed sync with that id."""


def parse_since(value: str | None) -> datetime | None:
    """`since` as ISO 8601 ("2026-11-21T10:00:00Z") or an age ("30m", "2h", "1d")."""
    if not value:
        return None
    match = RELATIVE.match(value.strip())
    if match:
        return datetime.now(timezone.utc) - timedelta(**{UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"since must be ISO 8601 or an age like 30m, 2h, 1d; got {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def registries(connector: str | None = None) -> list[tuple[str, FailedJobRegistry]]:
    queues = get_queues()
    names = [connector] if connector else queues.connectors
    unknown = [n for n in names if n not in queues.connectors]
    if unknown:
        raise NotFound(f"no enabled connector named {unknown[0]!r}; enabled: {', '.join(queues.connectors)}")
    return [(n, FailedJobRegistry(queue=queues.get(n))) for n in names]


def fetch(job_id: str) -> Job:
    try:
        return Job.fetch(job_id, connection=services.current().redis, serializer=JSONSerializer)
    except NoSuchJobError:
        raise NotFound(f"no failed sync {job_id!r}") from None


def list_failed(connector: str | None = None, code: str | None = None, since: str | None = None,
                contact: str | None = None) -> list[dict[str, Any]]:
    """Failed syncs, newest first, filtered by connector, vendor error code (or HTTP status),
    last attempt at or after `since`, and contact email."""
    after = parse_since(since)
    out = []
    for name, registry in registries(connector):
        for job in Job.fetch_many(registry.get_job_ids(), connection=registry.connection,
                                  serializer=JSONSerializer):
            if job is None:
                continue
            item = describe(job, name)
            if code and code not in (str(item["code"]), str(item["status"])):
                continue
            if after and (item["last_attempt"] or "") < _iso(after):  # type: ignore[operator]
                continue
            if contact and contact.strip().lower() not in item["contacts"]:
                continue
            out.append(item)
    return sorted(out, key=lambda i: (i["last_attempt"] or "", i["id"]), reverse=True)


def show(job_id: str) -> dict[str, Any]:
    job = fetch(job_id)
    connector = job.origin.removeprefix("sync-")
    if job.id not in registries(connector)[0][1]:
        raise NotFound(f"job {job_id!r} is not a failed sync")
    item = describe(job, connector)
    item["exception"] = last_line(failure_text(job))
    item["function"] = job.func_name
    return item


def reset_counters(job: Job) -> None:
    """What `rq requeue` leaves behind: RQ's retry counters and the hub's attempt count."""
    redis = job.connection
    job.meta.update({"attempts": 0, "retries": int(job.meta.get("retries", 0)) + 1})
    # Through the job's own attributes and save(): a job enqueued with Retry (a flush) gets its
    # full allowance back, and the count of retries RQ made starts again from none.
    job.number_of_retries = 0
    if job.retry_intervals:
        job.retries_left = len(job.retry_intervals)
    job.save()
    connector = job.origin.removeprefix("sync-")
    redis.delete(ATTEMPTS.format(connector), f"{ATTEMPTS.format(connector)}:first")


def retry(job_ids: Iterable[str], progress: Progress | None = None, batch: int = 100, actor: str = "hub") -> list[str]:
    """Put failed syncs back on their queue with fresh counters; returns the ids requeued. With a
    progress, a step is `batch` ids; a stopped run leaves the rest in the failed list, so running
    the same selection again retries only those."""
    ids = list(job_ids)
    done: list[str] = []
    if progress is not None:
        progress.resume = ("Run the same command again to retry the rest: the ones retried have left "
                           "the failed list.")
        progress.start(len(ids), "failed syncs")
    try:
        for start in range(0, len(ids), batch):
            chunk = ids[start:start + batch]
            done += [job_id for job_id in chunk if retry_one(job_id)]
            if progress is not None:
                progress.step(len(chunk), note=f"{len(done):,} requeued")
    finally:
        if done:   # a retried job that fails again comes back to the index as new
            failindex.drop(services.current().redis, done)
            log.warning("failed syncs retried", extra={"jobs": len(done), "by": actor})
    return done


def retry_one(job_id: str) -> bool:
    job = fetch(job_id)
    registry = FailedJobRegistry(queue=get_queues().get(job.origin.removeprefix("sync-")))
    if job.id not in registry:
        return False
    reset_counters(job)
    try:
        registry.requeue(job.id)
    except InvalidJobOperation:  # another ops call got there first
        return False
    return True


def discard(job_ids: Iterable[str], actor: str = "hub") -> list[str]:
    """Forget failed syncs (the contacts stay as they are; a later event or resync pushes them)."""
    done = []
    for job_id in job_ids:
        job = fetch(job_id)
        registry = FailedJobRegistry(queue=get_queues().get(job.origin.removeprefix("sync-")))
        if job.id in registry:
            registry.remove(job, delete_job=True)
            done.append(job.id)
    if done:
        log.warning("failed syncs discarded", extra={"jobs": len(done), "by": actor})
    return done


def select(ids: list[str] | None = None, every: bool = False, **filters: Any) -> list[str]:
    """The ids a bulk retry/discard acts on: explicit ids, a filter, or everything (--all)."""
    if ids:
        return ids
    if not every and not any(filters.values()):
        raise ValueError("name job ids, give a filter (connector, code, since, contact) or ask for all")
    return [item["id"] for item in list_failed(**filters)]


def redact(text: str | None, emails: list[str]) -> str:
    """The text with the addresses (in any letter case) replaced, so a vendor's message that
    quoted one ("invalid email address 'x@y'") can stay with the failed sync."""
    return mentions(emails).sub("[erased]", text or "")


def names(job: Job, emails: list[str]) -> bool:
    """Whether a job carries the address anywhere ops or RQ would show it: args, meta,
    description, or a recorded outcome (a flush returns the vendor's message on a fatal answer)."""
    texts = [json.dumps(list(job.args), default=str), json.dumps(job.meta or {}, default=str), job.description or ""]
    texts += [result.exc_string or json.dumps(result.return_value, default=str) for result in Result.all(job, serializer=JSONSerializer)]
    found = mentions(emails)
    return any(found.search(text) for text in texts)


def rewrite(job: Job, emails: list[str], rest: list[str], failed: bool = True) -> None:
    """The failed sync without the erased person: args, meta, description and the recorded
    failure, through RQ's own API, so `rq info`, rq-dashboard and `hub failed` agree."""
    ttl = services.current().config["FAILURE_TTL"]
    job.args = [job.args[0], rest]
    meta = job.meta
    meta.update({"contacts": [c for c in meta.get("contacts", rest) if c not in emails],
                 "message": redact(meta.get("message"), emails)})
    if job.description:
        job.description = re.sub(r"\d+ contact\(s\)", f"{len(rest)} contact(s)", redact(job.description, emails))
    job.save()
    if failed:
        reason = redact(failure_text(job), emails)
        Result.delete_all(job)
        Result.create_failure(job, ttl, reason or "rewritten after an erasure", worker_name="hub")


def forget(emails: list[str]) -> int:
    """After an erasure: failed syncs that named the person are rewritten without them, or
    discarded when they named no one else; so are retries waiting in the queue. Finished ones
    RQ still keeps for a while are deleted (their work is done). A failed erasure keeps the
    address, since it is how the deletion at the vendor is retried; it goes once that succeeds."""
    changed = 0
    for name, registry in registries():
        queue, finished = get_queues().get(name), FinishedJobRegistry(queue=get_queues().get(name))
        place: Any
        for place in (registry, finished, queue):
            for job in Job.fetch_many(place.get_job_ids(), connection=registry.connection, serializer=JSONSerializer):
                if job is None or job.func_name == jobnames.ERASE_CONTACTS or not names(job, emails):
                    continue
                contacts = job.args[1] if job.func_name == jobnames.SYNC_CONTACTS and len(job.args) > 1 else []
                rest = sorted(c for c in contacts if c not in emails)
                if rest and place is not finished:
                    rewrite(job, emails, rest, failed=place is registry)
                elif place is queue:
                    queue.remove(job)
                    job.delete()
                else:
                    place.remove(job, delete_job=True)
                changed += 1
    if changed:
        log.warning("syncs rewritten after an erasure", extra={"jobs": changed})
    return changed
