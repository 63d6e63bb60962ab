"""POST /v1/webhooks/<source>: a referral platform's own webhook, verified with its own scheme,
normalised to canonical events, resolved to emails, and applied through the same ledger.

A platform that gets errors retries and, in the end, disables the endpoint; so anything the hub
cannot use (an unknown type, an event it cannot validate, a person it cannot name yet) is
acknowledged with 2xx, counted, and kept where ops can see it (GET /v1/webhooks/parked and
/v1/webhooks/rejected). Only an unknown or unconfigured source (404), a bad signature (401), a
body that is not the platform's shape (400; never for Friendbuy, see FRIENDBUY_NEVER_400) or an
unreachable store (503) is refused. No vendor is called inside the request.
"""
from __future__ import annotations

import logging

import copy
import hashlib
import json
import time
from typing import Any


from hub.core.erasure import mentions
from hub.core.ledger import LedgerRefused, get_ledger
from hub.core.queue import get_queues
from hub.core.schemas import load_events
from sources import SOURCES, SettingsError
from hub.core import services
log = logging.getLogger("hub")


from hub.core.keys import CODES, IDENT, PARKED, PARKED_INDEX, REJECTED, WEBHOOK_STATS as STATS  # noqa: E402,F401
PARTIES = ("referrer", "friend", "contact")
AMBIGUOUS = "*"
MAX_KEPT = 4000                        # characters of an event or body kept in the rejected stream
# A friend's registration or conversion carries the link to the referrer: when only the referrer is
# still unknown the friend's part is applied now and a copy waits to credit the referrer later
# (the ledger's credit step is idempotent, and an order id is counted once, so nothing doubles).
CREDITING = ("friend.registered", "friend.converted")
# Friendbuy's reward-validation callback reads 200 as "approve", 400 as "reject the reward" and
# anything else as "retry" (for 72 hours). So Friendbuy never gets a 400 for a body the hub cannot
# read (it would cancel a friend's reward over a hub-side problem), and callbacks get 200, not 202.
FRIENDBUY_NEVER_400 = "friendbuy"

# Learn a promo code -> email pair unless the code already names someone else, in which case the
# code is shared (a referrer's referral code that several friends used) and resolves nobody.
LEARN_CODE = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
if cur ~= ARGV[2] and cur ~= ARGV[3] then redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
return 0
"""

# Drop a handle from the parked index once its hash is empty, atomically with park()'s MULTI, so
# an event parked meanwhile is never left out of the index.
UNINDEX_EMPTY = """
if redis.call('HLEN', KEYS[1]) == 0 then redis.call('ZREM', KEYS[2], ARGV[1]) end
return 1
"""


def redis() -> Any:
    return services.current().redis


def settings_for(name: str) -> dict[str, Any]:
    """The source's HUB_SOURCE_* settings, read once per app; SettingsError when unusable."""
    cache = services.current().cache.setdefault("source_settings", {})
    if name not in cache:
        environ = {f"HUB_{k}": str(v) for k, v in services.current().config.items()}
        try:
            cache[name] = SOURCES[name].settings_from_env(environ)
        except SettingsError as exc:
            cache[name] = exc
    if isinstance(cache[name], SettingsError):
        raise cache[name]
    return cache[name]  # type: ignore[no-any-return]


# --- identities -------------------------------------------------------------------------------

def code_key(code: Any) -> str | None:
    """Promo codes are compared case-insensitively, as shops take them."""
    return str(code).strip().upper() or None if code is not None else None


def handle_of(source: str, person: dict[str, Any]) -> str | None:
    """What a party without an email can be found by: its platform id, else its promo code."""
    if person.get("source_id"):
        return f"{source}:id:{person['source_id']}"
    code = code_key(person.get("promo_code"))
    return f"{source}:code:{code}" if code else None


def lookup(handle: str) -> str | None:
    """The email a handle names, AMBIGUOUS for a shared code, None while unknown."""
    source, kind, value = handle.split(":", 2)
    raw = redis().hget(IDENT.format(source), value) if kind == "id" else redis().hget(CODES, value)
    return raw.decode() if raw is not None else None


