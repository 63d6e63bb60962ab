"""Redis memory per referrer after the drain, by key family, and its projection to 10 million.

`used_memory` and `used_memory_dataset` (INFO memory) are read before the first event and after
the drain; the difference over R is the memory a referrer costs (with its two friends: three
contacts). The breakdown walks every key with SCAN, groups it by its prefix as the hub names it
(hub/core/keys.py), and sums `MEMORY USAGE` over a sample of each family
(SAMPLE_PER_FAMILY keys, spread over the scan), scaled to the family's key count.

Families are either the sync path's own (what receiving events and pushing contacts needs) or
optional stores (the console's timelines and contact index, the failed-sync index, the event log
that replay and the outbound feed read, the feed's own stores). Each is projected to 10 million
referrers by how it grows: per person (linear in R), bounded (the event log and its per-contact
index are capped at HUB_EVENT_LOG_MAXLEN entries; metrics and rate-limit buckets do not grow with R),
or by its own TTL (dedupe markers live HUB_DEDUPE_DAYS: the projection assumes every event of the
10 million referrers arrives within that window, the worst case). The per-contact index of the
event log is trimmed to the stream's range only once it holds more than 64 entries, so for people
with a few events each it grows per person although the stream itself is capped.
"""
from __future__ import annotations

from typing import Any

from hub.core import keys
from hub.core.config import DEFAULTS as CONFIG_DEFAULTS

SAMPLE_PER_FAMILY = 300
PROJECT_TO = 10_000_000
LINEAR, BOUNDED, FIXED = "per person", "bounded by the event log's MAXLEN", "does not grow with R"

# (family, how the key starts, sync path or optional, how it grows). First match wins, so the
# longer prefixes come first. A key no family claims is counted as "other <prefix>".
FAMILIES: list[tuple[str, str, bool, str]] = [
    ("contact index", keys.CONTACT_INDEX, False, LINEAR),          # hub:contacts (and :built)
    ("timeline shapes", keys.TIMELINE_SHAPES, False, FIXED),      # field names and lists, shared
    ("timelines", keys.TIMELINE.format(""), False, LINEAR),
    ("failed-sync index", keys.PREFIX + "fx:", False, LINEAR),
    ("event log stream", keys.EVENTS, False, BOUNDED),         # exact key; see `family`
    ("feed stores", keys.PREFIX + "feed:", False, FIXED),
    ("contact hashes", keys.CONTACT_PREFIX, True, LINEAR),    # hub:c:<email>; side sets split in `family`
    ("dirty sets", keys.DIRTY.format(""), True, LINEAR),
    ("erase sets", keys.ERASE.format(""), True, LINEAR),
    ("versions", keys.VERSIONS, True, LINEAR),
    ("dedupe markers", keys.SEEN.format(""), True, LINEAR),
    ("order markers", keys.PREFIX + "order:", True, LINEAR),
    ("pushed fingerprints", keys.PUSHED.format(""), True, LINEAR),   # a store before layout 6; since, in the contact hashes
    ("last push outcome", keys.LAST.format(""), True, LINEAR),
    ("superseded-flush marks", keys.SUSPECT.format(""), True, LINEAR),
    ("vendor jobs", keys.PREFIX + "vjob", True, FIXED),
    ("identities and promo codes", keys.PREFIX + "ident:", True, LINEAR),
    ("rate-limit buckets", keys.RATE_LIMIT, True, FIXED),
    ("metrics", keys.PREFIX + "m:", True, FIXED),
    ("recent calls", keys.RECENT_CALLS.format(""), False, FIXED),
    ("console history", keys.HISTORY.format(""), False, FIXED),
    ("job queue (RQ)", "rq:", True, FIXED),
]
# What follows `hub:c:<email>` in the ledger's side keys (hub/core/ledger.lua).
LOG_INDEX_SUFFIX = ":log"


def family(key: str) -> tuple[str, bool, str]:
    """(family, sync path?, growth) of one key."""
    if key == keys.EVENTS:
        return "event log stream", False, BOUNDED
    for name, prefix, sync, growth in FAMILIES:
        if name == "event log stream":
            continue
        if key.startswith(prefix):
            if name == "contact hashes":
                rest = key[len(prefix):]
                at = rest.find("@")
                tail = rest[rest.find(":", at):] if at >= 0 and ":" in rest[at:] else ""
                if tail == LOG_INDEX_SUFFIX:
                    # trimmed to the stream's range only above 64 entries, which a person with a
                    # handful of events never reaches: it grows per person, not with the stream
                    return "event log index per contact", False, LINEAR
                if tail:
                    return "contact links (friends, credits, orders)", True, LINEAR
            return name, sync, growth
    head = key.split(":", 2)
    return f"other {':'.join(head[:2])}:", True, FIXED


def info(redis: Any) -> dict[str, int]:
    memory = redis.info("memory")
    return {"used_memory": int(memory["used_memory"]), "used_memory_dataset": int(memory["used_memory_dataset"]),
            "keys": int(redis.dbsize())}


