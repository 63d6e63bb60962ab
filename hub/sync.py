"""The worker's jobs: flush a connector's dirty contacts to its vendor, retry, record failures.

Jobs carry connector names and contact emails, never increments (state, not deltas): a job run
twice pushes the same absolute values twice, so RQ's at-least-once delivery is harmless.
"""
from __future__ import annotations

import hashlib
import json
import random
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import current_app
from rq import get_current_job
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from connectors import CONNECTORS, Connector, ContactUpdate
from connectors.errors import AuthError, FatalVendorError, RateLimited, RetriableVendorError, VendorError
from connectors.ratelimit import RateLimiter
from mappings import render

from .config import connector_settings, retry_schedule
from .ledger import dirty_key, erase_key, get_ledger
from .mappingstore import current_mapping
from .queue import FLAG, get_queues, queue_name

PUSHED = "hub:pushed:{}"
PAUSED = "hub:paused:{}"
BACKOFF = "hub:backoff:{}"
ATTEMPTS = "hub:attempts:{}"
LAST = "hub:last:{}"

# Clear dirty marks only for contacts not touched again since their state was read.
_CLEAR = """
for i, email in ipairs(ARGV) do
  if i > 1 then
    local want = KEYS[i]
    local now = redis.call('HGET', 'hub:ver', email) or '0'
    if now == want then redis.call('ZREM', KEYS[1], email) end
  end
end
return 1
"""


class SyncFailed(Exception):
    """Raised by sync_contacts so RQ files the job in the FailedJobRegistry."""


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def redis() -> Any:
    return current_app.extensions["redis"]


def build_connector(name: str) -> Connector:
    settings = connector_settings(current_app.config["HUB"], name)
    return CONNECTORS[name](settings, limiter=RateLimiter(redis(), "hub:rl"))