def learn(source: str, identities: list[dict[str, Any]], events: list[dict[str, Any]]) -> list[str]:
    """Remember id -> email and promo code -> email pairs; return the handles that now unlock
    parked events."""
    ids = {str(i["source_id"]): i["email"] for i in identities if i.get("source_id") and i.get("email")}
    codes = {}
    for event in events:
        friend = event.get("friend")
        if str(event.get("type", "")).startswith("contact.") or not isinstance(friend, dict):
            continue
        code = code_key(friend.get("promo_code"))
        if code and friend.get("email"):
            codes[code] = str(friend["email"]).strip().lower()
    if ids:
        redis().hset(IDENT.format(source), mapping=ids)
    script = services.current().cache.get("learn_code_script")
    if script is None:
        script = services.current().cache["learn_code_script"] = redis().register_script(LEARN_CODE)
    for code, address in codes.items():
        script(keys=[CODES], args=[code, address, AMBIGUOUS])
    handles = [f"{source}:id:{sid}" for sid in ids]
    # A code may unlock events parked by any source (an in-store Mention Me redemption waits for
    # the code another delivery, or another platform, taught).
    handles += [f"{name}:code:{code}" for code in codes for name in SOURCES]
    pipe = redis().pipeline(transaction=False)
    for handle in handles:
        pipe.zscore(PARKED_INDEX, handle)
    return [h for h, score in zip(handles, pipe.execute()) if score is not None]


def forget(source: str, contact: dict[str, Any]) -> None:
    """After an erasure: the hub keeps no id or code that still names the person."""
    address = contact.get("email")
    if contact.get("source_id"):
        redis().hdel(IDENT.format(source), str(contact["source_id"]))
    if not address:
        return
    for key in (IDENT.format(source), CODES):
        stale = [k for k, v in redis().hscan_iter(key) if v.decode() == address]
        if stale:
            redis().hdel(key, *stale)


def names_party(event: Any, addresses: set[str]) -> bool:
    return isinstance(event, dict) and any(
        isinstance(event.get(role), dict) and str(event[role].get("email") or "").strip().lower() in addresses
        for role in PARTIES)


def forget_address(addresses: list[str]) -> dict[str, int]:
    """After an erasure, from any source: no identity, code, parked event or rejected delivery
    that names the person is kept. Rejected entries are deleted whole (they could not be used
    anyway); parked events that name the person are dropped, the others keep waiting."""
    r, found, wanted = redis(), mentions(addresses), set(addresses)
    pipe = r.pipeline(transaction=False)
    for key in [IDENT.format(name) for name in SOURCES] + [CODES]:
        stale = [k for k, v in r.hscan_iter(key) if v.decode().lower() in wanted]
        if stale:
            pipe.hdel(key, *stale)
    dropped = 0
    for member, _ in r.zscan_iter(PARKED_INDEX):
        handle = member.decode()
        events = r.hgetall(PARKED.format(handle))
        gone = [k for k, raw in events.items() if names_party(json.loads(raw), wanted) or found.search(raw.decode())]
        if gone:
            dropped += len(gone)
            r.hdel(PARKED.format(handle), *gone)
            r.eval(UNINDEX_EMPTY, 2, PARKED.format(handle), PARKED_INDEX, handle)
    rejected, start = [], "-"
    while True:
        chunk = r.xrange(REJECTED, min=start, count=500)
        if not chunk:
            break
        start = "(" + chunk[-1][0].decode()
        rejected += [entry_id for entry_id, fields in chunk
                     if any(found.search(v.decode("utf-8", "replace")) for v in fields.values())]
    if rejected:
        pipe.xdel(REJECTED, *rejected)
    pipe.execute()
    return {"parked": dropped, "rejected": len(rejected)}


# --- parking ----------------------------------------------------------------------------------

def park(handle: str, event: dict[str, Any]) -> None:
    """Keep the event until its handle is known; keyed by event id, so a retried delivery of a
    parked event waits once."""
    pipe = redis().pipeline()
    pipe.hset(PARKED.format(handle), event["id"], json.dumps(event, default=str))
    pipe.zadd(PARKED_INDEX, {handle: time.time()}, nx=True)
    pipe.execute()


def unpark(handles: list[str]) -> list[dict[str, Any]]:
    """Take the parked events of handles the hub can now name, oldest first (taking them twice is
    harmless: the ledger dedupes on event id)."""
    events = []
    for handle in handles:
        pipe = redis().pipeline()
        pipe.hgetall(PARKED.format(handle))
        pipe.delete(PARKED.format(handle))
        pipe.zrem(PARKED_INDEX, handle)
        events += [json.loads(raw) for raw in pipe.execute()[0].values()]
    return sorted(events, key=lambda e: str(e.get("occurred_at")))


def required_role(event: dict[str, Any]) -> str | None:
    kind = str(event.get("type", ""))
    if kind == "reward.granted":
        reward = event.get("reward")
        return reward.get("recipient") if isinstance(reward, dict) else None
    if kind.startswith("contact."):
        return "contact"
    return "friend" if kind.startswith("friend.") else "referrer" if kind.startswith("referr") else None


