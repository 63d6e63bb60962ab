"""The event feed's messages: built from the ledger's event log, kept for replay, queued per endpoint.

The ledger already appends every accepted (non-duplicate) event to the `hub:events` stream in the
same script call that applies it, so ingest does nothing more for the feed. The feed process
(hub.core.delivery) reads that stream from its own cursor, turns each event into messages (the
canonical event, plus the derived `referrer.totals_changed` and `list.membership_changed`), each
with the affected contacts' state as the feed process reads it right after, and queues each
message on the lane of every endpoint that wants its type.

Keys (all bounded by HUB_FEED_RETENTION, default 7 days, and HUB_FEED_MAX_MESSAGES):
  hub:feed:cursor             the last event-log id turned into messages
  hub:feed:m:<msg>            a message's JSON payload (expires with the retention)
  hub:feed:times              msg -> when its event was accepted (ms): replay by time, trimming
  hub:feed:who:<contact_id>   the messages naming a contact, so erasure can remove them
  hub:feed:lane:<ep>          msg -> when it is due, one sorted set per endpoint (the lane)
  hub:feed:tries:<ep>         msg -> failed attempts so far
  hub:feed:state:<ep>         the lane's back-off, failure streak and delivery counters
  hub:feed:attempts:<ep>      the latest attempts, newest first (HUB_FEED_ATTEMPTS_KEEP)
  hub:feed:lags:<ep>          the latest delivery lags (seconds), for the p95 figure
"""
from __future__ import annotations

import hashlib
import json
import random
import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Mapping

from redis.exceptions import WatchError

from hub.core.config import split
from hub.core.endpointstore import ENDPOINTS, all_endpoints, load
from hub.core.failed import list_failed
from hub.core.ledger import contact_id, key, state_of
from hub.core import keys

EVENTS = keys.EVENTS
CURSOR = keys.FEED_CURSOR
TIMES = keys.FEED_TIMES
ERASURES = keys.FEED_ERASURES            # bumped by every erasure: a build step that overlaps one is redone
EPHEMERAL = keys.FEED_EPHEMERAL          # erasure messages, dropped once delivered everywhere
FAILED_SEEN = keys.FEED_FAILED_SEEN      # failed syncs already sent as sync.failed (id:retries)
TOTALS_TYPES = {"referral.invited", "friend.registered", "friend.converted", "reward.granted"}
DEFAULTS: dict[str, Any] = {
    "FEED_RETENTION": 7 * 86400,         # seconds messages are kept for retries and replay
    "FEED_MAX_MESSAGES": 1_000_000,      # and at most this many
    "FEED_RETRY_SCHEDULE": "5,30,120,600,1800,3600,7200,14400,28800,43200,86400",
    "FEED_RETRY_JITTER": 0.2,
    "FEED_DISABLE_AFTER": 5 * 86400,     # seconds of continuous failure before an endpoint is disabled
    "FEED_TIMEOUT": 10.0,                # seconds per request
    "FEED_THREADS": 16,                  # concurrent requests, all endpoints together
    "FEED_ATTEMPTS_KEEP": 200,           # attempts kept per endpoint
    "FEED_PREVIEW_BYTES": 256,           # first bytes of each answer kept with its attempt
    "FEED_ROTATION_OVERLAP": 86400,      # seconds the previous secret still signs after a rotation
    "FEED_MAX_RETRY_AFTER": 86400,       # cap on a receiver's Retry-After
    "FEED_READ_BATCH": 500,              # events read from the log per step
    "FEED_FAILED_SCAN": 5.0,             # seconds between looks for newly failed syncs (0: never)
}


def setting(config: Mapping[str, Any], name: str) -> Any:
    """A feed setting from HUB_FEED_* (strings from the environment) or its default, typed like it."""
    default = DEFAULTS[name]
    value = config.get(name, default)
    if value in (None, ""):
        return default
    return type(default)(value) if not isinstance(default, str) else str(value)


