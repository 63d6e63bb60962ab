"""The console's short history: per connector, the last hour in one-minute buckets, for the
overview's charts (Prometheus keeps the long history; the console needs a picture of the last
hour without one). Aggregates only: no bucket names a person.

- **calls and errors**: the vendor calls `hub.core.recent` counts per minute.
- **backlog**: contacts waiting for the connector, the size of its dirty set plus its erasures
  pending, sampled once a minute by the periodic sweep (`hub.core.sync.sweep`). The sweep runs on
  the scheduler once per slot for the whole cluster, whether or not anything flushes, so a paused
  or stalled connector, whose backlog matters most, is sampled too; a sample is a gauge, so a
  second sample in the same minute only overwrites the first.
- **freshness**: for each contact a push landed, the seconds from when the contact became dirty
  to the moment the push landed. When it became dirty is the start of its burst as the ledger
  records it (`:since` on the contact), but never before the connector's previous outcome for the
  contact (a burst that spans a push began again for the next one). Kept per minute as a count,
  a sum, the maximum and counts in fixed buckets (BOUNDS), so a percentile is drawn as what the
  buckets prove: at most the bound of the bucket it falls in, and at most the maximum.

A minute is the hash `hub:hist:<minute>` (keys.HISTORY), expiring two hours after it was last
written. Every function takes `now` so tests run on a clock they control.
"""
from __future__ import annotations

import json
import math
import time
from typing import Any, Iterable

from hub.core import keys, pushstate, recent

KEEP = 2 * 3600
MINUTES = 60
SEP = "\t"
BOUNDS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)   # seconds; a last bucket takes the rest
OVER = "inf"

