"""Vendor jobs still running after a push (Klaviyo's bulk imports): seen through, never assumed.

Their contacts wait here, neither landed nor failed, and leave the dirty set so no flush pushes
them again meanwhile. A follow-up check is scheduled on the connector's queue with RQ's
`enqueue_in` (the worker pool runs RQ's scheduler), so no worker sits waiting; each check reads
the job once and, while it still runs, schedules the next with a longer wait. When the job is
done, rejected contacts become failed syncs and the others finish their push (consent, lists)
and are recorded as landed, unless they changed meanwhile: then they are simply dirty again.
"""
from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import Any

from flask import current_app

from connectors import Connector
from connectors.errors import AuthError, RetriableVendorError, VendorError

from . import sync
from .ledger import dirty_key, get_ledger
from .mappingstore import current_mapping
from .queue import get_queues

JOBS = "hub:vjobs:{}"            # zset: job reference -> when its next check is due
JOB = "hub:vjob:{}:{}"           # JSON: emails (in the order sent), versions, fingerprints, checks, since
WAITING = "hub:vjobwait:{}"      # hash: email -> the job reference it waits on
# Seconds before each successive check, then the last step again; a job still running after
# GIVE_UP seconds becomes a (retriable) failed sync so ops can see it.
STEPS = (2, 5, 15, 30, 60, 120, 300)
GIVE_UP = 24 * 3600
LOST = 120                       # a check this late was lost (e.g. Redis restored): re-arm it


def redis() -> Any:
    return current_app.extensions["redis"]


def delay(checks: int) -> float:
    return float(STEPS[min(checks, len(STEPS) - 1)])


def hold(connector: str, pending: dict[str, list[str]], versions: dict[str, int], prints: dict[str, str]) -> set[str]:
    """Keep the contacts of each still-running job and schedule its first check."""
    held: set[str] = set()
    if not pending:
        return held
    r, now = redis(), time.time()
    for ref, emails in pending.items():
        record = {"emails": emails, "versions": {e: versions[e] for e in emails},
                  "prints": {e: prints[e] for e in emails}, "checks": 0, "since": now}
        pipe = r.pipeline(transaction=True)
        pipe.set(JOB.format(connector, ref), json.dumps(record))
        pipe.zadd(JOBS.format(connector), {ref: now + delay(0)})
        pipe.hset(WAITING.format(connector), mapping={e: ref for e in emails})
        pipe.execute()
        schedule(connector, ref, delay(0))
        held.update(emails)
    sweep(connector)
    return held


def schedule(connector: str, ref: str, seconds: float) -> None:
    # RQ keeps whole seconds: round up so the check never comes before it is due.
    get_queues().get(connector).enqueue_in(timedelta(seconds=int(seconds + 0.999)), "hub.vendorjobs.check",
                                           connector, ref, job_timeout=300, result_ttl=60,
                                           description=f"check {connector} job {ref}")


def sweep(connector: str) -> int:
    """Re-arm checks that are long overdue (their scheduled job was lost); for the hub scheduler too."""
    r = redis()
    late = r.zrangebyscore(JOBS.format(connector), "-inf", time.time() - LOST)
    for ref in late:
        ref = ref.decode()
        r.zadd(JOBS.format(connector), {ref: time.time() + delay(0)})
        schedule(connector, ref, delay(0))
    return len(late)


def waiting(connector: str, email: str) -> bool:
    """The contact waits on a vendor job (the contact view shows it as pending)."""
    return bool(redis().hexists(WAITING.format(connector), email))


def forget(connector: str, emails: list[str]) -> None:
    """Erased people leave the pending jobs: their place in a job's order is kept, their email is not."""
    r = redis()
    refs = r.hmget(WAITING.format(connector), emails) if emails else []
    for email, ref in zip(emails, refs):
        if ref is None:
            continue
        key = JOB.format(connector, ref.decode())
        raw = r.get(key)
        if raw:
            record = json.loads(raw)
            record["emails"] = ["" if e == email else e for e in record["emails"]]
            record["versions"].pop(email, None)
            record["prints"].pop(email, None)
            r.set(key, json.dumps(record), keepttl=True)
        r.hdel(WAITING.format(connector), email)