def schedule(config: Mapping[str, Any]) -> list[float]:
    return [float(x) for x in split(setting(config, "FEED_RETRY_SCHEDULE"))] or [5.0]


def retry_delay(config: Mapping[str, Any], failures: int) -> float:
    """Seconds before the next try after `failures` failures: the schedule (its last step repeats),
    with jitter so many endpoints failing together do not come back together."""
    steps = schedule(config)
    base = steps[min(max(failures - 1, 0), len(steps) - 1)]
    jitter = setting(config, "FEED_RETRY_JITTER")
    return max(0.0, base * (1 + random.uniform(-jitter, jitter)))


def iso(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: Any) -> float:
    """ISO 8601 (or unix seconds) to unix milliseconds; ValueError naming the problem."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) * 1000
    if not isinstance(value, str):
        raise ValueError("since/until must be an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"since/until: {value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp() * 1000


def message_id(event_id: str, kind: str) -> str:
    """Stable for an event and type: a rebuilt message keeps its id (and its webhook-id)."""
    return "msg_" + hashlib.sha256(f"{event_id}\x00{kind}".encode()).hexdigest()[:26]


def plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def lane_key(endpoint_id: str) -> str:
    return keys.FEED_LANE.format(endpoint_id)


def state_key(endpoint_id: str) -> str:
    return keys.FEED_STATE.format(endpoint_id)


def who_key(cid: str) -> str:
    return keys.FEED_WHO.format(cid)


def msg_key(msg: str) -> str:
    return keys.FEED_MESSAGE.format(msg)


# -- building messages ----------------------------------------------------------------------

def parties(event: dict[str, Any]) -> dict[str, str]:
    """role -> email of the contacts an event touches."""
    return {role: event[role]["email"] for role in ("referrer", "friend", "contact")
            if isinstance(event.get(role), dict) and event[role].get("email")}


def addresses(value: Any) -> set[str]:
    """The email addresses anywhere in a JSON-like value."""
    if isinstance(value, str):
        return {value.lower()} if "@" in value and " " not in value and len(value) < 320 else set()
    if isinstance(value, dict):
        return set().union(*(addresses(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(addresses(v) for v in value)) if value else set()
    return set()


def consent_roles(event: dict[str, Any]) -> list[str]:
    return [role for role in ("friend", "contact")
            if isinstance(event.get(role), dict) and "marketing_opt_in" in event[role]]


def build_messages(event: dict[str, Any], accepted_ms: float, states: dict[str, dict[str, Any] | None]) -> list[dict[str, Any]]:
    """The messages one accepted event becomes: (id, type, payload, contact ids named)."""
    who = parties(event)
    stamp = iso(accepted_ms)
    if event["type"] == "contact.erased":
        return []       # the log keeps it without the person: forget() sends it instead
    contacts = {role: plain(states.get(email)) for role, email in who.items()}
    out = [(event["type"], contacts)]
    if event["type"] in TOTALS_TYPES and "referrer" in who:
        out.append(("referrer.totals_changed", {"referrer": contacts["referrer"]}))
    roles = consent_roles(event)
    if roles:
        out.append(("list.membership_changed", {r: contacts[r] for r in roles}))
    messages = []
    # Every address the message holds (the event's parties, a friend's referred_by...): erasing
    # any of them removes the message.
    cids = sorted({contact_id(e) for e in addresses([event, contacts])})
    for kind, named in out:
        data: dict[str, Any] = {"event": plain(event), "contacts": named}
        messages.append({"id": message_id(event["id"], kind), "type": kind,
                         "payload": {"id": message_id(event["id"], kind), "type": kind, "timestamp": stamp,
                                     "data": data}, "cids": cids})
    return messages


def read_states(r: Any, emails: list[str], currency: str) -> dict[str, dict[str, Any] | None]:
    pipe = r.pipeline(transaction=False)
    for email in emails:
        pipe.hgetall(key(email))
    rows = pipe.execute()
    return {email: (state_of(email, {k.decode(): v.decode() for k, v in row.items()}, currency) if row else None)
            for email, row in zip(emails, rows)}


def start_cursor(r: Any) -> None:
    """Begin the feed at the log's current end (called when an endpoint is created)."""
    last = r.xrevrange(EVENTS, count=1)
    r.set(CURSOR, last[0][0] if last else "0-0", nx=True)


