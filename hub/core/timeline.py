"""The contact index and each contact's timeline.

- `hub:contacts`, a sorted set of every contact the hub holds state for, scored by last activity
  (the time an event last touched them). Console lookups and paging read it, and so do the CLI's
  and the API's re-sync and the exports (`hub.core.mappingstore.known_contacts`), instead of a SCAN.
  It is derived: `rebuild` fills it from the ledger's keys once (SCAN), which happens by itself
  the first time it is needed on a database that predates it (`hub:contacts:built` marks it done).
- `hub:tl:<email>`, a capped list of what happened to the contact, oldest first: each event the
  ledger applied (id, type, source), each push (connector, mapping version, fields, the lists it
  joined and left, consent; a value naming another person is not kept) and each failure (connector, status, code). "Why is Anna in this
  list" is answered by the push that joined it, the mapping version it rendered with, and the
  events applied before it.

Both are written only while the contact exists (one Lua step checks `hub:c:<email>`), so nothing
is recreated for a person erased in between; `forget` removes both at erasure (hub.core.erasure).
An event id that carries an address (Mention Me builds some from emails) is kept keyed-hashed,
as the dedupe marker keeps it, so one person's timeline never names another.
"""
from __future__ import annotations

import json
import time
from typing import Any, Iterable, Iterator

from hub.core import keys
from hub.core.erasure import seen_id

INDEX = keys.CONTACT_INDEX
BUILT = keys.CONTACT_INDEX_BUILT
TIMELINE = keys.TIMELINE
CONTACT_PREFIX = keys.CONTACT_PREFIX
KEEP = 200                         # entries kept per contact

# KEYS: the contact index. ARGV: now, keep, the contact key prefix, the timeline key prefix, then
# (email, entry JSON, touch 1/0) triples. An entry is added (and the index touched) only while the
# contact's state exists.
_RECORD = """
local now, keep = ARGV[1], tonumber(ARGV[2])
for i = 5, #ARGV, 3 do
  local email = ARGV[i]
  if redis.call('EXISTS', ARGV[3] .. email) == 1 then
    local key = ARGV[4] .. email
    redis.call('RPUSH', key, ARGV[i + 1])
    redis.call('LTRIM', key, -keep, -1)
    if ARGV[i + 2] == '1' then redis.call('ZADD', KEYS[1], now, email) end
  end
end
return 1
"""


def _record(redis: Any, entries: list[tuple[str, dict[str, Any], bool]], now: float | None = None) -> None:
    if not entries:
        return
    args: list[Any] = [now or time.time(), KEEP, CONTACT_PREFIX, TIMELINE.format("")]
    for email, entry, touch in entries:
        args += [email, json.dumps(entry, separators=(",", ":"), default=str), "1" if touch else "0"]
    redis.eval(_RECORD, 1, INDEX, *args)


def event_ref(event_id: str) -> str:
    """The event id as the timeline keeps it: as sent, or keyed-hashed when it carries an address."""
    return seen_id(event_id) or event_id


# The ledger step's epilogue (hub.core.ledger.Ledger.apply_each runs it in the same script call,
# so an event and its timeline entries land in one round trip and one atomic step). `tl` is the
# decoded last argument: {now, keep, contact, timeline, index (the key prefixes and the index's
# name), entries: [[op index (1-based), email, entry JSON], ...]};
# `done` is the ledger's 1 (applied) / 0 (duplicate) per operation.
AFTER_LEDGER = """
local function record_applied(done, tl)
  for _, e in ipairs(tl.entries) do
    local email = e[2]
    if done[e[1]] == 1 and redis.call('EXISTS', tl.contact .. email) == 1 then
      local key = tl.timeline .. email
      redis.call('RPUSH', key, e[3])
      redis.call('LTRIM', key, -tl.keep, -1)
      redis.call('ZADD', tl.index, tl.now, email)
    end
  end
end
"""


def applied_entries(events: list[dict[str, Any]], source: str, now: float | None = None) -> dict[str, Any]:
    """What AFTER_LEDGER records for each event the ledger applies: an entry in the timeline of
    each person it names (an erasure records nothing: it removes the timeline)."""
    now = now or time.time()
    entries: list[list[Any]] = []
    for index, event in enumerate(events, 1):
        if event["type"] == "contact.erased":
            continue
        entry = {"at": now, "kind": "event", "event": event_ref(event["id"]), "type": event["type"],
                 "source": source, "occurred_at": str(event.get("occurred_at") or "")}
        for part in ("referrer", "friend", "contact"):
            email = (event.get(part) or {}).get("email")
            if email:
                entries.append([index, email, json.dumps({**entry, "as": part}, separators=(",", ":"), default=str)])
    return {"now": repr(now), "keep": KEEP, "contact": CONTACT_PREFIX, "timeline": TIMELINE.format(""),
            "index": INDEX, "entries": entries}


