"""The contact index and each contact's timeline.

- `hub:contacts`, a sorted set of every contact the hub holds state for, scored by last activity
  (the time an event last touched them). Console lookups and paging read it, and so do the CLI's
  and the API's re-sync and the exports (`hub.core.mappingstore.known_contacts`), instead of a SCAN.
  It is derived: `rebuild` fills it from the ledger's keys once (SCAN), which happens by itself
  the first time it is needed on a database that predates it (`hub:contacts:built` marks it done).
- `hub:tl:<email>`, a capped list of what happened to the contact, oldest first: each event the
  ledger applied (id, type, source), each push (connector, mapping version, fields, the lists it
  joined and left, consent; a value naming another person is not kept) and each failure
  (connector, status, code). "Why is Anna in this list" is answered by the push that joined it,
  the mapping version it rendered with, and the events applied before it. Entries are stored
  compactly (see "the stored form" below): a push keeps its values, and its field names and
  lists are kept once for every contact in `hub:tl:shapes`.

Both are written only while the contact exists (one Lua step checks `hub:c:<email>`), so nothing
is recreated for a person erased in between; `forget` removes both at erasure (hub.core.erasure).
An event id that carries an address (Mention Me builds some from emails) is kept keyed-hashed,
as the dedupe marker keeps it, so one person's timeline never names another. The shapes stay at
erasure: they hold field names and list ids, never a person.
"""
from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Iterator

from hub.core import jsontext, keys
from hub.core.erasure import seen_id

INDEX = keys.CONTACT_INDEX
BUILT = keys.CONTACT_INDEX_BUILT
TIMELINE = keys.TIMELINE
SHAPES = keys.TIMELINE_SHAPES
CONTACT_PREFIX = keys.CONTACT_PREFIX
KEEP = 200                         # entries kept per contact
OTHER = "(another contact)"        # what a value naming another person is kept as

# -- the stored form ------------------------------------------------------------------------
# An entry is stored as a JSON array, its first member the kind, times in milliseconds, and
# trailing members left out when they hold their default:
#   event   [0, at, event id, type, source, occurred_at, as]
#           occurred_at: microseconds since the epoch when it is in the ledger's own form
#           (YYYY-MM-DDTHH:MM:SS.ffffffZ), else the text; as: "r", "f" or "c" (referrer,
#           friend, contact)
#   push    [1, at, connector, mapping version, field shape, values, lists, joined, left,
#            consent, consent changed (1)]
#           field shape: the id of the field names in SHAPES (or the shape itself when the id is
#           taken by another one), values in the shape's order; lists: 0 (none) or the id of
#           the lists in SHAPES; joined: 0 (none), 1 (every list of the push) or the lists;
#           left: 0 (none) or the lists
#   failed  [2, at, connector, status, code]
# A field shape is {"f": [names], "s": [positions of the contact's own address], "o":
# [positions of a value naming another person]}: the values at those positions are not stored.
# Shapes hold field names and list ids only, never a person, and are shared by every timeline;
# their id is the start of the SHA-1 of their JSON. `read` also takes entries in the earlier
# form (a JSON object per entry with its members named in full).
EVENT, PUSH, FAILED = 0, 1, 2
PARTS = {"referrer": "r", "friend": "f", "contact": "c"}
PART_OF = {code: part for part, code in PARTS.items()}
LEDGER_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"     # hub.core.schemas.check_timestamp's form
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


# json.dumps(value, separators=(",", ":"), default=str)'s text, by a writer built once.
_json = jsontext.writer(separators=(",", ":"), default=str)


def _ms(moment: float) -> int:
    return int(round(moment * 1000))


def _trimmed(entry: list[Any], defaults: dict[int, Any]) -> list[Any]:
    """The entry without its trailing members that hold their default."""
    while len(entry) - 1 in defaults and entry[-1] == defaults[len(entry) - 1]:
        entry.pop()
    return entry


def shape_id(shape: Any) -> str:
    return hashlib.sha1(_json(shape).encode()).hexdigest()[:8]


