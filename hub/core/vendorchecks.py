"""Checking a vendor job still running after a push (hub/core/vendorjobs.py holds its contacts).

Each check reads the job once and, while it still runs, schedules the next with a longer wait.
When the job is done, rejected contacts become failed syncs and the others finish their push
(consent, lists) and are recorded as landed, unless they changed meanwhile: then they are simply
dirty again. A check holds the connector's flush lease, as a flush does: it writes to the vendor.
"""
from __future__ import annotations

import json
import time
from typing import Any

from connectors import Connector
from connectors.errors import AuthError, RetriableVendorError, VendorError

from hub.core import sync
from hub.core.lease import Lease
from hub.core.ledger import dirty_key, get_ledger
from hub.core.mappingstore import current_mapping
from hub.core.repairs import close_repairs
from hub.core.vendorjobs import GIVE_UP, JOB, JOBS, STEPS, WAITING, delay, redis, schedule


def check(connector: str, ref: str) -> dict[str, Any]:
    """RQ job: read one pending vendor job once; finish its contacts, or look again later. It
    writes to the vendor and records pushes, so it holds the connector's flush lease meanwhile."""
    if not redis().exists(JOB.format(connector, ref)):
        return {"job": ref, "gone": True}          # already finished (a check delivered twice)
    if sync.paused(connector):
        return again(connector, ref, delay(len(STEPS)))
    lease = sync.flush_lease(connector)
    if not lease.acquire():
        return again(connector, ref, max(lease.waiting_ms / 1000 + 0.5, delay(0)))   # a flush is writing
    try:
        return look(connector, ref, lease)
    finally:
        lease.release()
        sync.follow_up(connector)                  # a flush for whatever is dirty now


def look(connector: str, ref: str, lease: Lease) -> dict[str, Any]:
    r = redis()
    raw = r.hgetall(JOB.format(connector, ref))
    if not raw:
        return {"job": ref, "gone": True}
    record, checks = json.loads(raw[b"data"]), int(raw[b"checks"])
    client = sync.build_connector(connector, lease)
    try:
        outcome = client.check_job(ref, record["emails"])
    except sync.Superseded:
        return again(connector, ref, delay(checks))
    except AuthError as exc:
        sync.pause_for_auth(connector, exc)
        return again(connector, ref, delay(len(STEPS)))
    except RetriableVendorError as exc:
        return again(connector, ref, max(delay(checks), exc.retry_after or 0.0))
    except VendorError as exc:
        # The job cannot be read (e.g. 404): its outcome is unknown, so its contacts are pushed again.
        release(connector, ref, record)
        sync.redirty(connector, live(record))
        return {"job": ref, "unreadable": exc.message}
    if not outcome.done:
        if time.time() - record["since"] > GIVE_UP:
            release(connector, ref, record)
            sync.record_failure(connector, live(record), RetriableVendorError(
                f"{connector} job {ref} still running after {GIVE_UP // 3600} h", code="job_still_running"))
            return {"job": ref, "gave_up": True}
        r.hincrby(JOB.format(connector, ref), "checks", 1)
        return again(connector, ref, delay(checks + 1))
    return finish(connector, client, lease, ref, record, outcome.failed)


def again(connector: str, ref: str, seconds: float) -> dict[str, Any]:
    r = redis()
    r.zadd(JOBS.format(connector), {ref: time.time() + seconds})
    schedule(connector, ref, seconds)
    return {"job": ref, "running": True, "next_check_in": seconds}


def live(record: dict[str, Any]) -> list[str]:
    return [e for e in record["emails"] if e]


def release(connector: str, ref: str, record: dict[str, Any]) -> None:
    """The job is settled: drop it and the contacts' pointers to it (an erasure that waited on
    it can go ahead: the flush that follows sends it)."""
    pipe = redis().pipeline(transaction=True)
    pipe.delete(JOB.format(connector, ref))
    pipe.zrem(JOBS.format(connector), ref)
    if live(record):
        pipe.hdel(WAITING.format(connector), *live(record))
    pipe.execute()


def finish(connector: str, client: Connector, lease: Lease, ref: str, record: dict[str, Any],
           rejected: dict[str, VendorError]) -> dict[str, Any]:
    """The job is done: rejected contacts fail; the rest finish their push unless they changed."""
    r = redis()
    # A safety net first: if this check dies half-way, the next flush pushes them again.
    if live(record):
        r.zadd(dirty_key(connector), {e: time.time() for e in live(record)}, nx=True)
    release(connector, ref, record)
    emails = live(record)
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
    pushed: dict[str, str] = {}
    if ready:
        try:
            result = client.finish([x["update"] for x in ready])
        except sync.Superseded:
            # Some calls may have landed: re-marked for the flush that holds the lease now.
            sync.settle(connector, lease, {x["email"]: versions[x["email"]] for x in ready},
                        {x["email"]: sync.written(x["update"], "superseded") for x in ready})
            return {"job": ref, "finished": False, "superseded": True}
        except VendorError as exc:
            if not exc.retriable:
                sync.record_failure(connector, [x["email"] for x in ready], exc)
                r.zrem(dirty_key(connector), *[x["email"] for x in ready])
            return {"job": ref, "finished": False, "error": exc.as_dict()}   # retriable: still dirty
        sync.record_failures(connector, dict(result.failed))
        if result.failed:
            r.zrem(dirty_key(connector), *result.failed)
        pushed = {x["email"]: sync.written(x["update"], x["fingerprint"]) for x in ready
                  if x["email"] not in result.failed}
    sync.settle(connector, lease, {e: versions[e] for e in [*pushed, *done]}, pushed)
    if pushed:
        close_repairs(r, connector, list(pushed))   # a repair the audit queued landed with this job
    return {"job": ref, "finished": True, "landed": len(pushed), "failed": len(failures)}
