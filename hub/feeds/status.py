"""What a feed is doing and has done, for `hub feeds status` and /metrics.

  hub:feeds:<feed>:status    hash: the file in hand, its progress, the last file's summary
  hub:m:feeds                counters, field "<feed>\\t<what>" (rows, accepted, duplicates,
                             errors, files_processed, files_failed, files_skipped, interrupted)
No personal data: file names, counts and reasons only (the reasons name columns, never values).
"""
from __future__ import annotations

import json
import time
from typing import Any

from hub.metrics import SEP, field

COUNTERS = "hub:m:feeds"


def key(feed: str) -> str:
    return f"hub:feeds:{feed}:status"


def count(redis: Any, feed: str, **amounts: int) -> None:
    pipe = redis.pipeline(transaction=False)
    for what, amount in amounts.items():
        if amount:
            pipe.hincrby(COUNTERS, field(feed, what), amount)
    pipe.execute()


def start(redis: Any, feed: str, name: str) -> None:
    redis.hset(key(feed), mapping={"file": name, "state": "importing", "started": time.time(),
                                   "progress": json.dumps({"rows": 0})})


def progress(redis: Any, feed: str, name: str, counts: dict[str, int]) -> None:
    redis.hset(key(feed), mapping={"file": name, "progress": json.dumps(counts), "updated": time.time()})


def interrupted(redis: Any, feed: str, name: str, reason: str) -> None:
    redis.hset(key(feed), mapping={"state": "interrupted", "reason": reason[:300], "updated": time.time()})
    count(redis, feed, interrupted=1)


def finished(redis: Any, feed: str, summary: dict[str, Any]) -> None:
    redis.hset(key(feed), mapping={"state": "idle", "last": json.dumps(summary), "updated": time.time()})
    redis.hdel(key(feed), "file", "progress", "reason")
    count(redis, feed, **{f"files_{summary['outcome']}": 1})


def polled(redis: Any, feed: str, error: str | None) -> None:
    """When the feed was last polled, and the error that stopped the poll, if any."""
    redis.hset(key(feed), mapping={"polled": time.time(), "poll_error": error or ""})


def read(redis: Any, feed: str) -> dict[str, Any]:
    raw = {k.decode(): v.decode() for k, v in redis.hgetall(key(feed)).items()}
    out: dict[str, Any] = {"feed": feed, "state": raw.get("state", "idle")}
    for name in ("file", "reason", "poll_error"):
        if raw.get(name):
            out[name] = raw[name]
    for name in ("progress", "last"):
        if raw.get(name):
            out[name] = json.loads(raw[name])
    for name in ("polled", "updated"):
        if raw.get(name):
            out[name] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(raw[name])))
    totals = {}
    for name, value in redis.hgetall(COUNTERS).items():
        owner, _, what = name.decode().partition(SEP)
        if owner == feed:
            totals[what] = int(value)
    out["totals"] = totals
    return out