# A push names the same few shapes for every contact: their ids, by the shape as a tuple (its
# members in order, so two shapes with one JSON text have one key), kept once worked out.
_SHAPE_IDS: dict[tuple[Any, ...], str] = {}


def _known_shape_id(key: tuple[Any, ...], shape: Any) -> str:
    ident = _SHAPE_IDS.get(key)
    if ident is None:
        if len(_SHAPE_IDS) >= 4096:
            _SHAPE_IDS.clear()
        ident = _SHAPE_IDS[key] = shape_id(shape)
    return ident


def _occurred(text: str) -> int | str:
    """The event's time: microseconds since the epoch when that gives the same text back.
    Only LEDGER_TIME's 27 characters can, so that form alone is parsed (by fromisoformat, many
    times cheaper than strptime; this runs for every event the ingest applies)."""
    if len(text) != 27 or text[19] != "." or text[26] != "Z":
        return text
    try:
        moment = datetime.fromisoformat(text[:26]).replace(tzinfo=timezone.utc)
    except ValueError:
        return text
    micros = (moment - EPOCH) // timedelta(microseconds=1)
    return micros if _occurred_text(micros) == text else text


def _occurred_text(value: int | str) -> str:
    if isinstance(value, str):
        return value
    moment = EPOCH + timedelta(microseconds=value)
    if moment.year < 1000:
        return moment.strftime(LEDGER_TIME)    # strftime leaves such a year unpadded
    return moment.isoformat(timespec="microseconds")[:26] + "Z"


# KEYS: the contact index, the shapes. ARGV: now, keep, the contact key prefix, the timeline key
# prefix, the number of shapes, then (shape id, shape JSON) pairs, then (email, entry JSON,
# touch 1/0) triples. A shape is added when its id is free; an id held by another shape answers
# 0 and writes nothing (the caller sends its entries again with the shapes inside them). An entry
# is added (and the index touched) only while the contact's state exists.
_RECORD = """
local now, keep, shapes = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[5])
for i = 6, 5 + 2 * shapes, 2 do
  local held = redis.call('HGET', KEYS[2], ARGV[i])
  if held and held ~= ARGV[i + 1] then return 0 end
end
for i = 6, 5 + 2 * shapes, 2 do redis.call('HSETNX', KEYS[2], ARGV[i], ARGV[i + 1]) end
for i = 6 + 2 * shapes, #ARGV, 3 do
  local email = ARGV[i]
  if redis.call('EXISTS', ARGV[3] .. email) == 1 then
    local key = ARGV[4] .. email
    if redis.call('RPUSH', key, ARGV[i + 1]) > keep then redis.call('LTRIM', key, -keep, -1) end
    if ARGV[i + 2] == '1' then redis.call('ZADD', KEYS[1], now, email) end
  end
end
return 1
"""


Entries = list[tuple[str, list[Any], bool]]


def _record(redis: Any, entries: Entries, now: float | None = None, shapes: dict[str, Any] | None = None) -> None:
    """Append the entries; `shapes` (id -> shape) are the shapes they name by id."""
    if not entries:
        return
    pipe = redis.pipeline(transaction=False)
    _queue(pipe, entries, now, shapes)
    recorded(redis, pipe.execute()[0], entries, now, shapes)


def _queue(pipe: Any, entries: Entries, now: float | None, shapes: dict[str, Any] | None) -> None:
    """Queue _RECORD for the entries on `pipe`; `recorded` reads its answer."""
    shapes = shapes or {}
    head: list[Any] = [now or time.time(), KEEP, CONTACT_PREFIX, TIMELINE.format(""), len(shapes)]
    for ident, shape in shapes.items():
        head += [ident, _json(shape)]
    rows: list[Any] = []
    for email, entry, touch in entries:
        rows += [email, _json(entry), "1" if touch else "0"]
    pipe.eval(_RECORD, 2, INDEX, SHAPES, *head, *rows)