def pushed(redis: Any, connector: str, updates: Iterable[Any], version: int | None) -> None:
    """Contacts a push landed: what was sent, and which lists it joined and left."""
    now = time.time()
    entries = []
    for update in updates:
        before = update.previous_lists or {}
        joined = {i: k for i, k in update.lists.items() if i not in before}
        left = {i: k for i, k in before.items() if i not in update.lists}
        entries.append((update.email, {"at": now, "kind": "push", "connector": connector, "mapping_version": version,
                                       "fields": kept_fields(update.email, update.fields), "lists": update.lists, "joined": joined, "left": left,
                                       "consent": update.marketing_consent,
                                       "consent_changed": update.marketing_consent != update.previous_consent
                                       and update.marketing_consent is not None}, False))
    _record(redis, entries, now)


def kept_fields(email: str, fields: dict[str, Any]) -> dict[str, Any]:
    """The pushed fields as the timeline keeps them: a value naming another person (a friend's
    `referred_by`) is kept as "(another contact)", so erasing that person leaves nothing here."""
    return {name: "(another contact)" if isinstance(value, str) and "@" in value and value.lower() != email else value
            for name, value in fields.items()}


def failed(redis: Any, connector: str, emails: Iterable[str], status: Any, code: Any) -> None:
    now = time.time()
    _record(redis, [(email, {"at": now, "kind": "failed", "connector": connector, "status": status, "code": code}, False)
                    for email in emails], now)


def read(redis: Any, email: str) -> list[dict[str, Any]]:
    """The contact's timeline, newest first; each push carries as `cause` the last event applied
    before it (the one that made the contact dirty, or the last of those coalesced into it)."""
    entries = [json.loads(raw) for raw in redis.lrange(TIMELINE.format(email), 0, -1)]
    last = None
    for entry in entries:
        if entry["kind"] == "event":
            last = {"event": entry["event"], "type": entry["type"]}
        elif entry["kind"] == "push":
            entry["cause"] = last
    return entries[::-1]


def forget(pipe: Any, emails: list[str]) -> None:
    """At erasure: the timelines and index entries of erased people (queued on `pipe`)."""
    if emails:
        pipe.zrem(INDEX, *emails)
        pipe.delete(*(TIMELINE.format(e) for e in emails))


# -- the index ------------------------------------------------------------------------------
def rebuild(redis: Any, count: int = 1000) -> int:
    """Fill the index from the ledger's keys (SCAN, once): contacts not yet in it get score 0 (no
    known activity), those in it keep theirs. Returns how many it holds afterwards."""
    batch: list[str] = []
    for raw in redis.scan_iter(match=f"{CONTACT_PREFIX}*", count=count):
        rest = (raw.decode() if isinstance(raw, bytes) else raw)[len(CONTACT_PREFIX):]
        if ":" not in rest:
            batch.append(rest)
        if len(batch) >= count:
            redis.zadd(INDEX, {e: 0 for e in batch}, nx=True)
            batch = []
    if batch:
        redis.zadd(INDEX, {e: 0 for e in batch}, nx=True)
    redis.set(BUILT, "1")
    return int(redis.zcard(INDEX))


def ensure(redis: Any) -> None:
    if not redis.exists(BUILT):
        rebuild(redis)


def contacts(redis: Any, batch: int = 1000) -> Iterator[str]:
    """Every contact in the index, most recently active first, read in pages."""
    ensure(redis)
    start = 0
    while True:
        page = redis.zrevrange(INDEX, start, start + batch - 1)
        if not page:
            return
        for raw in page:
            yield raw.decode() if isinstance(raw, bytes) else raw
        start += batch


def page(redis: Any, offset: int, size: int) -> tuple[int, list[tuple[str, float]]]:
    """(total, [(email, last activity)]) most recently active first."""
    ensure(redis)
    rows = redis.zrevrange(INDEX, offset, offset + size - 1, withscores=True)
    return int(redis.zcard(INDEX)), [(e.decode(), s) for e, s in rows]
