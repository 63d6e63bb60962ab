"""Adaptive coalescing: which of a connector's dirty contacts a flush sends now, or how long it
waits for more.

Each dirty contact is scored with the time it comes due: its coalescing window after its last
touch (the ledger sets it). A flush then:

- sends a full batch (`max_batch` due contacts) as soon as it has one;
- otherwise, while more contacts are arriving (some are dirty but not due yet) and the oldest
  due contact's first unsent change (`first_change`: its last push, else its burst's start) is
  younger than the connector's freshness deadline, waits a moment for the batch to fill;
- otherwise sends the due contacts it has (a trickle is never held past the deadline), and,
  where every flush costs fixed calls (`fill_forced_flush`), the contacts still in their
  window too (due within the deadline), so the next flush comes a whole deadline later.

Vendors that update one contact a call (`updates_one_by_one`, Splio) are held differently while
a burst is under way: each due contact waits for its own deadline (`take_held`).

Bursts so become full batches, fewer vendor calls; the price is that a contact may wait up to
the deadline, instead of its window only, before it is sent. The deadline is per connector:
`HUB_FRESHNESS_DEADLINE_<CONNECTOR>`, else the connector's `freshness_deadline`, else
`HUB_FRESHNESS_DEADLINE` (seconds; 0 turns the waiting off). Nothing waits when
`HUB_FLUSH_WINDOW` is 0 (contacts are pushed at once).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from connectors import CONNECTORS

from hub.core.keys import LAST
from hub.core import pushstate
from hub.core.ledger import dirty_key, key

DEFAULT_DEADLINE = 3.0      # seconds from a contact's first touch until it is sent, at the latest
STEP = 0.2                  # how long a waiting flush sleeps before it looks again
HELD_SCAN = 4               # a held flush looks at this many batches' worth of due contacts
OLDEST_AMONG = 100          # the first due contacts whose oldest unsent change sets the wait


@dataclass
class Take:
    """What the flush does next: push `batch` now, or sleep `wait` seconds (both empty/0: nothing
    is dirty)."""

    batch: list[str]
    wait: float = 0.0
    reason: str = ""


def deadline_for(config: dict[str, Any], connector: str, client: Any) -> float:
    """The connector's freshness deadline in seconds (0: send whatever is due at once)."""
    if not config.get("FLUSH_WINDOW"):
        return 0.0
    value = config.get(f"FRESHNESS_DEADLINE_{connector.upper()}")
    if value in (None, ""):
        value = getattr(client, "freshness_deadline", None)
    if value in (None, ""):
        value = config.get("FRESHNESS_DEADLINE", DEFAULT_DEADLINE)
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"HUB_FRESHNESS_DEADLINE_{connector.upper()} must be a number, not {value!r}") from None
    return max(0.0, seconds)


def batch_size(client: Any) -> int:
    """Contacts one flush takes at once: the connector's `flush_batch`, else its `max_batch`."""
    return int(getattr(client, "flush_batch", 0) or client.max_batch)


def held(connector: str) -> bool:
    """The vendor updates one contact a call (Splio: bulk create, no bulk update), so each
    contact is held to its own deadline (see `take_held`)."""
    return bool(getattr(CONNECTORS.get(connector), "updates_one_by_one", False))


def queue_reads(pipe: Any, connector: str, max_batch: int, deadline: float, now: float) -> None:
    """Queue on `pipe` the two reads `take` starts with (the due contacts, the next one not
    due); give their answers to `take` as `reads`, with the same `now`."""
    dirty = dirty_key(connector)
    scan = HELD_SCAN * max_batch if deadline > 0 and held(connector) else max_batch
    pipe.zrangebyscore(dirty, "-inf", now, start=0, num=scan)
    pipe.zrangebyscore(dirty, f"({now}", "+inf", start=0, num=1, withscores=True)


def take(r: Any, connector: str, max_batch: int, deadline: float, now: float | None = None,
         reads: tuple[list[bytes], list[tuple[bytes, float]]] | None = None) -> Take:
    """The next batch to push, or how long to wait for a fuller one (see the module's rules).
    `reads`: `queue_reads`' answers, when the caller sent them with its own."""
    now = time.time() if now is None else now
    if reads is None:
        pipe = r.pipeline(transaction=False)
        queue_reads(pipe, connector, max_batch, deadline, now)
        reads = pipe.execute()
    if deadline > 0 and held(connector):
        return take_held(r, connector, max_batch, deadline, now, reads)
    dirty = dirty_key(connector)
    due = [e.decode() for e in reads[0]]
    later = reads[1]
    if len(due) >= max_batch:
        return Take(due, reason="full")
    if not due:
        if not later:
            return Take([])
        return Take([], wait=min(max(later[0][1] - now, 0.01), 1.0), reason="none due")
    if deadline > 0 and later:
        age = now - oldest_change(r, connector, due[:OLDEST_AMONG], now, deadline)
        if age < deadline:
            # More are on their way and the oldest still has time: let the batch fill.
            return Take([], wait=min(STEP, deadline - age, max(later[0][1] - now, 0.01)), reason="filling")
    if later and fills(connector) and len(due) < max_batch:
        # The deadline forces this flush and the vendor charges fixed calls per flush: take the
        # contacts still in their window too (those due before the next deadline could come), so
        # the next flush comes a whole deadline later.
        due += [e.decode() for e in r.zrangebyscore(dirty, f"({now}", now + deadline, start=0,
                                                    num=max_batch - len(due))]
    return Take(due, reason="deadline" if later else "trickle")