def build_step(r: Any, config: Mapping[str, Any], endpoints: list[dict[str, Any]]) -> int:
    """Turn the next events of the log into stored, queued messages; returns how many events."""
    if not endpoints:
        return 0
    start_cursor(r)
    with r.pipeline(transaction=True) as pipe:
        # An erasure between reading and writing would let old state back in: it bumps
        # ERASURES, the write fails, and the next step reads again.
        pipe.watch(ERASURES)
        try:
            return write_messages(r, pipe, config, endpoints)
        except WatchError:
            return 0


def write_messages(r: Any, pipe: Any, config: Mapping[str, Any], endpoints: list[dict[str, Any]]) -> int:
    """Read on `r` (the WATCH on the pipeline's connection covers them), write in one MULTI."""
    cursor = r.get(CURSOR)
    rows = r.xrange(EVENTS, min=f"({cursor.decode()}", count=setting(config, "FEED_READ_BATCH"))
    if not rows:
        return 0
    events = []
    for entry_id, fields in rows:
        try:
            events.append((entry_id, json.loads(fields[b"event"])))
        except (KeyError, ValueError):
            continue
    emails = sorted({e for _, ev in events for e in parties(ev).values()})
    states = read_states(r, emails, str(config.get("CURRENCY", "GBP")))
    keep = setting(config, "FEED_RETENTION")
    pipe.multi()
    for entry_id, event in events:
        accepted = float(entry_id.decode().split("-")[0])
        for message in build_messages(event, accepted, states):
            body = json.dumps(message["payload"], separators=(",", ":"), default=str)
            pipe.set(msg_key(message["id"]), body, ex=keep)
            pipe.zadd(TIMES, {message["id"]: accepted})
            for cid in message["cids"]:
                pipe.sadd(who_key(cid), message["id"])
                pipe.expire(who_key(cid), keep)
            for endpoint in endpoints:
                if message["type"] in endpoint["event_types"]:
                    pipe.zadd(lane_key(endpoint["id"]), {message["id"]: time.time()}, nx=True)
    pipe.set(CURSOR, rows[-1][0])
    pipe.execute()
    return len(rows)


def forget(r: Any, emails: list[str]) -> int:
    """Erasure (called by hub.core.forget.forget): remove every stored message and attempt that names
    the people, and queue a `contact.erased` message (their contact_id only) to the endpoints
    that want it; that message is dropped once every such endpoint has it."""
    r.incr(ERASURES)
    endpoints = all_endpoints(r)
    if not endpoints:
        return 0
    removed = 0
    for email in emails:
        removed += erase_contact(r, contact_id(email), endpoints)
    scrub_attempts(r, emails, endpoints)
    keep = setting({}, "FEED_RETENTION")
    now = time.time()
    for email in emails:
        cid = contact_id(email)
        wanting = [e for e in endpoints if "contact.erased" in e["event_types"]]
        if not wanting:
            continue
        msg = message_id("erase:" + cid, "contact.erased")
        payload = {"id": msg, "type": "contact.erased", "timestamp": iso(now * 1000),
                   "data": {"contacts": {"contact": {"contact_id": cid, "erased": True}}}}
        pipe = r.pipeline(transaction=True)
        pipe.set(msg_key(msg), json.dumps(payload, separators=(",", ":")), ex=keep)
        pipe.sadd(EPHEMERAL, msg)
        for endpoint in wanting:
            pipe.zadd(lane_key(endpoint["id"]), {msg: now}, nx=True)
        pipe.execute()
    return removed