def check(connector: str, ref: str) -> dict[str, Any]:
    """RQ job: read one pending vendor job once; finish its contacts, or look again later."""
    r = redis()
    raw = r.get(JOB.format(connector, ref))
    if raw is None:
        return {"job": ref, "gone": True}          # already finished (a check delivered twice)
    record = json.loads(raw)
    if sync.paused(connector):
        return again(connector, ref, record, delay(len(STEPS)))
    client = sync.build_connector(connector)
    try:
        outcome = client.check_job(ref, record["emails"])
    except AuthError as exc:
        sync.pause_for_auth(connector, exc)
        return again(connector, ref, record, delay(len(STEPS)))
    except RetriableVendorError as exc:
        return again(connector, ref, record, max(delay(record["checks"]), exc.retry_after or 0.0))
    except VendorError as exc:
        # The job cannot be read (e.g. 404): its outcome is unknown, so its contacts are pushed again.
        release(connector, ref, record)
        sync.redirty(connector, live(record))
        get_queues().kick([connector])
        return {"job": ref, "unreadable": exc.message}
    if not outcome.done:
        record["checks"] += 1
        if time.time() - record["since"] > GIVE_UP:
            release(connector, ref, record)
            sync.record_failure(connector, live(record), RetriableVendorError(
                f"{connector} job {ref} still running after {GIVE_UP // 3600} h", code="job_still_running"))
            return {"job": ref, "gave_up": True}
        return again(connector, ref, record, delay(record["checks"]))
    return finish(connector, client, ref, record, outcome.failed)


def again(connector: str, ref: str, record: dict[str, Any], seconds: float) -> dict[str, Any]:
    r = redis()
    r.set(JOB.format(connector, ref), json.dumps(record))
    r.zadd(JOBS.format(connector), {ref: time.time() + seconds})
    schedule(connector, ref, seconds)
    return {"job": ref, "running": True, "next_check_in": seconds}


def live(record: dict[str, Any]) -> list[str]:
    return [e for e in record["emails"] if e]


def release(connector: str, ref: str, record: dict[str, Any]) -> None:
    """The job is settled: drop it and the contacts' pointers to it."""
    r = redis()
    pipe = r.pipeline(transaction=True)
    pipe.delete(JOB.format(connector, ref))
    pipe.zrem(JOBS.format(connector), ref)
    emails = live(record)
    if emails:
        pipe.hdel(WAITING.format(connector), *emails)
    pipe.execute()


def finish(connector: str, client: Connector, ref: str, record: dict[str, Any],
           rejected: dict[str, VendorError]) -> dict[str, Any]:
    """The job is done: rejected contacts fail; the rest finish their push unless they changed."""
    r = redis()
    emails = live(record)
    # A safety net first: if this check dies half-way, the next flush pushes them again.
    if emails:
        r.zadd(dirty_key(connector), {e: time.time() for e in emails}, nx=True)
    release(connector, ref, record)
    versions = dict(zip(emails, get_ledger().versions(emails)))
    fresh = [e for e in emails if versions[e] == record["versions"].get(e)]
    failures = {e: x for e, x in rejected.items() if e in fresh}
    sync.record_failures(connector, failures)
    if failures:
        r.zrem(dirty_key(connector), *failures)
    entries = sync.plan(connector, current_mapping(r, connector),
                        get_ledger().states([e for e in fresh if e not in failures]))
    ready = [x for x in entries if x["status"] == "would_push" and x["fingerprint"] == record["prints"].get(x["email"])]
    done = [x["email"] for x in entries if x["status"] in ("unchanged", "unknown")]
    landed: list[str] = []
    if ready:
        try:
            result = client.finish([x["update"] for x in ready])
        except VendorError as exc:
            if not exc.retriable:
                sync.record_failure(connector, [x["email"] for x in ready], exc)
                r.zrem(dirty_key(connector), *[x["email"] for x in ready])
            get_queues().kick([connector])      # retriable: they are dirty, the next flush pushes them
            return {"job": ref, "finished": False, "error": exc.as_dict()}
        sync.record_failures(connector, {e: x for e, x in result.failed.items()})
        if result.failed:
            r.zrem(dirty_key(connector), *result.failed)
        landed = [x["email"] for x in ready if x["email"] not in result.failed]
        record_landed(connector, [x for x in ready if x["email"] in landed])
    cleared = landed + done
    sync.clear_dirty(connector, cleared, [versions[e] for e in cleared])
    get_queues().kick([connector])              # whatever changed meanwhile (or differs now) is dirty
    return {"job": ref, "finished": True, "landed": len(landed), "failed": len(failures)}


def record_landed(connector: str, entries: list[dict[str, Any]]) -> None:
    """What sync.push records for a landed contact: what was pushed (the next diff's base)."""
    pipe = redis().pipeline(transaction=False)
    for entry in entries:
        update = entry["update"]
        pipe.hset(sync.PUSHED.format(connector), update.email, json.dumps(
            {"fp": entry["fingerprint"], "lists": update.lists, "consent": update.marketing_consent}))
        pipe.hset(sync.LAST.format(connector), update.email, json.dumps({"at": time.time(), "ok": True}))
    pipe.execute()
