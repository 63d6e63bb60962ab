"""A Redis lease with a fencing token: one holder at a time, and a holder that lost it can tell.

The flush of each connector and the hub's scheduler run under one. A holder gets a fresh token
(a per-lease counter, so tokens only grow) and renews the lease by presenting it; once the lease
expired or another holder took it, every check with the old token fails. Each step is one Lua
script, so "is it still mine" and "extend it" can never interleave with another holder.
"""
from __future__ import annotations

import os
import socket
from typing import Any
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

    def __init__(self, redis: Any, name: str, ttl: float) -> None:
        self.redis = redis
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
        taken, value = self.redis.eval(_ACQUIRE, 2, self.key, keys.FENCE.format(self.name), self.ttl_ms, self.owner())
        if taken:
            self.token = value.decode() if isinstance(value, bytes) else str(value)
            return True
        self.waiting_ms = max(int(value), 0)
        return False

    def renew(self) -> bool:
        """Still the holder? Extends the lease when so. The check and the extension are one step."""
        if self.token is None:
            return False
        return bool(self.redis.eval(_RENEW, 1, self.key, self.token, self.ttl_ms))

    def release(self) -> None:
        if self.token is not None:
            self.redis.eval(_RELEASE, 1, self.key, self.token)
            self.token = None

    def held_by_anyone(self) -> bool:
        return bool(self.redis.exists(self.key))

    def fence(self) -> int:
        """The token's number: later holders always have larger ones."""
        return int(self.token.split(" ", 1)[0]) if self.token else 0