def scrub_attempts(r: Any, emails: list[str], endpoints: list[dict[str, Any]]) -> None:
    """A receiver's answer may quote what it was sent: attempts naming the people lose their answer."""
    needles = [e.lower() for e in emails]
    for endpoint in endpoints:
        name = keys.FEED_ATTEMPTS.format(endpoint['id'])
        rows = r.lrange(name, 0, -1)
        if not any(n in row.decode("utf-8", "replace").lower() for row in rows for n in needles):
            continue
        kept = []
        for row in rows:
            attempt = json.loads(row)
            if any(n in row.decode("utf-8", "replace").lower() for n in needles):
                attempt.update(answer="(removed: it named an erased contact)", error=attempt.get("error") and "(removed)")
            kept.append(json.dumps(attempt))
        pipe = r.pipeline(transaction=True)
        pipe.delete(name)
        pipe.rpush(name, *kept)
        pipe.execute()


def drop_delivered_erasures(r: Any, ids: list[str], endpoints: list[dict[str, Any]]) -> None:
    """An erasure message is kept only until every endpoint that wants it has it."""
    marked = [m for m, flag in zip(ids, r.smismember(EPHEMERAL, ids)) if flag]
    for msg in marked:
        pipe = r.pipeline(transaction=False)
        for endpoint in endpoints:
            pipe.zscore(lane_key(endpoint["id"]), msg)
        if all(score is None for score in pipe.execute()):
            r.delete(msg_key(msg))
            r.srem(EPHEMERAL, msg)


def failed_step(r: Any, config: Mapping[str, Any], endpoints: list[dict[str, Any]]) -> int:
    """Send each newly failed sync (a push that failed for good, or failed again after a retry)
    as a `sync.failed` message; needs an app context (hub.core.failed)."""
    if not any("sync.failed" in e["event_types"] for e in endpoints):
        return 0
    with r.pipeline(transaction=True) as pipe:
        pipe.watch(ERASURES)
        items = list_failed()
        marks = [f"{item['id']}:{item['retries']}" for item in items]
        seen = set(r.smembers(FAILED_SEEN))
        fresh = [(item, mark) for item, mark in zip(items, marks) if mark.encode() not in seen]
        stale = [m for m in seen if m.decode() not in set(marks)]
        states = read_states(r, sorted({c for item, _ in fresh for c in item["contacts"]}),
                             str(config.get("CURRENCY", "GBP")))
        keep, now = setting(config, "FEED_RETENTION"), time.time()
        pipe.multi()
        for item, mark in fresh:
            msg = message_id(f"failed:{mark}", "sync.failed")
            payload = {"id": msg, "type": "sync.failed", "timestamp": iso(now * 1000),
                       "data": {"failed_sync": {k: item[k] for k in ("id", "connector", "kind", "status", "code",
                                                                      "message", "attempts", "retries", "contacts")},
                                "contacts": {c: plain(states.get(c)) for c in item["contacts"]}}}
            pipe.set(msg_key(msg), json.dumps(payload, separators=(",", ":"), default=str), ex=keep)
            pipe.zadd(TIMES, {msg: now * 1000})
            for cid in sorted({contact_id(e) for e in addresses(payload) | set(item["contacts"])}):
                pipe.sadd(who_key(cid), msg)
                pipe.expire(who_key(cid), keep)
            for endpoint in endpoints:
                if "sync.failed" in endpoint["event_types"]:
                    pipe.zadd(lane_key(endpoint["id"]), {msg: now}, nx=True)
            pipe.sadd(FAILED_SEEN, mark)
        if stale:
            pipe.srem(FAILED_SEEN, *stale)
        try:
            pipe.execute()
        except WatchError:
            return 0
    return len(fresh)


def erase_contact(r: Any, cid: str, endpoints: list[dict[str, Any]]) -> int:
    """Remove every stored message naming a contact, from the store and from every lane."""
    ids = [m.decode() for m in r.smembers(who_key(cid))]
    if not ids:
        return 0
    pipe = r.pipeline(transaction=True)
    pipe.delete(*[msg_key(m) for m in ids], who_key(cid))
    pipe.zrem(TIMES, *ids)
    for endpoint in endpoints:
        pipe.zrem(lane_key(endpoint["id"]), *ids)
        pipe.hdel(keys.FEED_TRIES.format(endpoint['id']), *ids)
    pipe.execute()
    return len(ids)


