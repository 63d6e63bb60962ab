"""A Redis lease with a fencing token: one holder at a time, and a holder that lost it can tell.

The flush of each connector and the hub's scheduler run under one. A holder gets a fresh token
(a per-lease counter, so tokens only grow) and renews the lease by presenting it; once the lease
expired or another holder took it, every check with the old token fails. Each step is one Lua
script, so "is it still mine" and "extend it" can never interleave with another holder.

A holder that renewed a moment ago need not ask Redis again (`check`): the lease cannot expire
before a whole TTL after the renewal was sent, and nobody else can take it while it exists, so
for the first quarter of that TTL (`SURE`) the holder knows it still holds it, by its own
monotonic clock. A flush checks before every vendor call; under load, when each round trip waits
behind the ingest's scripts, that is one round trip a call saved. A stall longer than the quarter
(a paused process, a slow call) is caught, since the next check then asks Redis.
"""
from __future__ import annotations

import os
import socket
import time
from typing import Any, Callable
from hub.core import keys

# KEYS: lease, counter. ARGV: ttl ms, owner. -> {1, token} taken, or {0, ms the holder has left}.
_ACQUIRE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return {0, redis.call('PTTL', KEYS[1])} end
local token = redis.call('INCR', KEYS[2]) .. ' ' .. ARGV[2]
redis.call('SET', KEYS[1], token, 'PX', ARGV[1])
return {1, token}
"""
# KEYS: lease. ARGV: token, ttl ms. -> 1 while the token holds the lease (renewed), else 0.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
# KEYS: lease. ARGV: token. Only the holder can let go.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def lease_key(name: str) -> str:
    return keys.LEASE.format(name)


class Lease:
    """One named lease (`hub:lease:<name>`), as seen by one would-be holder."""

    SURE = 0.25     # of the TTL after a renewal was sent, during which the holder knows it holds

    def __init__(self, redis: Any, name: str, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.redis = redis
        self.clock = clock
        self.sure_until = 0.0    # by `clock`: until then the lease is surely still held
        self.name = name
        self.key = lease_key(name)
        self.ttl_ms = max(int(ttl * 1000), 100)
        self.token: str | None = None
        self.waiting_ms = 0      # what the current holder had left when acquire() failed

    @staticmethod
    def owner() -> str:
        return f"{socket.gethostname()}:{os.getpid()}"

    def acquire(self) -> bool:
        """Take the lease if nobody holds it; False (and `waiting_ms` set) when someone does."""
        sent = self.clock()
        taken, value = self.redis.eval(_ACQUIRE, 2, self.key, keys.FENCE.format(self.name), self.ttl_ms, self.owner())
        if taken:
            self.token = value.decode() if isinstance(value, bytes) else str(value)
            self.sure_until = sent + self.ttl_ms / 1000 * self.SURE
            return True
        self.waiting_ms = max(int(value), 0)
        return False

    def renew(self) -> bool:
        """Still the holder? Extends the lease when so. The check and the extension are one step."""
        if self.token is None:
            return False
        sent = self.clock()
        held = bool(self.redis.eval(_RENEW, 1, self.key, self.token, self.ttl_ms))
        self.sure_until = sent + self.ttl_ms / 1000 * self.SURE if held else 0.0
        return held

    def check(self) -> bool:
        """Still the holder? Known without a round trip within `SURE` of the last renewal sent;
        otherwise asked of Redis, renewing the lease when so."""
        if self.token is not None and self.clock() < self.sure_until:
            return True
        return self.renew()

    def release(self) -> None:
        if self.token is not None:
            self.redis.eval(_RELEASE, 1, self.key, self.token)
            self.token = None
            self.sure_until = 0.0

    def held_by_anyone(self) -> bool:
        return bool(self.redis.exists(self.key))

    def fence(self) -> int:
        """The token's number: later holders always have larger ones."""
        return int(self.token.split(" ", 1)[0]) if self.token else 0
