"""What the hub last pushed of a contact to a connector, kept in the contact's own hash.

One field per connector, `p:<connector>` (keys.PUSHED_FIELD) of `hub:c:<email>`, so whatever
erases the contact erases it too, and a small contact hash stays one compact block in Redis.
Its value is one short string, four parts joined by single spaces:

    <fingerprint> <landed at> <consent> <lists>

- fingerprint: the first FP_CHARS hex digits of what was rendered (hub/core/sync.py), or a word
  that matches no rendering (`resync`, `audit`, `superseded`), or empty: what landed is known
  but not as the contact's current state.
- landed at: when the push landed, in seconds since the epoch (empty in data an older hub
  wrote without it).
- consent: the marketing consent sent, `1`, `0`, or empty for none.
- lists: the lists the contact was put in, as JSON `{"<list id>": "m" | "t"}` (marketing,
  transactional), or empty for none.

Written by the flush's settle step (hub/core/sync.py `_SETTLE`, in Lua, which adds the time),
changed by a resync (hub/core/contacts.py) and an audit repair (hub/core/audit.py), both in Lua,
and read here. Up to layout 5 the same facts were JSON in one hash per connector,
`hub:pushed:<connector>` (keys.PUSHED); hub/core/migrate.py layout 6 moves them here.
"""
from __future__ import annotations

import json
from typing import Any

from connectors.base import MARKETING, TRANSACTIONAL

from hub.core import jsontext, keys

FP_CHARS = 16   # 64 bits of SHA-1: two different renderings of one contact share one with odds of 2^-64
SHORT = {MARKETING: "m", TRANSACTIONAL: "t"}
LONG = {v: k for k, v in SHORT.items()}
_COMPACT_JSON = jsontext.writer(separators=(",", ":"))   # json.dumps' text, by a writer built once

# Lua for the scripts that change an entry: its parts (fingerprint, landed at, consent, lists
# JSON) and the entry built back from them; the lists' kinds by their letter.
LUA = """
local pushed_kinds = {""" + ", ".join(f"{v} = '{k}'" for k, v in SHORT.items()) + """}
local function pushed_parts(raw)
  return string.match(raw, '^(%S*) (%S*) (%S*) (.*)$')
end
local function pushed_entry(fp, at, consent, lists)
  return fp .. ' ' .. at .. ' ' .. consent .. ' ' .. lists
end
"""


def field(connector: str) -> str:
    """The contact hash's field holding what was last pushed to the connector."""
    return keys.PUSHED_FIELD.format(connector)


def tail(lists: dict[str, str] | None, consent: bool | None) -> str:
    """The consent and lists parts of an entry."""
    short = _COMPACT_JSON({i: SHORT.get(k, k) for i, k in lists.items()}) if lists else ""
    return ("1" if consent is True else "0" if consent is False else "") + " " + short


def written(fp: str, lists: dict[str, str] | None, consent: bool | None) -> str:
    """What a push wrote, before it lands: `<fingerprint> <consent> <lists>` (settle adds the time)."""
    return f"{fp} {tail(lists, consent)}"


def entry(fp: str, at: float | None, lists: dict[str, str] | None, consent: bool | None) -> str:
    """A whole entry, as the contact hash keeps it."""
    when = "" if at is None else str(int(at)) if float(at).is_integer() else repr(float(at))
    return f"{fp} {when} {tail(lists, consent)}"


def unpack(raw: bytes | str | None) -> dict[str, Any] | None:
    """An entry as {"fp", "at" (None when not known), "consent", "lists"}; None for no entry."""
    if raw is None:
        return None
    text = raw.decode() if isinstance(raw, bytes) else raw
    fp, at, consent, lists = text.split(" ", 3)
    return {"fp": fp, "at": (float(at) if "." in at else int(at)) if at else None,
            "consent": {"1": True, "0": False}.get(consent),
            "lists": {i: LONG.get(k, k) for i, k in json.loads(lists).items()} if lists else {}}


def landed_at(raw: bytes | str | None) -> float | None:
    """When the entry's push landed (None: no entry, or no time kept)."""
    found = unpack(raw)
    return None if found is None or found["at"] is None else float(found["at"])


def read(redis: Any, connector: str, emails: list[str]) -> list[bytes | None]:
    """The raw entries of these contacts for the connector, in order (None: never pushed, or gone)."""
    if not emails:
        return []
    pipe = redis.pipeline(transaction=False)
    name = field(connector)
    for email in emails:
        pipe.hget(keys.contact(email), name)
    return list(pipe.execute())


def forget(pipe: Any, connector: str, emails: list[str]) -> None:
    """Drop the connector's entries of these contacts (queued on `pipe`); a contact hash that is
    gone stays gone (HDEL creates nothing)."""
    name = field(connector)
    for email in emails:
        pipe.hdel(keys.contact(email), name)