def fills(connector: str) -> bool:
    """A flush the deadline forces takes every dirty contact, not only the due ones
    (`Connector.fill_forced_flush`)."""
    return bool(getattr(CONNECTORS.get(connector), "fill_forced_flush", False))


def first_change(since: float | None, last_push: float | None, known: bool) -> float | None:
    """When a dirty contact's first change not yet sent happened, at the earliest: one the vendor
    holds changed after its last push (`last_push`); one never pushed when its burst began
    (`since`). None: no state left (erased), nothing to gather."""
    return last_push if known and last_push is not None else since


def last_landed(pushed: bytes | None, last: bytes | None) -> float | None:
    """When the contact's last push landed, unless a failed try came after it (a failed try sent
    nothing, so the change it carried is still unsent). A landed push keeps its time with its
    fingerprint (the contact's pushed entry, hub/core/pushstate.py); `hub:last:<connector>` keeps
    failures (and, in data an older hub wrote, successes too)."""
    landed: float | None = pushstate.landed_at(pushed)
    outcome = json.loads(last) if last else {}
    at = outcome.get("at")
    if isinstance(at, (int, float)) and (landed is None or at >= landed):
        landed = at if outcome.get("ok") else None
    return float(landed) if isinstance(landed, (int, float)) else None


def starts(r: Any, connector: str, emails: list[str]) -> list[tuple[str, float | None]]:
    """(email, `first_change`) for each contact."""
    return [(email, at) for email, at, _ in read_starts(r, connector, emails)]


def read_starts(r: Any, connector: str, emails: list[str]) -> list[tuple[str, float | None, bool]]:
    """`starts`, and for each contact whether the vendor holds it (it has a pushed entry)."""
    pipe = r.pipeline(transaction=False)
    field = pushstate.field(connector)
    for email in emails:
        pipe.hmget(key(email), ":since", field)
        pipe.hget(LAST.format(connector), email)
    answers = pipe.execute()
    out = []
    for i, email in enumerate(emails):
        (since, pushed), last = answers[2 * i:2 * i + 2]
        out.append((email, first_change(float(since) if since else None, last_landed(pushed, last),
                                        pushed is not None), pushed is not None))
    return out


def oldest_change(r: Any, connector: str, emails: list[str], now: float, deadline: float) -> float:
    """When the oldest unsent change among these due contacts began. A contact pushed during
    its burst counts from that push, not from the burst's start, so its later events do not
    force the next flush at once. A contact with no state left counts as already late."""
    return min((now - deadline if at is None else at for _, at in starts(r, connector, emails)), default=now)


def take_held(r: Any, connector: str, max_batch: int, deadline: float, now: float,
              reads: tuple[list[bytes], list[tuple[bytes, float]]]) -> Take:
    """For vendors that update one contact a call, while a burst is under way (some contacts are
    dirty but not due): a due contact is sent only when its deadline comes (`first_change` +
    deadline), never earlier because a batch is full, so the events of a burst longer
    than the coalescing window reach the vendor in as few pushes as the deadline allows: a
    contact is created once with all it gathered by then, and updated at most once a deadline."""
    due = [e.decode() for e in reads[0]]
    later = reads[1]
    if not due:
        return Take([], wait=min(max(later[0][1] - now, 0.01), 1.0), reason="none due") if later else Take([])
    if not later:
        return Take(due[:max_batch], reason="trickle")      # no burst under way: nothing to wait for
    ready: list[str] = []
    quiet_new: list[str] = []           # never pushed, quiet for their window, deadline still ahead
    known: set[str] = set()             # the vendor holds them: a push after this one is an update
    soonest = now + 1.0
    for email, start, held_there in read_starts(r, connector, due):
        if held_there:
            known.add(email)
        at = now if start is None else start + deadline
        if at <= now:
            ready.append(email)
        else:
            soonest = min(soonest, at)
            if email not in known:
                quiet_new.append(email)
    if not ready:
        return Take([], wait=max(soonest - now, 0.01), reason="holding")
    batch = ready[:max_batch]
    # A bulk create that goes part-full is filled with new contacts already quiet for their
    # coalescing window: they ride along for nothing instead of needing a create of their own.
    # (Splio's bulk create takes `max_batch` contacts, so a batch is at most one create call.)
    room = max_batch - len(batch) if any(e not in known for e in batch) else 0
    return Take(batch + quiet_new[:room], reason="deadline")