def recorded(redis: Any, answer: Any, entries: Entries, now: float | None, shapes: dict[str, Any] | None) -> None:
    """After _RECORD answered: 0 means an id already names another shape and nothing was
    written, so the entries are recorded again with each shape inside them."""
    if answer == 0 and entries:
        shapes = shapes or {}
        inline = [(email, [shapes.get(m, m) if entry[0] == PUSH and n in (4, 6) and isinstance(m, str) else m
                           for n, m in enumerate(entry)], touch) for email, entry, touch in entries]
        _record(redis, inline, now)


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
  local seen, index = {}, {}
  for _, e in ipairs(tl.entries) do
    local email = e[2]
    if done[e[1]] == 1 and redis.call('EXISTS', tl.contact .. email) == 1 then
      local key = tl.timeline .. email
      if redis.call('RPUSH', key, e[3]) > tl.keep then redis.call('LTRIM', key, -tl.keep, -1) end
      if not seen[email] then
        seen[email] = true
        index[#index + 1] = tl.now
        index[#index + 1] = email
      end
    end
  end
  -- the contact index touched once for the batch, 200 members a call
  for i = 1, #index, 400 do
    redis.call('ZADD', tl.index, unpack(index, i, math.min(i + 399, #index)))
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
        entry = [EVENT, _ms(now), event_ref(event["id"]), event["type"], source,
                 _occurred(str(event.get("occurred_at") or ""))]
        for part in ("referrer", "friend", "contact"):
            email = (event.get(part) or {}).get("email")
            if email:
                entries.append([index, email, _json([*entry, PARTS[part]])])
    return {"now": repr(now), "keep": KEEP, "contact": CONTACT_PREFIX, "timeline": TIMELINE.format(""),
            "index": INDEX, "entries": entries}


PUSH_DEFAULTS = {6: 0, 7: 0, 8: 0, 9: None, 10: 0}   # a push entry's trailing members left out


def pushed(redis: Any, connector: str, updates: Iterable[Any], version: int | None) -> None:
    """Contacts a push landed: what was sent, and which lists it joined and left."""
    _record(redis, *pushed_entries(connector, updates, version))


class Pushed:
    """`pushed` sent with other work: `queue` it on a pipeline, then give `done` its answer."""

    def __init__(self, connector: str, updates: Iterable[Any], version: int | None) -> None:
        self.entries, self.now, self.shapes = pushed_entries(connector, updates, version)

    def queue(self, pipe: Any) -> None:
        """Queue the entries on `pipe` (the caller queues only when there are entries)."""
        _queue(pipe, self.entries, self.now, self.shapes)

    def done(self, redis: Any, answer: Any) -> None:
        recorded(redis, answer, self.entries, self.now, self.shapes)


def pushed_entries(connector: str, updates: Iterable[Any], version: int | None
                   ) -> tuple[Entries, float, dict[str, Any]]:
    """The timeline entries of a landed push, their time, and the shapes they name."""
    now = time.time()
    entries: list[tuple[str, list[Any], bool]] = []
    shapes: dict[str, Any] = {}

    def shared(key: tuple[Any, ...], shape: Any) -> str:
        ident = _known_shape_id(key, shape)
        shapes[ident] = shape
        return ident

    for update in updates:
        before = update.previous_lists or {}
        joined = {i: k for i, k in update.lists.items() if i not in before}
        left = {i: k for i, k in before.items() if i not in update.lists}
        shape, values = field_shape(update.email, update.fields)
        changed = update.marketing_consent != update.previous_consent and update.marketing_consent is not None
        fields_key = ("f", tuple(shape["f"]), tuple(shape.get("s", ())), tuple(shape.get("o", ())))
        entry = [PUSH, _ms(now), connector, version, shared(fields_key, shape), values,
                 shared(("l", *update.lists.items()), update.lists) if update.lists else 0,
                 (1 if joined == update.lists else joined) if joined else 0, left or 0,
                 update.marketing_consent, 1 if changed else 0]
        entries.append((update.email, _trimmed(entry, PUSH_DEFAULTS), False))
    return entries, now, shapes


def field_shape(email: str, fields: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """The pushed fields split into their shape (names, and which of them held the contact's own
    address or named another person) and the values stored in the entry."""
    shape: dict[str, Any] = {"f": list(fields)}
    own: list[int] = []
    other: list[int] = []
    values: list[Any] = []
    # A value naming another person (a friend's `referred_by`) is never stored: the shape marks
    # it, and it reads back as OTHER, so erasing that person leaves nothing here. The contact's
    # own address is marked likewise.
    for position, value in enumerate(fields.values()):
        if isinstance(value, str):
            if "@" in value and value.lower() != email:
                other.append(position)
                continue
            if value == email:
                own.append(position)
                continue
        values.append(value)
    if own:
        shape["s"] = own
    if other:
        shape["o"] = other
    return shape, values


def failed(redis: Any, connector: str, emails: Iterable[str], status: Any, code: Any) -> None:
    now = time.time()
    entry = _trimmed([FAILED, _ms(now), connector, status, code], {3: None, 4: None})
    _record(redis, [(email, entry, False) for email in emails], now)


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def expand(email: str, stored: Any, shapes: dict[str, Any]) -> dict[str, Any]:
    """One stored entry in the form `read` gives (an entry in the earlier form is already in it).
    A push whose field shape or lists are no longer known says so in `not_kept`."""
    if isinstance(stored, dict):
        return stored
    kind, at, rest = stored[0], stored[1] / 1000, stored[2:]
    if kind == EVENT:
        event_id, type_, source, occurred, part = (rest + [None] * 5)[:5]
        return {"at": at, "kind": "event", "event": event_id, "type": type_, "source": source,
                "occurred_at": _occurred_text(occurred if occurred is not None else ""), "as": PART_OF.get(part, part)}
    if kind == FAILED:
        connector, status, code = (rest + [None] * 3)[:3]
        return {"at": at, "kind": "failed", "connector": connector, "status": status, "code": code}
    if kind != PUSH:
        return {"at": at, "kind": str(kind)}          # a kind this version does not know
    connector, version, shape_ref, values, lists_ref, joined, left, consent, changed = (rest + [None] * 9)[:9]
    entry: dict[str, Any] = {"at": at, "kind": "push", "connector": connector, "mapping_version": version}
    missing = []
    shape = shapes.get(shape_ref) if isinstance(shape_ref, str) else shape_ref
    if isinstance(shape, dict):
        own, other, given = set(shape.get("s") or ()), set(shape.get("o") or ()), iter(values or ())
        entry["fields"] = {name: email if n in own else OTHER if n in other else next(given, None)
                           for n, name in enumerate(shape["f"])}
    else:
        entry["fields"], missing = {}, ["fields"]
    lists = shapes.get(lists_ref) if isinstance(lists_ref, str) else lists_ref or {}
    if not isinstance(lists, dict):
        lists, missing = {}, [*missing, "lists"]
    entry["lists"] = lists
    entry["joined"] = dict(lists) if joined == 1 else joined or {}
    entry["left"] = left or {}
    entry["consent"] = consent
    entry["consent_changed"] = changed == 1
    if missing:
        entry["not_kept"] = missing
    return entry


def read(redis: Any, email: str) -> list[dict[str, Any]]:
    """The contact's timeline, newest first; each push carries as `cause` the last event applied
    before it (the one that made the contact dirty, or the last of those coalesced into it)."""
    stored = [json.loads(raw) for raw in redis.lrange(TIMELINE.format(email), 0, -1)]
    named = sorted({ref for s in stored if isinstance(s, list) and s[0] == PUSH
                    for ref in s[4:7:2] if isinstance(ref, str)})
    shapes = {ident: json.loads(raw) for ident, raw in zip(named, redis.hmget(SHAPES, named) if named else [])
              if raw is not None}
    entries = [expand(email, s, shapes) for s in stored]
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
