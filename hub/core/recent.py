"""The last hour in one-minute buckets: vendor calls per connector and status, for the console's
overview (Prometheus keeps the long history; the console needs "calls and errors in the last
hour" without one). A bucket is a hash `hub:recent:<minute>` that expires after two hours."""
from __future__ import annotations

import time
from typing import Any

from hub.core import keys

KEY = keys.RECENT_CALLS
KEEP = 2 * 3600
SEP = "\t"


def minute(now: float | None = None) -> int:
    return int((now if now is not None else time.time()) // 60)


def add_call(pipe: Any, connector: str, status: str, now: float | None = None) -> None:
    """Queue on `pipe` one vendor call (status: the HTTP status, or "error" when none came back)."""
    key = KEY.format(minute(now))
    pipe.hincrby(key, f"{connector}{SEP}{status}", 1)
    pipe.expire(key, KEEP)


def is_error(status: str) -> bool:
    return status == "error" or status[:1] in ("4", "5")


def last_hour(redis: Any, now: float | None = None) -> dict[str, dict[str, int]]:
    """connector -> {"calls", "errors", "by_minute": [calls per minute, oldest first],
    "errors_by_minute"} over 60 minutes."""
    end = minute(now)
    minutes = list(range(end - 59, end + 1))
    pipe = redis.pipeline(transaction=False)
    for m in minutes:
        pipe.hgetall(KEY.format(m))
    out: dict[str, dict[str, Any]] = {}
    for index, bucket in enumerate(pipe.execute()):
        for raw, count in bucket.items():
            connector, status = raw.decode().split(SEP, 1)
            entry = out.setdefault(connector, {"calls": 0, "errors": 0, "by_minute": [0] * len(minutes),
                                               "errors_by_minute": [0] * len(minutes)})
            entry["calls"] += int(count)
            entry["by_minute"][index] += int(count)
            if is_error(status):
                entry["errors"] += int(count)
                entry["errors_by_minute"][index] += int(count)
    return out
