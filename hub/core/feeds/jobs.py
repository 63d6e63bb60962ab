"""The feeds' jobs: plain functions run by the hub's scheduler (hub/jobs/scheduler.py: `feeds-poll`
and `feeds-exports`), by the pool's periodic worker, or directly by `hub feeds`. Each needs an
app context (the worker provides one)."""
from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter
from rq import Queue, Retry
from rq.serializers import JSONSerializer

from hub.core.config import retry_schedule

from hub.core.feeds import config, exports, poller, status, versions
from hub.core.feeds.sftp import BROKEN as SFTP_BROKEN
from hub.core.feeds.sftp import SFTPError
from hub.core import keys
from hub.core import jobnames, services

QUEUE = "hub-periodic"      # hub.jobs.scheduler.QUEUE: every worker pool serves it
log = logging.getLogger("hub.feeds")
_ADVANCE = """
local cur = tonumber(redis.call('GET', KEYS[1]) or '-1')
if cur < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) return 1 end
return 0
"""


def redis() -> Any:
    return services.current().redis


def settings() -> config.Feeds:
    return config.load(services.current().config)


def poll_feed(name: str, progress: Any = None) -> dict[str, Any]:
    """Import every new file in one feed's folder."""
    feed = settings().feed(name)
    mapping = versions.current_mapping(redis(), feed)
    try:
        result = poller.poll(feed, mapping, progress)
    except SFTPError as exc:
        status.polled(redis(), name, str(exc))
        raise
    status.polled(redis(), name, None)
    return result


def poll_feeds(progress: Any = None) -> dict[str, Any]:
    """Poll every configured feed; one feed's broken server does not stop the others."""
    out: dict[str, Any] = {}
    failures = []
    for name in settings().feeds:
        try:
            out[name] = poll_feed(name, progress)
        except SFTPError as exc:
            failures.append(f"{name}: {exc}")
            out[name] = {"error": str(exc)}
    if failures:
        raise SFTPError("; ".join(failures))
    return out


def export_key(name: str) -> str:
    return keys.FEEDS_EXPORT_STATUS.format(name)


def export(name: str, progress: Any = None) -> dict[str, Any]:
    """Build and upload one export now; an SFTP failure raises (RQ retries the job)."""
    spec = settings().export(name)
    try:
        manifest = exports.run(spec, progress=progress)
    except SFTPError as exc:
        redis().hset(export_key(name), mapping={"error": str(exc)[:300], "failed_at": time.time()})
        raise
    except SFTP_BROKEN as exc:
        redis().hset(export_key(name), mapping={"error": f"upload broke off: {exc}"[:300], "failed_at": time.time()})
        raise SFTPError(f"export {name}: the upload broke off ({exc}); nothing was published under the final name") from None
    redis().hset(export_key(name), mapping={"last": json.dumps(manifest), "error": "", "at": time.time()})
    return manifest


def enqueue_export(name: str) -> str:
    """Queue an export on the periodic queue, retried on the hub's retry schedule; after the last
    attempt it stays in the queue's failed-job registry like any failed sync."""
    hub = services.current().config
    schedule = [int(s) for s in retry_schedule(hub)]
    queue = Queue(QUEUE, connection=redis(), serializer=JSONSerializer)
    job = queue.enqueue(jobnames.FEED_EXPORT, name, job_timeout=3600, result_ttl=86400,
                        failure_ttl=hub["FAILURE_TTL"], description=f"export {name}",
                        retry=Retry(max=len(schedule), interval=schedule) if schedule else None)
    return str(job.id)


def last_slot(spec: dict[str, Any], now: datetime) -> datetime:
    """The latest time at or before `now` that the export's cron names, in its own time zone
    (so "0 2 * * *" in Europe/Paris is 02:00 Paris time on both sides of a DST change)."""
    local = now.astimezone(ZoneInfo(spec.get("timezone") or "UTC"))
    it = croniter(spec["cron"], local)
    if croniter.match(spec["cron"], local.replace(second=0, microsecond=0)):
        return local.replace(second=0, microsecond=0)
    return it.get_prev(datetime)  # type: ignore[no-any-return]


def exports_due(now: str | None = None) -> list[str]:
    """Queue each export whose cron time has come since the last check; once across workers
    (a compare-and-set on the last slot). An export seen for the first time starts at its next
    slot, never with a backlog."""
    moment = datetime.fromisoformat(now.replace("Z", "+00:00")) if now else datetime.now(timezone.utc)
    queued = []
    for name, spec in settings().exports.items():
        if not spec.get("cron"):
            continue
        slot = last_slot(spec, moment).timestamp()
        key = keys.FEEDS_EXPORT_SLOT.format(name)
        if redis().set(key, slot, nx=True):
            continue
        if redis().eval(_ADVANCE, 1, key, slot):
            queued.append(enqueue_export(name))
    return queued


def export_status(name: str) -> dict[str, Any]:
    raw = {k.decode(): v.decode() for k, v in redis().hgetall(export_key(name)).items()}
    spec = settings().export(name)
    out: dict[str, Any] = {"export": name, "kind": spec["kind"], "cron": spec.get("cron"),
                           "timezone": spec.get("timezone")}
    if raw.get("last"):
        out["last"] = json.loads(raw["last"])
    if raw.get("error"):
        out["error"] = raw["error"]
    return out
