"""What ingest checks around the ledger step: room in Redis before, durability after.

Before (`admit`): when Redis's used memory is past the high-water mark (HUB_MEMORY_HIGH_WATER: a
share of Redis's maxmemory when at most 1, else bytes), the request is refused with 503 and
Retry-After before anything is written, so a sender backs off well before Redis itself starts
refusing writes (noeviction) halfway through a batch. INFO memory is read at most once per
HUB_MEMORY_CHECK_INTERVAL seconds per process, so the check costs nothing per request.

After (`settle`): with HUB_INGEST_MIN_REPLICAS = N > 0 the 202 waits until N replicas hold
everything the primary had when the request's writes were done (Redis WAIT, at most
HUB_INGEST_REPLICA_TIMEOUT_MS); short of that the answer is 503 with Retry-After, never 202.
WAIT counts the writes of the connection it is sent on, and a pooled client may have sent the
ledger step on another one, so `settle` writes a marker and WAITs on one connection in one round
trip: replication is one ordered stream, so a replica that has the marker has every write the
primary made before it, this request's included. A retry whose events turn out to be duplicates
takes the same path, so its 202 too means "on the replicas". HUB_INGEST_MIN_REPLICAS left empty
means 1 for a Sentinel deployment (a failover is automatic there, and would lose the last
acknowledged events otherwise) and 0 for a single Redis.
"""
from __future__ import annotations

import time
from typing import Any, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from hub.core import keys, metrics, services
from hub.core.errors import APIError
from hub.core.store import SENTINEL_SCHEME

REFUSED = keys.METRIC_REFUSED   # reason -> ingest requests answered 503 before or after the ledger
MARKER = keys.DURABLE           # written before each WAIT (see the module docstring)
_memory: dict[int, tuple[float, int, int]] = {}   # id(client) -> (read at, used, maxmemory)


def min_replicas(config: Mapping[str, Any]) -> int:
    value = str(config.get("INGEST_MIN_REPLICAS", "")).strip()
    if value == "":
        return 1 if str(config.get("REDIS_URL", "")).startswith(SENTINEL_SCHEME + "://") else 0
    return int(value)


def memory(redis: Any, config: Mapping[str, Any], fresh: bool = False) -> tuple[int, int]:
    """(used_memory, maxmemory) in bytes, from a reading at most MEMORY_CHECK_INTERVAL old."""
    now = time.monotonic()
    cached = _memory.get(id(redis))
    if fresh or cached is None or now - cached[0] >= float(config["MEMORY_CHECK_INTERVAL"]):
        info = redis.info("memory")
        cached = (now, int(info.get("used_memory", 0)), int(info.get("maxmemory", 0)))
        _memory[id(redis)] = cached
    return cached[1], cached[2]


def high_water(config: Mapping[str, Any], maxmemory: int) -> int:
    """The mark in bytes; 0 when there is none (turned off, or a share of an unlimited Redis)."""
    mark = float(config["MEMORY_HIGH_WATER"])
    if mark <= 0:
        return 0
    if mark <= 1:
        return int(mark * maxmemory)
    return int(mark)


def over_high_water(redis: Any, config: Mapping[str, Any], fresh: bool = False) -> tuple[int, int] | None:
    """(used, mark) when Redis is past the high-water mark, else None."""
    used, maxmemory = memory(redis, config, fresh)
    mark = high_water(config, maxmemory)
    return (used, mark) if mark and used >= mark else None


def retry_after(config: Mapping[str, Any]) -> dict[str, str]:
    return {"Retry-After": str(int(config["INGEST_RETRY_AFTER"]))}


def admit() -> None:
    """Refuse the request (503, nothing written) while Redis is past the high-water mark."""
    redis, config = services.current().redis, services.current().config
    over = over_high_water(redis, config)
    if over:
        metrics.add(redis, [(REFUSED, "memory", 1)])
        raise APIError(503, "store_full", f"the hub's store is above its memory high-water mark "
                       f"({over[0]} of {over[1]} bytes); nothing was accepted, retry later",
                       headers=retry_after(config))


def settle() -> None:
    """Return once the configured number of replicas hold this request's writes; 503 otherwise."""
    redis, config = services.current().redis, services.current().config
    wanted = min_replicas(config)
    if wanted <= 0:
        return
    pipe = redis.pipeline(transaction=False)
    pipe.incr(MARKER)
    pipe.execute_command("WAIT", wanted, int(config["INGEST_REPLICA_TIMEOUT_MS"]))
    _, acked = pipe.execute()
    if int(acked) < wanted:
        metrics.add(redis, [(REFUSED, "replicas", 1)])
        raise APIError(503, "not_durable", f"the events reached {int(acked)} of the {wanted} Redis replicas "
                       f"required within {int(config['INGEST_REPLICA_TIMEOUT_MS'])} ms; send them again "
                       "(those already applied count as duplicates)", headers=retry_after(config))


def metric_families(redis: Any, config: Mapping[str, Any]) -> Iterator[Any]:
    refused = CounterMetricFamily("hub_ingest_refused", "Ingest requests answered 503 by the hub itself: "
                                  "memory (Redis past the high-water mark, nothing written), replicas (fewer "
                                  "replicas than HUB_INGEST_MIN_REPLICAS acknowledged in time).", labels=["reason"])
    counts = {k.decode(): int(v) for k, v in redis.hgetall(REFUSED).items()}
    for reason in ("memory", "replicas"):
        refused.add_metric([reason], counts.get(reason, 0))
    yield refused
    used, maxmemory = memory(redis, config, fresh=True)
    yield GaugeMetricFamily("hub_redis_used_memory_bytes", "Redis used_memory.", value=used)
    yield GaugeMetricFamily("hub_redis_memory_high_water_bytes", "The mark past which ingest answers 503 "
                            "(0: no mark).", value=high_water(config, maxmemory))
    yield GaugeMetricFamily("hub_ingest_min_replicas", "Replicas each 202 waits for (HUB_INGEST_MIN_REPLICAS).",
                            value=min_replicas(config))
