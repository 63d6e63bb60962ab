"""POST /v1/webhooks/<source>: a referral platform's own webhook, verified with its own scheme,
normalised to canonical events, resolved to emails, and applied through the same ledger.

A platform that gets errors retries and, in the end, disables the endpoint; so anything the hub
cannot use (an unknown type, an event it cannot validate, a person it cannot name yet) is
acknowledged with 2xx, counted, and kept where ops can see it. Only a bad signature (401), a body
that is not the platform's shape (400) or an unreachable Redis (503) is refused.
"""
from __future__ import annotations

import json
import time
from typing import Any

from flask import Blueprint, current_app, jsonify, request

from .errors import APIError
from .ingest import parse_body
from .ledger import get_ledger
from .queue import get_queues
from .schemas import load_events
from .sources import SOURCES, PayloadError, SignatureError

bp = Blueprint("webhooks", __name__)

IDENT = "hub:ident:{}"                 # hash: platform person id -> email
PARKED = "hub:parked:{}:{}"            # list: events waiting for that id's email
PARKED_INDEX = "hub:parked"            # zset: "<source>:<id>" -> first parked at
REJECTED = "hub:webhooks:rejected"     # stream: events the hub could not validate
STATS = "hub:webhooks:stats"           # hash: "<source>:<outcome>[:<type>]" -> count
PARTIES = ("referrer", "friend", "contact")


def settings_for(name: str) -> dict[str, Any]:
    cache = current_app.extensions.setdefault("source_settings", {})
    if name not in cache:
        environ = {f"HUB_{k}": str(v) for k, v in current_app.config["HUB"].items()}
        cache[name] = SOURCES[name].settings_from_env(environ)
    return cache[name]


def resolve(source: str, event: dict[str, Any]) -> str | None:
    """Fill in emails from what the platform taught earlier; the first unknown id, if any."""
    redis = current_app.extensions["redis"]
    for part in PARTIES:
        party = event.get(part)
        if isinstance(party, dict) and not party.get("email") and party.get("source_id"):
            email = redis.hget(IDENT.format(source), str(party["source_id"]))
            if email is None:
                return str(party["source_id"])
            party["email"] = email.decode()
    return None


def learn(source: str, identities: list[dict[str, Any]]) -> list[str]:
    """Remember id -> email pairs; return the ids that now unlock parked events."""
    redis = current_app.extensions["redis"]
    pairs = {str(i["source_id"]): i["email"] for i in identities if i.get("source_id") and i.get("email")}
    if not pairs:
        return []
    redis.hset(IDENT.format(source), mapping=pairs)
    return [sid for sid in pairs if redis.zscore(PARKED_INDEX, f"{source}:{sid}") is not None]


def park(source: str, source_id: str, event: dict[str, Any]) -> None:
    redis = current_app.extensions["redis"]
    pipe = redis.pipeline()
    pipe.rpush(PARKED.format(source, source_id), json.dumps(event))
    pipe.zadd(PARKED_INDEX, {f"{source}:{source_id}": time.time()}, nx=True)
    pipe.execute()


def unpark(source: str, source_ids: list[str]) -> list[dict[str, Any]]:
    """Take the parked events of ids the hub can now name (applying twice is harmless: the
    ledger dedupes on event id)."""
    redis = current_app.extensions["redis"]
    events = []
    for sid in source_ids:
        key = PARKED.format(source, sid)
        pipe = redis.pipeline()
        pipe.lrange(key, 0, -1)
        pipe.delete(key)
        pipe.zrem(PARKED_INDEX, f"{source}:{sid}")
        events += [json.loads(raw) for raw in pipe.execute()[0]]
    return events


def reject(source: str, items: list[dict[str, Any]], errors: list[dict[str, Any]]) -> None:
    redis = current_app.extensions["redis"]
    for index in sorted({e["index"] for e in errors}):
        reasons = [f"{e['field']}: {e['message']}" for e in errors if e["index"] == index]
        redis.xadd(REJECTED, {"source": source, "event_id": str(items[index].get("id")),
                              "type": str(items[index].get("type")), "reasons": "; ".join(reasons)},
                   maxlen=10_000, approximate=True)


def count(source: str, outcome: str, kinds: list[str]) -> None:
    if kinds:
        pipe = current_app.extensions["redis"].pipeline(transaction=False)
        for kind in kinds:
            pipe.hincrby(STATS, f"{source}:{outcome}:{kind}", 1)
        pipe.execute()


def apply(source: str, items: list[dict[str, Any]]) -> dict[str, int]:
    """Resolve, park what cannot be resolved yet, validate, apply what is valid."""
    ready, parked = [], 0
    for event in items:
        missing = resolve(source, event)
        if missing is None:
            ready.append(event)
        else:
            park(source, missing, event)
            parked += 1
            if resolve(source, json.loads(json.dumps(event))) is None:   # taught meanwhile
                ready += unpark(source, [missing])
    # Drop the platform-only keys the canonical schema does not know, then validate each alone
    # so one bad event never blocks the rest of the delivery.
    valid, invalid = [], []
    for event in ready:
        loaded, errors = load_events([event])
        (valid.extend(loaded) if not errors else invalid.append((event, errors)))
    for event, errors in invalid:
        reject(source, [event], [{**e, "index": 0} for e in errors])
    accepted = duplicates = 0
    if valid:
        queues = get_queues()
        accepted, duplicates = get_ledger().apply(valid, queues.connectors)
        if accepted:
            queues.kick()
    count(source, "accepted", [e["type"] for e in valid])
    count(source, "rejected", [str(e.get("type")) for e, _ in invalid])
    return {"accepted": accepted, "duplicates": duplicates, "parked": parked, "rejected": len(invalid)}


@bp.post("/v1/webhooks/<source>")
def receive(source: str):  # type: ignore[no-untyped-def]
    adapter = SOURCES.get(source)
    if adapter is None:
        raise APIError(404, "unknown_source", f"no webhook source called {source}; one of: {', '.join(SOURCES)}")
    settings = settings_for(source)
    if not adapter.configured(settings):
        raise APIError(404, "source_not_configured", f"set HUB_SOURCE_{source.upper()}_* to receive {adapter.label} webhooks")
    body, _ = parse_body()
    try:
        adapter.verify(request.headers, body, settings, time.time())
    except SignatureError as exc:
        count(source, "unauthorized", ["-"])
        raise APIError(401, "unauthorized", exc.reason) from None
    try:
        result = adapter.normalise(adapter.parse(body), request.headers, settings)
    except PayloadError as exc:
        raise APIError(400, "invalid_payload", exc.reason) from None
    unlocked = learn(source, result.identities)
    items = result.events + unpark(source, unlocked)
    outcome = apply(source, items) if items else {"accepted": 0, "duplicates": 0, "parked": 0, "rejected": 0}
    count(source, "ignored", result.ignored)
    return jsonify({**outcome, "ignored": len(result.ignored)}), 202
