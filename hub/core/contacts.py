"""One contact as ops and admins need it: its state, per connector what happened last and what
waits, and the two actions that put it right (resync) or take it away (erase).

Roles: reading and resync need the ops role (admin tokens have it too): resync only re-sends
the hub's current state, which cannot change or lose anything. Erase is irreversible and a data
protection decision, so it needs the admin role.
"""
from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any


from hub.core import audit, failed, pushstate, sync, vendorjobs
from hub.core.errors import APIError
from hub.core.ledger import contact_id, dirty_key, erase_key, get_ledger
from hub.core.mappingstore import contacts_page, count_contacts
from hub.core.progress import Progress
from hub.core.queue import get_queues
from hub.core.schemas import load_events
from hub.core import keys, services


def normal(email: str) -> str:
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise APIError(422, "invalid_email", "give the contact's email address")
    return email


def plain(value: Any) -> Any:
    """State as JSON: money stays a string so no float ever rounds it."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def last_push(redis: Any, connector: str, email: str) -> dict[str, Any] | None:
    """The connector's last outcome for the contact: a failure noted in `hub:last:<connector>`, or
    the time its last push landed, kept with its fingerprint in the contact's hash
    (hub/core/pushstate.py); the later of the two (a store from before layout 5 may still hold a
    success in `last`)."""
    last = redis.hget(sync.LAST.format(connector), email)
    noted = json.loads(last) if last else None
    landed = pushstate.unpack(redis.hget(keys.contact(email), pushstate.field(connector)))
    if landed and landed["at"] is not None and (noted is None or landed["at"] >= noted["at"]):
        return {"at": landed["at"], "ok": True}
    return noted


def connector_view(redis: Any, connector: str, email: str, failures: list[dict[str, Any]]) -> dict[str, Any]:
    outcome = last_push(redis, connector, email)
    if outcome:
        outcome["at"] = datetime.fromtimestamp(outcome["at"], timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"last_push": outcome,
            "pending": redis.zscore(dirty_key(connector), email) is not None or vendorjobs.waiting(connector, email),
            "erase_pending": redis.zscore(erase_key(connector), email) is not None,
            "paused": sync.paused(connector),
            "failed": [{k: f[k] for k in ("id", "kind", "status", "code", "message", "attempts", "last_attempt")}
                       for f in failures if f["connector"] == connector]}


def view(email: str) -> dict[str, Any]:
    """The contact's state and, per enabled connector, last push, pending work and failures."""
    redis, ledger = services.current().redis, get_ledger()
    state = ledger.state(email)
    erased = ledger.is_erased(email)
    if state is None and not erased:
        raise APIError(404, "unknown_contact", "the hub holds no state for this contact")
    failures = failed.list_failed(contact=email)
    return {"email": email, "contact_id": contact_id(email), "erased": erased,
            "state": plain(state) if state else None,
            "connectors": {c: connector_view(redis, c, email, failures) for c in get_queues().connectors},
            "audit": audit.history(redis, email)}


def resync(email: str, connectors: list[str] | None = None) -> list[str]:
    """Push the contact's current state again to each connector, even if unchanged."""
    redis, queues = services.current().redis, get_queues()
    if get_ledger().state(email) is None:
        raise APIError(404, "unknown_contact", "the hub holds no state for this contact")
    names = connectors or queues.connectors
    for name in names:
        if name not in queues.connectors:
            raise APIError(404, "unknown_connector", f"no enabled connector named {name!r}")
    redis.register_script(_RESYNC)(keys=resync_keys(names, email), args=resync_args(names, email, time.time()))
    queues.kick(names)
    return names


