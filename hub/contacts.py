"""One contact as ops and admins need it: its state, per connector what happened last and what
waits, and the two actions that put it right (resync) or take it away (erase).

Roles: reading and resync need the ops role (admin tokens have it too): resync only re-sends
the hub's current state, which cannot change or lose anything. Erase is irreversible and a data
protection decision, so it needs the admin role.
"""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any


from . import audit, failed, sync, vendorjobs
from .errors import APIError
from .ledger import contact_id, dirty_key, erase_key, get_ledger
from .queue import get_queues
from .schemas import load_events
from hub import services


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


def connector_view(redis: Any, connector: str, email: str, failures: list[dict[str, Any]]) -> dict[str, Any]:
    last = redis.hget(sync.LAST.format(connector), email)
    outcome = json.loads(last) if last else None
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
        raise APIError(404, "not_found", "the hub holds no state for this contact")
    failures = failed.list_failed(contact=email)
    return {"email": email, "contact_id": contact_id(email), "erased": erased,
            "state": plain(state) if state else None,
            "connectors": {c: connector_view(redis, c, email, failures) for c in get_queues().connectors},
            "audit": audit.history(redis, email)}


def resync(email: str, connectors: list[str] | None = None) -> list[str]:
    """Push the contact's current state again to each connector, even if unchanged."""
    redis, queues = services.current().redis, get_queues()
    if get_ledger().state(email) is None:
        raise APIError(404, "not_found", "the hub holds no state for this contact")
    names = connectors or queues.connectors
    for name in names:
        if name not in queues.connectors:
            raise APIError(404, "not_found", f"no enabled connector named {name!r}")
        pushed = redis.hget(sync.PUSHED.format(name), email)
        if pushed:
            # Keep what was pushed (lists, consent: the connectors diff against it) but not its
            # fingerprint, so the next flush sends the contact even if nothing changed.
            redis.hset(sync.PUSHED.format(name), email, json.dumps({**json.loads(pushed), "fp": "resync"}))
        sync.redirty(name, [email])
    queues.kick(names)
    return names


def erase(email: str) -> dict[str, Any]:
    """Erase through the ledger, exactly as a contact.erased event would."""
    if get_ledger().state(email) is None and not get_ledger().is_erased(email):
        raise APIError(404, "not_found", "the hub holds no state for this contact")
    raw = {"id": f"ops-erase-{uuid.uuid4().hex}", "type": "contact.erased",
           "occurred_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "contact": {"email": email}}
    events, errors = load_events([raw])
    if errors:
        raise APIError(422, "invalid_email", errors[0]["message"], errors)
    queues = get_queues()
    get_ledger().apply(events, queues.connectors)
    queues.kick()
    return {"erased": True, "event_id": raw["id"], "connectors": queues.connectors}


# -- commands -------------------------------------------------------------------------------
