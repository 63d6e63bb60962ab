"""The layout of the hub's data in Redis, versioned, and the steps that bring an older one forward.

`hub:layout` holds the version the data is written in; absent means 1, the layout of every hub
from before the key existed. Each step moves the data one version on and is idempotent, so a run
cut short is finished by the next. Steps run under a Redis lock, and the version is re-read once
it is held, so when several processes start at once one of them migrates and the others find the
work done. A store written by a newer hub is refused: this code would misread it.

No Flask here: `hub migrate` and the start-up of `hub serve`, `hub worker` and `hub up` call it
with a plain Redis client and the erasure key (see docs/operations.md "Upgrades").
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from .erasure import Keyed, load_key

LAYOUT_KEY = "hub:layout"
LOCK_KEY = "hub:layout:lock"
LOCK_SECONDS = 60          # renewed after every page of keys, so only a dead migrator's lock expires
WAIT_SECONDS = 600         # how long a starting process waits for another one's migration
PAGE = 1000
KEYED = re.compile(rb"[0-9a-f]{64}")    # an HMAC-SHA256 hex digest: the current erasure marker name


class LayoutError(RuntimeError):
    """The data cannot be brought forward by this hub (written by a newer one)."""


@dataclass
class Report:
    """What a run found and did: the layout before and after, and counts per kind of change."""

    before: int
    after: int
    changed: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        if self.before == self.after:
            return f"layout {self.after} (current): nothing to migrate"
        done = ", ".join(f"{n} {what}" for what, n in self.changed.items()) or "no keys to change"
        return f"layout {self.before} -> {self.after}: {done}"


def layout(redis: Any) -> int:
    value = redis.get(LAYOUT_KEY)
    return int(value) if value else 1


# A legacy erasure marker `hub:erased:<address>` becomes `hub:erased:<keyed hash>` with the same
# value (when it was erased); the address's entry in `hub:ver`, which the old erasure bumped
# instead of removing, goes too. KEYS: old marker, new marker, hub:ver. ARGV: the address.
_MARKER = """
local when = redis.call('GET', KEYS[1])
if not when then return 0 end
redis.call('SET', KEYS[2], when, 'NX')
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
"""

# A dedupe marker named by an event id that carries an address (Mention Me builds ids from
# emails) is renamed to the keyed form the ledger now looks up, keeping its expiry, so an event
# delivered again after the upgrade is still a duplicate. KEYS: old marker, new marker.
_SEEN = """
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  redis.call('SET', KEYS[2], value, 'PX', ttl, 'NX')
else
  redis.call('SET', KEYS[2], value, 'NX')
end
redis.call('DEL', KEYS[1])
return 1
"""


def pages(redis: Any, pattern: str, lock: Any) -> Iterator[list[bytes]]:
    """The keys matching `pattern`, a page at a time, renewing the lock between pages."""
    cursor = 0
    while True:
        cursor, keys = redis.scan(cursor, match=pattern, count=PAGE)
        if keys:
            yield keys
        lock.reacquire()
        if cursor == 0:
            return


def no_address_in_key_names(redis: Any, mac: Keyed, lock: Any) -> dict[str, int]:
    """Layout 2: erased people only by their keyed hash; dedupe markers of address-bearing
    event ids in their keyed form (hub/erasure.py)."""
    marker, seen = redis.register_script(_MARKER), redis.register_script(_SEEN)
    changed = {"erasure markers keyed": 0, "dedupe markers keyed": 0}
    prefix = len(b"hub:erased:")
    for keys in pages(redis, "hub:erased:*", lock):
        pipe = redis.pipeline(transaction=False)
        legacy = [k for k in keys if not KEYED.fullmatch(k[prefix:])]
        for key in legacy:
            address = key[prefix:].decode()
            marker(keys=[key, f"hub:erased:{mac(address)}", "hub:ver"], args=[address], client=pipe)
        changed["erasure markers keyed"] += sum(pipe.execute()) if legacy else 0
    prefix = len(b"hub:seen:")
    for keys in pages(redis, "hub:seen:*", lock):
        pipe = redis.pipeline(transaction=False)
        legacy = [k for k in keys if b"@" in k and not k[prefix:].startswith(b"#")]
        for key in legacy:
            event_id = key[prefix:].decode()
            seen(keys=[key, "hub:seen:#" + mac("event:" + event_id)], client=pipe)
        changed["dedupe markers keyed"] += sum(pipe.execute()) if legacy else 0
    return changed


# Step n brings layout n - 1 to layout n.
STEPS: dict[int, Callable[[Any, Keyed, Any], dict[str, int]]] = {2: no_address_in_key_names}
CURRENT = max(STEPS)


def refuse_newer(found: int) -> None:
    if found > CURRENT:
        raise LayoutError(f"the data in Redis is in layout {found}, written by a newer hub; this hub "
                          f"reads layout {CURRENT} at most: run the newer version")


def migrate(redis: Any, mac: Keyed) -> Report:
    """Bring the data to the CURRENT layout (no-op when it is there already)."""
    found = layout(redis)
    refuse_newer(found)
    if found == CURRENT:
        return Report(found, found)
    lock = redis.lock(LOCK_KEY, timeout=LOCK_SECONDS, blocking_timeout=WAIT_SECONDS, thread_local=False)
    if not lock.acquire():
        raise LayoutError(f"another hub process has held the migration lock ({LOCK_KEY}) for "
                          f"{WAIT_SECONDS} s; try again when it has finished")
    try:
        found = layout(redis)       # another process may have migrated while this one waited
        refuse_newer(found)
        report = Report(found, found)
        for version in range(found + 1, CURRENT + 1):
            report.changed.update(STEPS[version](redis, mac, lock))
            redis.set(LAYOUT_KEY, version)
            report.after = version
        return report
    finally:
        lock.release()


def bring_forward(config: dict[str, Any], url: str) -> Report:
    """The start-up call: migrate the data at `url` with the hub's erasure key."""
    from .store import connect

    client = connect(url)
    try:
        return migrate(client, Keyed(load_key(config)))
    finally:
        client.close()
