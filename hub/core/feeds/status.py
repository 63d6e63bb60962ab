"""What a feed is doing and has done, for `hub feeds status` and /metrics.

  hub:feeds:<feed>:status    hash: the last file's summary, the last poll and its error
  hub:feeds:<feed>:active    hash: file -> progress of each file being imported (one per worker)
  hub:m:feeds                counters, field "<feed>\\t<what>" (rows, accepted, duplicates,
                             errors, files_processed, files_failed, files_skipped, interrupted)
No personal data: file names, counts and reasons only (the reasons name columns, never values).
"""
from __future__ import annotations

import json
import time
from typing import Any

from hub.core.metrics import FEEDS as COUNTERS
from hub.core.metrics import SEP, field
from hub.core import keys


def key(feed: str) -> str:
    return keys.FEEDS_STATUS.format(feed)


def count(redis: Any, feed: str, **amounts: int) -> None:
    pipe = redis.pipeline(transaction=False)
    for what, amount in amounts.items():
        if amount:
            pipe.hincrby(COUNTERS, field(feed, what), amount)
    pipe.execute()


def active(feed: str) -> str:
    return keys.FEEDS_ACTIVE.format(feed)


def start(redis: Any, feed: str, name: str) -> None:
    redis.hset(active(feed), name, json.dumps({"started": time.time(), "rows": 0}))


def progress(redis: Any, feed: str, name: str, counts: dict[str, int]) -> None:
    started = json.loads(redis.hget(active(feed), name) or "{}").get("started", time.time())
    redis.hset(active(feed), name, json.dumps({"started": started, "updated": time.time(), **counts}))


def interrupted(redis: Any, feed: str, name: str, reason: str) -> None:
    """The import of `name` broke off: keep its progress (marked) and say why."""
    held = json.loads(redis.hget(active(feed), name) or "{}")
    redis.hset(active(feed), name, json.dumps({**held, "interrupted": reason[:300], "updated": time.time()}))
    count(redis, feed, interrupted=1)


def finished(redis: Any, feed: str, summary: dict[str, Any]) -> None:
    redis.hset(key(feed), mapping={"last": json.dumps(summary), "updated": time.time()})
    redis.hdel(active(feed), summary["file"])
    count(redis, feed, **{f"files_{summary['outcome']}": 1})


def polled(redis: Any, feed: str, error: str | None) -> None:
    """When the feed was last polled, and the error that stopped the poll, if any."""
    redis.hset(key(feed), mapping={"polled": time.time(), "poll_error": error or ""})


def stamp(seconds: Any) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(seconds)))


def read(redis: Any, feed: str) -> dict[str, Any]:
    raw = {k.decode(): v.decode() for k, v in redis.hgetall(key(feed)).items()}
    files = {k.decode(): json.loads(v) for k, v in redis.hgetall(active(feed)).items()}
    for entry in files.values():
        for name in ("started", "updated"):
            if name in entry:
                entry[name] = stamp(entry[name])
    out: dict[str, Any] = {"feed": feed, "importing": files}
    if raw.get("poll_error"):
        out["poll_error"] = raw["poll_error"]
    if raw.get("last"):
        out["last"] = json.loads(raw["last"])
    if raw.get("polled"):
        out["polled"] = stamp(raw["polled"])
    totals = {}
    for name, value in redis.hgetall(COUNTERS).items():
        owner, _, what = name.decode().partition(SEP)
        if owner == feed:
            totals[what] = int(value)
    out["totals"] = totals
    return out