def trim(r: Any, config: Mapping[str, Any], endpoints: list[dict[str, Any]]) -> int:
    """Drop messages past the retention or over the count bound, from the store and the lanes."""
    cutoff = (time.time() - setting(config, "FEED_RETENTION")) * 1000
    old = r.zrangebyscore(TIMES, "-inf", cutoff)
    extra = r.zcard(TIMES) - len(old) - setting(config, "FEED_MAX_MESSAGES")
    if extra > 0:
        old += r.zrange(TIMES, len(old), len(old) + extra - 1)
    if not old:
        return 0
    pipe = r.pipeline(transaction=False)
    pipe.zrem(TIMES, *old)
    pipe.delete(*[msg_key(m.decode()) for m in old])
    for endpoint in endpoints:
        pipe.zrem(lane_key(endpoint["id"]), *old)
    pipe.execute()
    return len(old)


# -- lanes, replay, figures -----------------------------------------------------------------

def replay(r: Any, endpoint_id: str, ids: list[str] | None, start: float | None, end: float | None,
           progress: Any = None, batch: int = 1000) -> dict[str, Any]:
    """Queue stored messages again on one endpoint's lane, due now, whatever it had received; in
    time order, `batch` messages a step (never splitting messages of the same millisecond, so a
    stopped replay continues exactly from the time its `resume` hint names)."""
    wanted = set(load(endpoint_id, r)["event_types"])
    missing: list[str] = []
    if ids is not None:
        candidates = list(dict.fromkeys(ids))
        scores = r.zmscore(TIMES, candidates) if candidates else []
        entries = sorted(((m, s) for m, s in zip(candidates, scores) if s is not None), key=lambda e: e[1])
        missing = [m for m, s in zip(candidates, scores) if s is None]
    else:
        entries = [(m.decode(), s) for m, s in r.zrangebyscore(TIMES, start if start is not None else "-inf",
                                                               end if end is not None else "+inf", withscores=True)]
    if progress is not None:
        progress.start(len(entries), "messages")
    found: list[str] = []
    at = 0
    while at < len(entries):
        stop = min(at + batch, len(entries))
        while stop < len(entries) and entries[stop][1] == entries[stop - 1][1]:
            stop += 1
        chunk = [m for m, _ in entries[at:stop]]
        if ids is None:
            bodies = r.mget([msg_key(m) for m in chunk])
            chunk = [m for m, b in zip(chunk, bodies) if b and json.loads(b)["type"] in wanted]
        if chunk:
            pipe = r.pipeline(transaction=True)
            pipe.zadd(lane_key(endpoint_id), {m: time.time() for m in chunk})
            pipe.hdel(keys.FEED_TRIES.format(endpoint_id), *chunk)
            pipe.execute()
        found += chunk
        steps, at = stop - at, stop
        if progress is not None:
            if at < len(entries):
                since = iso_ms(entries[at][1])
                until = f" --until {iso_ms(end)}" if end is not None and ids is None else ""
                progress.resume = (f"To queue the rest, replay again from {since} (--since {since}{until})"
                                   if ids is None else f"{len(entries) - at:,} of the given ids were not queued")
            progress.step(steps, note=f"{len(found):,} queued")
    return {"endpoint": endpoint_id, "queued": len(found), "message_ids": found, "not_found": missing}