def fingerprint(rendered: dict[str, Any]) -> str:
    text = json.dumps({k: rendered[k] for k in ("identity", "fields", "lists", "marketing_consent")},
                      sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()


def clear_dirty(connector: str, emails: list[str], versions: list[int]) -> None:
    if emails:
        keys = [dirty_key(connector)] + [str(v) for v in versions]
        redis().eval(_CLEAR, len(keys), *keys, "", *emails)


def record_failure(connector: str, emails: list[str], error: VendorError, *, func: str = "hub.sync.sync_contacts",
                   attempts: int = 1, first: str | None = None) -> str:
    """File a failed sync: an RQ failed job that, requeued, pushes the contacts' CURRENT state."""
    config = current_app.config["HUB"]
    meta = {"connector": connector, "contacts": emails, "status": error.status, "code": error.code,
            "message": error.message, "retriable": error.retriable, "attempts": attempts,
            "first_attempt": first or now_iso(), "last_attempt": now_iso()}
    job = Job.create(func, args=[connector, emails], connection=redis(), origin=queue_name(connector),
                     meta=meta, failure_ttl=config["FAILURE_TTL"], serializer=JSONSerializer,
                     description=f"{func.rsplit('.', 1)[1]} {connector}: {len(emails)} contact(s)")
    job._status = JobStatus.FAILED
    job.ended_at = datetime.now(timezone.utc)
    job.save()
    registry = FailedJobRegistry(queue=get_queues().get(connector))
    registry.add(job, ttl=config["FAILURE_TTL"], exc_string=f"{error.code or error.status}: {error.message}")
    current_app.logger.warning("sync failed", extra={"connector": connector, "contacts": len(emails),
                                                     "status": error.status, "code": error.code})
    return job.id


def updates_for(connector: str, emails: list[str]) -> tuple[list[ContactUpdate], dict[str, str], list[str], dict[str, VendorError]]:
    """Render each contact; returns (updates, fingerprints, unchanged-or-gone, render failures)."""
    states = get_ledger().states(emails)
    mapping = current_mapping(redis(), connector)
    previous = redis().hmget(PUSHED.format(connector), emails) if emails else []
    updates, prints, skip, failed = [], {}, [], {}
    for email, before in zip(emails, previous):
        state = states[email]
        if state is None:
            skip.append(email)
            continue
        rendered = render(mapping, state)
        if rendered["errors"]:
            failed[email] = FatalVendorError("; ".join(rendered["errors"]), code="mapping_error")
            continue
        print_ = fingerprint(rendered)
        last = json.loads(before) if before else None
        if last and last["fp"] == print_:
            skip.append(email)
            continue
        prints[email] = print_
        updates.append(ContactUpdate(
            email=email, fields=rendered["fields"], lists=rendered["lists"], identity=rendered["identity"],
            marketing_consent=rendered["marketing_consent"],
            previous_lists=last["lists"] if last else None, previous_consent=last["consent"] if last else None))
    return updates, prints, skip, failed


def push(connector: str, client: Connector, emails: list[str]) -> dict[str, VendorError]:
    """Push the contacts' current state; record what landed; return the per-contact failures."""
    versions = get_ledger().versions(emails)
    updates, prints, skip, failed = updates_for(connector, emails)
    started = time.time()
    if updates:
        result = client.push(updates)
        failed.update(result.failed)
    landed = [u for u in updates if u.email not in failed]
    pipe = redis().pipeline(transaction=False)
    for update in landed:
        pipe.hset(PUSHED.format(connector), update.email, json.dumps(
            {"fp": prints[update.email], "lists": update.lists, "consent": update.marketing_consent}))
    pipe.hset(LAST.format(connector), mapping={u.email: json.dumps({"at": started, "ok": True}) for u in landed}
              or {"_": "{}"})
    pipe.execute()
    done = [e for e in emails if e not in failed]
    clear_dirty(connector, done, [v for e, v in zip(emails, versions) if e not in failed])
    return failed


def erase_pending(connector: str, client: Connector) -> int:
    """Delete erased people at the vendor; forget what the hub pushed for them."""
    emails = [e.decode() for e in redis().zrange(erase_key(connector), 0, client.max_batch - 1)]
    if not emails:
        return 0
    result = client.erase(emails)
    for email, error in result.failed.items():
        record_failure(connector, [email], error, func="hub.sync.erase_contacts")
    pipe = redis().pipeline(transaction=False)
    pipe.zrem(erase_key(connector), *emails)
    pipe.hdel(PUSHED.format(connector), *emails)
    pipe.execute()
    return len(emails)


def paused(connector: str) -> dict[str, Any] | None:
    value = redis().get(PAUSED.format(connector))
    return json.loads(value) if value else None


def pause(connector: str, reason: str, by: str = "ops") -> None:
    redis().set(PAUSED.format(connector), json.dumps({"reason": reason, "by": by, "at": now_iso()}))


def resume(connector: str) -> None:
    redis().delete(PAUSED.format(connector), BACKOFF.format(connector), ATTEMPTS.format(connector))
    get_queues().kick([connector])


def flush(connector: str) -> dict[str, Any]:
    """Push a connector's dirty contacts in batches until none are left or the budget is spent."""
    r, config = redis(), current_app.config["HUB"]
    r.delete(FLAG.format(connector))
    if paused(connector):
        return {"paused": True}
    until = r.get(BACKOFF.format(connector))
    if until and float(until) > time.time():
        return {"backing_off_until": float(until)}
    if config["FLUSH_WINDOW"]:
        time.sleep(config["FLUSH_WINDOW"])
    client = build_connector(connector)
    deadline = time.monotonic() + config["FLUSH_BUDGET"]
    emails: list[str] = []
    pushed = failed = 0
    try:
        while True:
            if time.monotonic() > deadline:
                get_queues().kick([connector])
                break
            erased = erase_pending(connector, client)
            emails = [e.decode() for e in r.zrange(dirty_key(connector), 0, client.max_batch - 1)]
            if not emails and not erased:
                break
            if emails:
                failures = push(connector, client, emails)
                for email, error in failures.items():
                    record_failure(connector, [email], error)
                if failures:
                    r.zrem(dirty_key(connector), *failures)
                pushed += len(emails) - len(failures)
                failed += len(failures)
    except RetriableVendorError as exc:
        return back_off(connector, exc, emails)
    except FatalVendorError as exc:
        record_failure(connector, emails, exc)
        if emails:
            r.zrem(dirty_key(connector), *emails)
        if isinstance(exc, AuthError):
            pause(connector, f"credentials rejected: {exc.status} {exc.code or ''} {exc.message}".strip(), by="hub")
        return {"fatal": exc.as_dict()}
    r.delete(ATTEMPTS.format(connector), f"{ATTEMPTS.format(connector)}:first")
    return {"pushed": pushed, "failed": failed, "calls": client.calls}


def back_off(connector: str, error: RetriableVendorError, emails: list[str]) -> dict[str, Any]:
    """Wait per the schedule (with jitter, never less than Retry-After); after the last step the
    batch becomes a failed sync and the connector moves on. Rate limits do not use up attempts."""
    r, config = redis(), current_app.config["HUB"]
    schedule = retry_schedule(config)
    key = ATTEMPTS.format(connector)
    attempt = int(r.get(key) or 0) if isinstance(error, RateLimited) else int(r.incr(key))
    r.set(f"{key}:first", now_iso(), nx=True)
    if attempt > len(schedule):
        first = (r.get(f"{key}:first") or b"").decode() or None
        record_failure(connector, emails, error, attempts=attempt, first=first)
        if emails:
            r.zrem(dirty_key(connector), *emails)
        r.delete(key, f"{key}:first")
        get_queues().kick([connector])
        return {"exhausted": True, "error": error.as_dict()}
    step = schedule[max(attempt - 1, 0)] if schedule else 1.0
    delay = step * random.uniform(1 - config["RETRY_JITTER"], 1 + config["RETRY_JITTER"])
    delay = max(delay, error.retry_after or 0.0, 0.5)
    r.set(BACKOFF.format(connector), str(time.time() + delay), ex=int(delay) + 60)
    get_queues().get(connector).enqueue_in(timedelta(seconds=delay), "hub.sync.flush", connector,
                                           job_timeout=300, result_ttl=60, description=f"flush {connector} (retry)")
    return {"retry_in": delay, "attempt": attempt, "error": error.as_dict()}


def sync_contacts(connector: str, emails: list[str]) -> dict[str, Any]:
    """Ops retry of a failed sync: push the contacts' CURRENT state once more."""
    job = get_current_job()
    client = build_connector(connector)
    try:
        failures = push(connector, client, emails) if emails else {}
    except VendorError as exc:
        failures = {e: exc for e in emails}
    if failures:
        first = next(iter(failures.values()))
        if job is not None:
            job.meta.update({"attempts": int(job.meta.get("attempts", 0)) + 1, "last_attempt": now_iso(),
                             "status": first.status, "code": first.code, "message": first.message,
                             "contacts": sorted(failures)})
            job.save_meta()
        raise SyncFailed(f"{len(failures)} contact(s) failed at {connector}: {first.code or first.status} {first.message}")
    return {"pushed": len(emails)}


def erase_contacts(connector: str, emails: list[str]) -> dict[str, Any]:
    """Ops retry of a failed erasure."""
    result = build_connector(connector).erase(emails)
    if result.failed:
        first = next(iter(result.failed.values()))
        raise SyncFailed(f"erasure failed at {connector}: {first.code or first.status} {first.message}")
    redis().hdel(PUSHED.format(connector), *emails)
    return {"erased": len(emails)}
