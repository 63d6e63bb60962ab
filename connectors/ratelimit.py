"""A sliding-window rate limiter shared through Redis, so every worker respects one budget.

Each bucket holds one or more (count, period) limits, e.g. Klaviyo's burst 75/s and steady
750/min. A request is admitted only when every limit has room in its last `period` seconds, so
no fixed window a vendor may count in can ever see more than `count` requests.
"""
from __future__ import annotations

import uuid
from typing import Any, Callable, Sequence

# ARGV: (count, period) per key, the member to add, then the time ('' for the server's clock).
_ACQUIRE = """
local t = tonumber(ARGV[#ARGV])
if not t then
  local now = redis.call('TIME')
  t = tonumber(now[1]) + tonumber(now[2]) / 1000000
end
local wait = 0
for i, key in ipairs(KEYS) do
  local count = tonumber(ARGV[2 * i - 1])
  local period = tonumber(ARGV[2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', t - period)
  if redis.call('ZCARD', key) >= count then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local w = tonumber(oldest[2]) + period - t
    if w > wait then wait = w end
  end
end
if wait > 0 then return tostring(wait) end
local member = ARGV[#ARGV - 1]
for i, key in ipairs(KEYS) do
  redis.call('ZADD', key, t, member)
  redis.call('EXPIRE', key, math.ceil(tonumber(ARGV[2 * i])) + 1)
end
return '0'
"""

Limit = tuple[int, float]


class RateLimiter:
    """Admits calls per named bucket; `acquire` returns 0 or the seconds to wait.

    Time is Redis's own clock, one for every worker host; `clock` replaces it (tests)."""

    def __init__(self, redis: Any, prefix: str, clock: Callable[[], float] | None = None) -> None:
        self.redis = redis
        self.prefix = prefix
        self.clock = clock
        self._script = redis.register_script(_ACQUIRE)

    def acquire(self, bucket: str, limits: Sequence[Limit]) -> float:
        """Take one slot in every limit of `bucket`, or return how long until one frees up."""
        return self.acquire_all([(bucket, limits)])

    def acquire_all(self, buckets: Sequence[tuple[str, Sequence[Limit]]]) -> float:
        """One slot in every limit of every bucket at once (all or none), or the wait."""
        pairs = [(f"{self.prefix}:{bucket}:{count}/{period}", count, period)
                 for bucket, limits in buckets for count, period in limits]
        if not pairs:
            return 0.0
        args: list[Any] = []
        for _, count, period in pairs:
            args += [count, period]
        args += [uuid.uuid4().hex, "" if self.clock is None else repr(self.clock())]
        return float(self._script(keys=[key for key, _, _ in pairs], args=args))
