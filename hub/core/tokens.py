"""The Redis home of the vendors' access tokens, shared by every flush job and worker host.

Connectors encrypt what they store (connectors/tokens.py): the values here are opaque bytes.
"""
from __future__ import annotations

import math
from typing import Any

from hub.core import keys

# Forget the token only while it is the one the caller was refused with: another job may have
# put a fresh one there since.
_DROP = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisTokenStore:
    """get / put / drop of one connector's encrypted token under keys.TOKEN."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._drop = redis.register_script(_DROP)

    def get(self, name: str) -> bytes | None:
        value = self.redis.get(keys.TOKEN.format(name))
        return value.encode() if isinstance(value, str) else value

    def put(self, name: str, value: bytes, ttl: float) -> None:
        self.redis.set(keys.TOKEN.format(name), value, px=max(1, math.floor(ttl * 1000)))

    def drop(self, name: str, value: bytes) -> None:
        self._drop(keys=[keys.TOKEN.format(name)], args=[value])