# A resync in one step: keep what was pushed (lists, consent: the connectors diff against it) but
# not its fingerprint, so the next flush sends the contact even if nothing changed; bump the
# contact's version once, so a flush that read it before cannot clear the dirty mark or record
# its fingerprint as current (hub/core/sync.py _SETTLE); mark it dirty, keeping an older due time.
# KEYS: hub:ver, the contact hash, then each connector's dirty set. ARGV: email, now, then each
# connector's field in the contact hash (hub/core/pushstate.py), in the order of KEYS.
_RESYNC = pushstate.LUA + """
for i = 3, #KEYS do
  local name = ARGV[i]
  local before = redis.call('HGET', KEYS[2], name)
  if before then
    local _, at, consent, lists = pushed_parts(before)
    redis.call('HSET', KEYS[2], name, pushed_entry('resync', at, consent, lists))
  end
  redis.call('ZADD', KEYS[i], 'NX', ARGV[2], ARGV[1])
end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
"""


def resync_keys(names: list[str], email: str) -> list[str]:
    return [keys.VERSIONS, keys.contact(email)] + [dirty_key(name) for name in names]


def resync_args(names: list[str], email: str, now: float) -> list[Any]:
    return [email, now] + [pushstate.field(name) for name in names]


RESYNC_KEEP = 7 * 86400              # seconds a stopped run can be continued


def enabled_names(connectors: list[str] | None) -> list[str]:
    queues = get_queues()
    for name in connectors or []:
        if name not in queues.connectors:
            raise APIError(404, "not_found", f"no enabled connector named {name!r}; enabled: "
                           f"{', '.join(queues.connectors)}")
    return sorted(connectors or queues.connectors)


def mark_for_resync(redis: Any, names: list[str], emails: list[str]) -> None:
    """What `resync` does for one contact, for a page of them, each contact in one atomic step."""
    if not emails:
        return
    mark, now = redis.register_script(_RESYNC), time.time()
    pipe = redis.pipeline(transaction=False)
    for email in emails:
        mark(keys=resync_keys(names, email), args=resync_args(names, email, now), client=pipe)
    pipe.execute()


def resync_all(progress: Progress, connectors: list[str] | None = None, batch: int = 500,
               restart: bool = False) -> dict[str, Any]:
    """Push every contact's current state again, a page of contacts a step. Where the run has got
    to is kept after each step, so a run stopped (Ctrl-C, a cancel, a crash) continues there."""
    redis, names = services.current().redis, enabled_names(connectors)
    run = keys.RESYNC_RUN.format(",".join(names))
    saved = {} if restart else {k.decode(): int(v) for k, v in redis.hgetall(run).items()}
    cursor = saved.get("cursor", 0)
    progress.resume = "Run the same command again to re-sync the rest: it continues where this one stopped."
    progress.start(count_contacts(redis), "contacts", done=saved.get("done", 0))
    while True:
        cursor, emails = contacts_page(redis, cursor, batch)
        mark_for_resync(redis, names, emails)
        if cursor == 0:
            redis.delete(run)
            progress.total = progress.done + len(emails)     # the scan has seen every contact
        else:
            redis.hset(run, mapping={"cursor": cursor, "done": progress.done + len(emails)})
            redis.expire(run, RESYNC_KEEP)
        get_queues().kick(names)
        progress.step(len(emails))
        if cursor == 0:
            return {"connectors": names, "contacts": progress.done, "resumed_from": saved.get("done", 0)}


def erase(email: str, actor: str | None = None) -> dict[str, Any]:
    """Erase through the ledger, exactly as a contact.erased event would."""
    if get_ledger().state(email) is None and not get_ledger().is_erased(email):
        raise APIError(404, "unknown_contact", "the hub holds no state for this contact")
    raw = {"id": f"ops-erase-{uuid.uuid4().hex}", "type": "contact.erased",
           "occurred_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "contact": {"email": email}}
    events, errors = load_events([raw])
    if errors:
        raise APIError(422, "invalid_email", errors[0]["message"], errors)
    queues = get_queues()
    get_ledger().apply(events, queues.connectors)
    queues.kick()
    logging.getLogger("hub").warning("contact erased", extra={"event": raw["id"], "by": actor})
    return {"erased": True, "event_id": raw["id"], "connectors": queues.connectors}