# KEYS: the minute's hash. ARGV: keep (seconds), the max field, the batch's max, then (field,
# increment) pairs. One step, so two workers recording at once never lose a count or a maximum.
_FRESH = """
for i = 4, #ARGV, 2 do
  redis.call('HINCRBYFLOAT', KEYS[1], ARGV[i], ARGV[i + 1])
end
local before = tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '-1')
if tonumber(ARGV[3]) > before then redis.call('HSET', KEYS[1], ARGV[2], ARGV[3]) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""


def minute(now: float) -> int:
    return int(now // 60)


def bucket_key(m: int) -> str:
    return keys.HISTORY.format(m)


def field(connector: str, *parts: str) -> str:
    return SEP.join((connector, *parts))


def bucket_of(seconds: float) -> str:
    """The fixed bucket a freshness figure is counted in: the first bound it does not exceed."""
    for bound in BOUNDS:
        if seconds <= bound:
            return str(bound)
    return OVER


# -- recording ------------------------------------------------------------------------------
def sample_backlog(redis: Any, connectors: Iterable[str], now: float) -> dict[str, int]:
    """Note each connector's backlog (dirty contacts + erasures pending) in this minute's bucket."""
    names = list(connectors)
    if not names:
        return {}
    pipe = redis.pipeline(transaction=False)
    for name in names:
        pipe.zcard(keys.dirty(name))
        pipe.zcard(keys.erase(name))
    counts = pipe.execute()
    backlog = {name: int(counts[2 * i]) + int(counts[2 * i + 1]) for i, name in enumerate(names)}
    key = bucket_key(minute(now))
    pipe = redis.pipeline(transaction=False)
    pipe.hset(key, mapping={field(name, "backlog"): value for name, value in backlog.items()})
    pipe.expire(key, KEEP)
    pipe.execute()
    return backlog


def dirty_since(redis: Any, connector: str, emails: list[str]) -> dict[str, float]:
    """When each contact became dirty for the connector, as well as the hub knows it: its burst's
    start (the ledger's `:since`), but not before the connector's last outcome for it. Read before
    the push, since the push's own outcome replaces that last one. A contact with neither is left out."""
    if not emails:
        return {}
    pipe, field = redis.pipeline(transaction=False), pushstate.field(connector)
    for email in emails:
        pipe.hmget(keys.contact(email), ":since", field)    # the burst's start; a landed push, with its time
    pipe.hmget(keys.LAST.format(connector), emails)      # a failed try (an older hub's successes too)
    *answers, lasts = pipe.execute()
    return since_of(emails, [since for since, _ in answers], [pushed for _, pushed in answers], lasts)


def since_of(emails: list[str], sinces: list[Any], pushed: list[Any], lasts: list[Any]) -> dict[str, float]:
    """`dirty_since` from what was read: per contact its `:since`, its pushed entry and its
    connector's last failed try (each None when absent)."""
    out: dict[str, float] = {}
    for email, since, entry, last in zip(emails, sinces, pushed, lasts):
        moments = [float(since)] if since else []
        landed = pushstate.landed_at(entry)
        if landed is not None:
            moments.append(landed)
        if last:
            try:
                moments.append(float(json.loads(last)["at"]))
            except (ValueError, KeyError, TypeError):
                pass
        if moments:
            out[email] = max(moments)
    return out


def record_freshness(redis: Any, connector: str, seconds: Iterable[float], now: float) -> None:
    """Count the freshness of pushes that landed now (one figure per contact, in seconds)."""
    figures = [max(0.0, float(s)) for s in seconds]
    if not figures:
        return
    increments: dict[str, float] = {field(connector, "fresh", "n"): len(figures),
                                    field(connector, "fresh", "sum"): sum(figures)}
    for figure in figures:
        name = field(connector, "fresh", bucket_of(figure))
        increments[name] = increments.get(name, 0) + 1
    args: list[Any] = [KEEP, field(connector, "fresh", "max"), max(figures)]
    for name, value in increments.items():
        args += [name, value]
    redis.eval(_FRESH, 1, bucket_key(minute(now)), *args)


def landed(redis: Any, connector: str, since: dict[str, float], emails: Iterable[str], now: float | None = None) -> None:
    """After a push: the freshness of the contacts that landed, from the times `dirty_since` read."""
    now = time.time() if now is None else now
    record_freshness(redis, connector, [now - since[e] for e in emails if e in since], now)


# -- reading --------------------------------------------------------------------------------
def quantile(counts: dict[str, int], total: int, q: float, most: float | None) -> float | None:
    """An upper bound of the q-quantile from bucket counts: the bound of the bucket the
    q-quantile falls in, and never above the largest figure seen."""
    if total <= 0:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for bound in (*BOUNDS, OVER):
        seen += counts.get(str(bound), 0)
        if seen >= rank:
            limit = math.inf if bound == OVER else float(bound)
            return min(limit, most) if most is not None else (None if bound == OVER else limit)
    return most


def empty_series(count: int = MINUTES) -> dict[str, list[Any]]:
    return {"calls": [0] * count, "errors": [0] * count, "backlog": [None] * count,
            "fresh_n": [0] * count, "fresh_p50": [None] * count, "fresh_p95": [None] * count,
            "fresh_max": [None] * count}


def last_hour(redis: Any, connectors: Iterable[str], now: float,
              calls: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """connector -> the last hour, oldest minute first: "minutes" (each minute's start, epoch
    seconds), "calls", "errors", "backlog" (None: not sampled), "fresh_n", "fresh_p50",
    "fresh_p95", "fresh_max" (None: nothing landed), and over the hour "fresh_hour"
    ({"n", "p50", "p95", "max"}). `calls`: `recent.last_hour` at the same `now`, when the caller
    has read it already."""
    end = minute(now)
    minutes = list(range(end - MINUTES + 1, end + 1))
    pipe = redis.pipeline(transaction=False)
    for m in minutes:
        pipe.hgetall(bucket_key(m))
    buckets = [{k.decode(): v.decode() for k, v in raw.items()} for raw in pipe.execute()]
    if calls is None:
        calls = recent.last_hour(redis, now)
    out: dict[str, dict[str, Any]] = {}
    for name in connectors:
        series: dict[str, Any] = {"minutes": [m * 60 for m in minutes], **empty_series(len(minutes))}
        counted: dict[str, Any] = dict(calls.get(name, {}))
        series["calls"] = list(counted.get("by_minute", [0] * len(minutes)))
        series["errors"] = list(counted.get("errors_by_minute", [0] * len(minutes)))
        hour_counts: dict[str, int] = {}
        hour_max: float | None = None
        for index, bucket in enumerate(buckets):
            value = bucket.get(field(name, "backlog"))
            if value is not None:
                series["backlog"][index] = int(value)
            n = int(float(bucket.get(field(name, "fresh", "n"), 0)))
            if not n:
                continue
            counts = {str(b): int(float(bucket.get(field(name, "fresh", str(b)), 0))) for b in (*BOUNDS, OVER)}
            most = float(bucket[field(name, "fresh", "max")]) if field(name, "fresh", "max") in bucket else None
            series["fresh_n"][index] = n
            series["fresh_max"][index] = most
            series["fresh_p50"][index] = quantile(counts, n, 0.5, most)
            series["fresh_p95"][index] = quantile(counts, n, 0.95, most)
            for b, c in counts.items():
                hour_counts[b] = hour_counts.get(b, 0) + c
            if most is not None:
                hour_max = most if hour_max is None else max(hour_max, most)
        total = sum(series["fresh_n"])
        series["fresh_hour"] = {"n": total, "p50": quantile(hour_counts, total, 0.5, hour_max),
                                "p95": quantile(hour_counts, total, 0.95, hour_max), "max": hour_max}
        out[name] = series
    return out