def iso_ms(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def on_enabled(r: Any, endpoint_id: str) -> None:
    """A re-enabled endpoint starts afresh, and its next success is noted as a recovery."""
    pipe = r.pipeline()
    pipe.hdel(state_key(endpoint_id), "blocked_until", "fails", "failing_since")
    pipe.hset(state_key(endpoint_id), "recovering", "1")
    pipe.execute()


def forget_endpoint(r: Any, endpoint_id: str) -> None:
    r.delete(lane_key(endpoint_id), state_key(endpoint_id), keys.FEED_TRIES.format(endpoint_id),
             keys.FEED_ATTEMPTS.format(endpoint_id), keys.FEED_LAGS.format(endpoint_id))
    if not r.hlen(ENDPOINTS):
        r.delete(CURSOR)


def record_attempt(r: Any, config: Mapping[str, Any], endpoint_id: str, attempt: dict[str, Any]) -> None:
    keep = setting(config, "FEED_ATTEMPTS_KEEP")
    pipe = r.pipeline(transaction=False)
    pipe.lpush(keys.FEED_ATTEMPTS.format(endpoint_id), json.dumps(attempt))
    pipe.ltrim(keys.FEED_ATTEMPTS.format(endpoint_id), 0, keep - 1)
    pipe.execute()


def recent_attempts(r: Any, endpoint_id: str, limit: int = 50) -> list[dict[str, Any]]:
    return [json.loads(a) for a in r.lrange(keys.FEED_ATTEMPTS.format(endpoint_id), 0, limit - 1)]


def oldest_pending_ms(r: Any, endpoint_id: str) -> float | None:
    first = r.zrange(lane_key(endpoint_id), 0, 0)
    return r.zscore(TIMES, first[0]) if first else None


def endpoint_stats(r: Any, endpoint_id: str) -> dict[str, Any]:
    """Delivery figures: sent, failed, mean latency, pending, lag of the oldest pending message."""
    state = {k.decode(): v.decode() for k, v in r.hgetall(state_key(endpoint_id)).items()}
    oldest = oldest_pending_ms(r, endpoint_id)
    count = int(state.get("lat_count", 0))
    return {"sent": int(state.get("sent", 0)), "failed": int(state.get("failed", 0)),
            "pending": r.zcard(lane_key(endpoint_id)),
            "mean_latency_seconds": round(float(state.get("lat_sum", 0)) / count, 4) if count else None,
            "lag_seconds": round(max(0.0, time.time() - oldest / 1000), 3) if oldest else 0.0,
            "failing_since": state.get("failing_since") and iso(float(state["failing_since"]) * 1000),
            "retry_at": state.get("blocked_until") and iso(float(state["blocked_until"]) * 1000),
            "last_success_at": state.get("last_success") and iso(float(state["last_success"]) * 1000),
            "recovered_at": state.get("recovered_at") and iso(float(state["recovered_at"]) * 1000)}


def lags(r: Any, endpoint_id: str) -> list[float]:
    return [float(v) for v in r.lrange(keys.FEED_LAGS.format(endpoint_id), 0, -1)]


def metric_families(r: Any) -> list[Any]:
    """Per endpoint, for /metrics: messages sent and failed, latency, pending, lag, disabled."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    sent = CounterMetricFamily("hub_feed_messages", "Event-feed messages by endpoint and outcome "
                               "(failed counts each failed attempt).", labels=["endpoint", "outcome"])
    latency = GaugeMetricFamily("hub_feed_latency_seconds", "Mean request latency per endpoint.", labels=["endpoint"])
    pending = GaugeMetricFamily("hub_feed_pending", "Messages waiting in the endpoint's lane.", labels=["endpoint"])
    lag = GaugeMetricFamily("hub_feed_lag_seconds", "Age of the oldest message waiting for the endpoint.",
                            labels=["endpoint"])
    disabled = GaugeMetricFamily("hub_feed_disabled", "1 when the endpoint is disabled.", labels=["endpoint"])
    for endpoint in all_endpoints(r):
        ep = endpoint["id"]
        stats = endpoint_stats(r, ep)
        sent.add_metric([ep, "sent"], stats["sent"])
        sent.add_metric([ep, "failed"], stats["failed"])
        latency.add_metric([ep], stats["mean_latency_seconds"] or 0.0)
        pending.add_metric([ep], stats["pending"])
        lag.add_metric([ep], stats["lag_seconds"])
        disabled.add_metric([ep], 1.0 if endpoint["disabled"] else 0.0)
    return [sent, latency, pending, lag, disabled]
