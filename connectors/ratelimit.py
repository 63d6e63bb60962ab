"""A sliding-window rate limiter shared through Redis, so every worker respects one budget.

Each bucket holds one or more (count, period) limits, e.g. Klaviyo's burst 75/s and steady
750/min. A request is admitted only when every limit has room in its last `period` seconds, so
no fixed window a vendor may count in can ever see more than `count` requests.

Longer budgets (a period over a second, 100 calls or more) are also paced: a tenth of the budget
may go at once, then calls are spaced evenly at period / (count - that burst), so a busy
connector spreads its calls across the minute instead of spending the budget in a burst and then
waiting most of a minute for the window to clear. The spacing keeps the sliding window from
ever filling, at the price of using at most nine tenths of the budget when busy for long.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

# ARGV: (count, period) per key, the member to add, then the time ('' for the server's clock).
_ACQUIRE = """
local t = tonumber(ARGV[#ARGV])
if not t then
  local now = redis.call('TIME')
  t = tonumber(now[1]) + tonumber(now[2]) / 1000000
end
local wait = 0
local n = #KEYS
for i, key in ipairs(KEYS) do
  local count = tonumber(ARGV[4 * i - 3])
  local period = tonumber(ARGV[4 * i - 2])
  local spacing = tonumber(ARGV[4 * i - 1])
  local tolerance = tonumber(ARGV[4 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', t - period)
  if redis.call('ZCARD', key) >= count then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local w = tonumber(oldest[2]) + period - t
    if w > wait then wait = w end
  end
  if spacing > 0 then
    -- paced: the theoretical arrival time of the next call may run ahead of now by `tolerance`
    local tat = tonumber(redis.call('GET', key .. ':tat') or t)
    if tat < t then tat = t end
    local w = tat - tolerance - t
    if w > wait then wait = w end
  end
end
if wait > 0 then return tostring(wait) end
local member = ARGV[#ARGV - 1]
for i, key in ipairs(KEYS) do
  local period = tonumber(ARGV[4 * i - 2])
  local spacing = tonumber(ARGV[4 * i - 1])
  redis.call('ZADD', key, t, member)
  redis.call('EXPIRE', key, math.ceil(period) + 1)
  if spacing > 0 then
    local tat = tonumber(redis.call('GET', key .. ':tat') or t)
    if tat < t then tat = t end
    redis.call('SET', key .. ':tat', tostring(tat + spacing), 'EX', math.ceil(period) + 1)
  end
end
return '0'
"""

Limit = tuple[int, float]


@dataclass(frozen=True)
class Budget:
    """One rate-limit bucket, declared once per connector: the limits the vendor publishes, and
    the limits the connector obeys when it keeps a margin below them (with the reason). The
    connector's limiter and the benchmark's floor both read `obeyed`; the sandbox keeps its own
    copy of the published figures and a test checks the two agree."""

    published: tuple[Limit, ...]
    source: str
    margin: tuple[Limit, ...] | None = None      # None: the published figures are obeyed as they are
    reason: str = ""

    def __post_init__(self) -> None:
        if self.margin is not None:
            if not self.reason:
                raise ValueError("a margin below the published limits needs its reason")
            if len(self.margin) != len(self.published) or any(
                    own[1] != pub[1] or own[0] > pub[0] for own, pub in zip(self.margin, self.published)):
                raise ValueError(f"margin {self.margin} is not at or below the published {self.published}")

    @property
    def obeyed(self) -> tuple[Limit, ...]:
        return self.margin if self.margin is not None else self.published


RateLimits = Mapping[str, Budget]

PACED_MIN_COUNT = 100       # budgets smaller than this (e.g. 60 a minute) are not paced
PACED_BURST = 0.1           # the share of a paced budget that may go at once


def pacing(count: int, period: float) -> tuple[float, float]:
    """(spacing, tolerance) in seconds for one limit; (0, 0) when it is not paced."""
    if period <= 1.0 or count < PACED_MIN_COUNT:
        return 0.0, 0.0
    burst = max(1, int(count * PACED_BURST))
    spacing = period / (count - burst)
    return spacing, spacing * (burst - 1)


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
            args += [count, period, *pacing(count, period)]
        args += [uuid.uuid4().hex, "" if self.clock is None else repr(self.clock())]
        return float(self._script(keys=[key for key, _, _ in pairs], args=args))