def breakdown(redis: Any, sample: int = SAMPLE_PER_FAMILY) -> dict[str, dict[str, Any]]:
    """Per family: keys, sampled keys, estimated bytes (MEMORY USAGE, SAMPLES 0 for exact sizes of
    the sampled keys), sync path or optional, growth. Two passes: count, then sample evenly."""
    counts: dict[str, int] = {}
    meta: dict[str, tuple[bool, str]] = {}
    for raw in redis.scan_iter(count=1000):
        name, sync, growth = family(raw.decode(errors="replace"))
        counts[name] = counts.get(name, 0) + 1
        meta[name] = (sync, growth)
    stride = {name: max(1, n // sample) for name, n in counts.items()}
    seen: dict[str, int] = {}
    sampled: dict[str, list[int]] = {name: [] for name in counts}
    pipe = redis.pipeline(transaction=False)
    order: list[str] = []
    for raw in redis.scan_iter(count=1000):
        name = family(raw.decode(errors="replace"))[0]
        if name not in counts:
            continue            # a key written between the two passes
        seen[name] = seen.get(name, 0) + 1
        if (seen[name] - 1) % stride[name] == 0 and len(sampled[name]) + order.count(name) < sample:
            pipe.memory_usage(raw, samples=0)
            order.append(name)
        if len(order) >= 500:
            for got_name, size in zip(order, pipe.execute()):
                if size is not None:
                    sampled[got_name].append(int(size))
            order = []
    for got_name, size in zip(order, pipe.execute()):
        if size is not None:
            sampled[got_name].append(int(size))
    out = {}
    for name, n in sorted(counts.items(), key=lambda item: -item[1] * mean(sampled[item[0]])):
        sizes = sampled[name]
        out[name] = {"keys": n, "sampled": len(sizes), "bytes": round(mean(sizes) * n),
                     "sync_path": meta[name][0], "growth": meta[name][1]}
    return out


def mean(values: list[int]) -> float:
    return sum(values) / len(values) if values else 0.0


def measure(redis: Any, before: dict[str, int], referrers: int, events_logged: int) -> dict[str, Any]:
    """The report's `redis_memory`: totals, per referrer, by family, and the 10 million projection."""
    after = info(redis)
    families = breakdown(redis)
    per_ref = {name: round(f["bytes"] / referrers, 1) for name, f in families.items()}
    maxlen = int(CONFIG_DEFAULTS.get("EVENT_LOG_MAXLEN", 100_000))
    scale = PROJECT_TO / referrers
    projected = {}
    for name, f in families.items():
        if f["growth"] == LINEAR:
            projected[name] = f["bytes"] * scale
        elif f["growth"] == BOUNDED:
            # the log holds at most MAXLEN entries, whatever R: scale to min(events, MAXLEN)
            grow = min(events_logged * scale, maxlen) / max(min(events_logged, maxlen), 1)
            projected[name] = f["bytes"] * grow
        else:
            projected[name] = f["bytes"]
    sync = sum(f["bytes"] for f in families.values() if f["sync_path"])
    optional = sum(f["bytes"] for f in families.values() if not f["sync_path"])
    sync_10m = sum(projected[n] for n, f in families.items() if f["sync_path"])
    optional_10m = sum(projected[n] for n, f in families.items() if not f["sync_path"])
    grown = after["used_memory"] - before["used_memory"]
    grown_dataset = after["used_memory_dataset"] - before["used_memory_dataset"]
    # What MEMORY USAGE does not see (allocator overhead, the keyspace's own tables) scales with
    # the data: the projection keeps used_memory's ratio to the sampled bytes.
    overhead = grown / max(sync + optional, 1)
    return {
        "measured_at": "after the batch phase's drain (every vendor holds the final state), before any other phase",
        "before": before, "after": after,
        "used_memory_per_referrer": round(grown / referrers, 1),
        "used_memory_dataset_per_referrer": round(grown_dataset / referrers, 1),
        "sampled_bytes_per_referrer": {"sync_path": round(sync / referrers, 1),
                                       "optional_stores": round(optional / referrers, 1)},
        "families": {name: {**f, "bytes_per_referrer": per_ref[name]} for name, f in families.items()},
        "projection_10m": {
            "referrers": PROJECT_TO,
            "sync_path_bytes": round(sync_10m * overhead), "optional_stores_bytes": round(optional_10m * overhead),
            "used_memory_bytes": round(before["used_memory"] + (sync_10m + optional_10m) * overhead),
            "rule": "per-person families x (10M / R); the event log stream capped at "
                    f"{maxlen:,} entries (HUB_EVENT_LOG_MAXLEN); fixed families as measured; all x "
                    f"used_memory growth / sampled bytes ({overhead:.2f}); dedupe markers assume every event "
                    "within the dedupe window"},
        "sample_per_family": SAMPLE_PER_FAMILY,
    }


def gib(value: float) -> str:
    return f"{value / 2**30:,.1f} GiB"