def derived_id(event_id: str, role: str) -> str:
    full = f"{event_id}~{role}"
    if len(full) <= 128:
        return full
    return f"{event_id.split(':', 1)[0][:40]}:{hashlib.sha256(full.encode()).hexdigest()}"


def place(source: str, event: dict[str, Any]) -> tuple[dict[str, Any] | None, list[tuple[str, dict[str, Any]]], str | None]:
    """(event to apply now, [(handle, event to park)], reason to refuse) for one event."""
    event = copy.deepcopy(event)
    waiting: dict[str, str] = {}
    required = required_role(event)
    for role in PARTIES:
        person = event.get(role)
        if not isinstance(person, dict) or person.get("email"):
            continue
        handle = handle_of(source, person)
        if handle is None:
            if role != required:
                event.pop(role)  # an optional party nobody can name: the rest of the event stands
            continue  # a required one: validation says what is missing
        found = lookup(handle)
        if found == AMBIGUOUS:
            if role == required:
                return None, [], f"{role}: promo code {handle.split(':', 2)[2]} is shared by several people"
            event.pop(role)
        elif found:
            person["email"] = found
        else:
            waiting[role] = handle
    if required in waiting:
        return None, [(waiting[required], event)], None
    parked = []
    if "referrer" in waiting and event.get("type") in CREDITING:
        parked.append((waiting["referrer"], {**copy.deepcopy(event), "id": derived_id(event["id"], "referrer")}))
    return {k: v for k, v in event.items() if k not in waiting}, parked, None


# --- outcomes ---------------------------------------------------------------------------------

def record(source: str, reasons: str, event: dict[str, Any] | None = None, body: bytes | None = None) -> None:
    fields = {"source": source, "event_id": str((event or {}).get("id") or ""),
              "type": str((event or {}).get("type") or ""), "reasons": reasons[:MAX_KEPT]}
    if event is not None:
        fields["event"] = json.dumps(event, default=str)[:MAX_KEPT]
    if body is not None:
        fields["body"] = body[:MAX_KEPT].decode("utf-8", "replace")
    redis().xadd(REJECTED, fields, maxlen=10_000, approximate=True)


def count(source: str, outcome: str, kinds: list[str]) -> None:
    if kinds:
        pipe = redis().pipeline(transaction=False)
        for kind in kinds:
            pipe.hincrby(STATS, f"{source}:{outcome}:{kind}", 1)
        pipe.execute()


def take(source: str, items: list[dict[str, Any]]) -> dict[str, int]:
    """Resolve, park what cannot be resolved yet, validate each event alone, apply what is valid."""
    queue, ready, parked, refused = list(items), [], [], []
    while queue:
        event = queue.pop(0)
        now, waits, problem = place(source, event)
        if problem:
            refused.append((event, problem))
            continue
        if now is not None:
            ready.append(now)
        for handle, waiting in waits:
            park(handle, waiting)
            if lookup(handle) is None:
                parked.append(str(waiting.get("type")))
            else:  # another delivery taught the handle meanwhile: do not leave the event behind
                queue += unpark([handle])
    valid, raw = [], []
    for event in ready:
        loaded, errors = load_events([event])
        if errors:
            refused.append((event, "; ".join(f"{e['field']}: {e['message']}" for e in errors)))
        else:
            valid += loaded
            raw.append(event)
    for event, reasons in refused:
        record(source, reasons, event)
    accepted = duplicates = 0
    while valid:
        queues = get_queues()
        try:
            outcomes, fresh = get_ledger().apply_each(valid, queues.connectors, source, queues.flags())
        except LedgerRefused as exc:  # nothing was written: keep the event for ops, apply the rest
            record(source, f"{exc.field}: {exc.message}", raw[exc.index])
            refused.append((raw.pop(exc.index), exc.message))
            valid.pop(exc.index)
            continue
        queues.enqueue_flushes([queues.connectors[i] for i in fresh])
        accepted, duplicates = sum(outcomes), len(outcomes) - sum(outcomes)
        break
    for event in raw:
        if event.get("type") == "contact.erased" and isinstance(event.get("contact"), dict):
            forget(source, event["contact"])
    count(source, "accepted", [e["type"] for e in valid])
    count(source, "parked", parked)
    count(source, "rejected", [str(e.get("type")) for e, _ in refused])
    return {"accepted": accepted, "duplicates": duplicates, "parked": len(parked), "rejected": len(refused)}


# --- ops --------------------------------------------------------------------------------------

def why(handle: str) -> str:
    source, kind, value = handle.split(":", 2)
    label = SOURCES[source].label if source in SOURCES else source
    if kind == "code":
        return f"no email known yet for promo code {value}; waiting for an event that carries both"
    return f"no email known yet for {label} id {value}; waiting for an event that carries both"
