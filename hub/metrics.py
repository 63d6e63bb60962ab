"""Prometheus metrics, kept in Redis so every hub process adds to the same counters.

Why Redis and not prometheus_client's multiprocess mode: the hub runs as gunicorn workers *and*
forking RQ workers, and RQ forks a fresh work horse for every job. Multiprocess mode writes one
set of mmap files per PID into a shared directory, so each job would leave new files behind
(unbounded growth, cleaned only with `mark_process_dead` hooks RQ does not call), and the
directory would have to be shared and wiped on every deploy. The hub already has one Redis that
every process reaches; a counter there is one pipelined HINCRBY per vendor call or ingest
request (~0.05 ms), survives process restarts, and /metrics on any gunicorn worker sees the
whole hub. Gauges (queue depth, dirty backlog, failed syncs, pauses) are read from the same
Redis at scrape time, so they can never drift from the truth.

Counters live in a few hashes (`hub:m:*`), one field per label set, joined with a tab.
prometheus_client only renders them (a custom collector on a private registry).
"""
from __future__ import annotations


import logging
import time
from typing import Any, Iterable, Iterator

import requests
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from redis.exceptions import RedisError
from hub import services

log = logging.getLogger("hub.metrics")

from .keys import METRIC_AUDIT as AUDIT, METRIC_AUDIT_RUNS as AUDIT_RUNS, METRIC_BACKOFFS as BACKOFFS  # noqa: E402
from .keys import METRIC_CALLS as CALLS, METRIC_CONTACTS as CONTACTS, METRIC_EVENTS as EVENTS  # noqa: E402
from .keys import METRIC_FEEDS as FEEDS, METRIC_LATENCY as LATENCY, METRIC_SWEEPS as SWEEPS  # noqa: E402
from .keys import METRIC_SEP  # noqa: E402
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, float("inf"))
SEP = METRIC_SEP


def field(*labels: Any) -> str:
    return SEP.join(str(label) for label in labels)


def _write(redis: Any, ops: Iterable[tuple[str, str, float]]) -> None:
    """Counting must never break the work it counts: Redis errors are logged and dropped."""
    try:
        pipe = redis.pipeline(transaction=False)
        for key, name, amount in ops:
            if isinstance(amount, int):
                pipe.hincrby(key, name, amount)
            else:
                pipe.hincrbyfloat(key, name, amount)
        pipe.execute()
    except RedisError as exc:
        log.warning("metrics not recorded: %s", type(exc).__name__)


def add(redis: Any, ops: Iterable[tuple[str, str, float]]) -> None:
    """Add to counters kept elsewhere (e.g. hub.audit's), with the same never-break rule."""
    _write(redis, ops)


def count_rejected(redis: Any, source: str, count: int, outcome: str = "invalid") -> None:
    """Events refused before the ledger (invalid, unauthorised, unknown type)."""
    if count:
        _write(redis, [(EVENTS, field("unknown", source, outcome), count)])


def count_call(redis: Any, connector: str, status: str) -> None:
    _write(redis, [(CALLS, field(connector, status), 1)])


def observe_push(redis: Any, connector: str, seconds: float, landed: int, failed: int) -> None:
    """One connector.push: its latency, and how many contacts landed or failed."""
    ops: list[tuple[str, str, float]] = [(LATENCY, field(connector, "sum"), float(seconds)),
                                        (LATENCY, field(connector, "count"), 1)]
    ops += [(LATENCY, field(connector, le), 1) for le in BUCKETS if seconds <= le]
    ops += [(CONTACTS, field(connector, outcome), n) for outcome, n in (("landed", landed), ("failed", failed)) if n]
    _write(redis, ops)


def count_backoff(redis: Any, connector: str, reason: str) -> None:
    _write(redis, [(BACKOFFS, field(connector, reason), 1)])


def count_sweep(redis: Any, connector: str) -> None:
    _write(redis, [(SWEEPS, field(connector), 1)])


class CountingSession(requests.Session):
    """The session the hub gives a connector: counts each vendor call by HTTP status
    (`error` when no answer came back: timeout, refused, reset)."""

    def __init__(self, redis: Any, connector: str) -> None:
        super().__init__()
        self.redis = redis
        self.connector = connector

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        try:
            response = super().request(method, url, *args, **kwargs)
        except requests.RequestException:
            count_call(self.redis, self.connector, "error")
            raise
        count_call(self.redis, self.connector, str(response.status_code))
        return response


def _hash(redis: Any, key: str) -> dict[tuple[str, ...], float]:
    return {tuple(k.decode().split(SEP)): float(v) for k, v in redis.hgetall(key).items()}


class HubCollector:
    """Renders the Redis counters and reads the gauges at scrape time."""

    def __init__(self, redis: Any, connectors: list[str]) -> None:
        self.redis = redis
        self.connectors = connectors

    def collect(self) -> Iterator[Any]:
        yield from self.counters()
        yield self.latency()
        yield from self.gauges()
        from .feed import metric_families

        yield from metric_families(self.redis)

    def counters(self) -> Iterator[Any]:
        specs = ((EVENTS, "hub_events", "Referral events received, by type, source and outcome.",
                  ["type", "source", "outcome"]),
                 (CALLS, "hub_vendor_calls", "HTTP calls to vendor APIs, by connector and status.",
                  ["connector", "status"]),
                 (CONTACTS, "hub_contacts_pushed", "Contacts pushed to a vendor, by outcome.",
                  ["connector", "outcome"]),
                 (BACKOFFS, "hub_backoffs", "Flushes put off after a retriable vendor error.",
                  ["connector", "reason"]),
                 (SWEEPS, "hub_sweep_flushes", "Flushes the periodic sweep queued for stranded contacts "
                  "(each one is a path that left no job: expected 0).", ["connector"]),
                 (FEEDS, "hub_feed", "CSV feed rows and files, by feed and what happened to them.",
                  ["feed", "what"]),
                 (AUDIT, "hub_audit_contacts", "Contacts the anti-entropy audit read back, by outcome: "
                  "checked, in_step, out_of_step, repair_queued, repaired (the repairing push landed).",
                  ["connector", "outcome"]),
                 (AUDIT_RUNS, "hub_audit_runs", "Anti-entropy audit runs: completed, stopped early "
                  "(budget or rate share spent, vendor error), skipped (paused, backing off, no read API).",
                  ["connector", "outcome"]))
        for key, name, doc, labels in specs:
            family = CounterMetricFamily(name, doc, labels=labels)
            for values, count in sorted(_hash(self.redis, key).items()):
                if len(values) == len(labels):
                    family.add_metric(list(values), count)
            yield family

    def latency(self) -> Any:
        family = HistogramMetricFamily("hub_push_latency_seconds",
                                       "Time one connector push (a batch of contacts) takes.", labels=["connector"])
        raw = _hash(self.redis, LATENCY)
        for connector in sorted({k[0] for k in raw}):
            buckets = [(_le(le), raw.get((connector, str(le)), 0.0)) for le in BUCKETS]
            family.add_metric([connector], buckets, raw.get((connector, "sum"), 0.0))
        return family

    def gauges(self) -> Iterator[Any]:
        from rq.registry import FailedJobRegistry, ScheduledJobRegistry

        from .ledger import dirty_key, erase_key
        from .queue import get_queues
        from .sync import backing_off_until, overdue, paused

        specs = {"hub_queue_depth": "Jobs waiting in the connector's RQ queue.",
                 "hub_scheduled_retries": "Flushes scheduled for later (back-off) for the connector.",
                 "hub_dirty_contacts": "Contacts whose current state the connector has not received yet.",
                 "hub_dirty_oldest_seconds": "How long the most overdue dirty contact has waited past its due time.",
                 "hub_dirty_overdue_contacts": "Dirty contacts past due by more than HUB_SWEEP_GRACE on a connector "
                                               "neither paused nor backing off (near 0: every flush leaves a job).",
                 "hub_erase_pending": "Erasures waiting to be sent to the connector.",
                 "hub_failed_syncs": "Failed syncs (RQ failed jobs) for the connector.",
                 "hub_connector_paused": "1 when the connector is paused (by ops or after rejected credentials)."}
        families = {name: GaugeMetricFamily(name, doc, labels=["connector"]) for name, doc in specs.items()}
        now, grace = time.time(), services.current().config["SWEEP_GRACE"]
        for connector in self.connectors:
            waiting = paused(connector) or backing_off_until(connector)
            queue = get_queues().get(connector)
            oldest = self.redis.zrange(dirty_key(connector), 0, 0, withscores=True)
            values = {"hub_queue_depth": queue.count,
                      "hub_scheduled_retries": ScheduledJobRegistry(queue=queue).count,
                      "hub_dirty_contacts": self.redis.zcard(dirty_key(connector)),
                      "hub_dirty_oldest_seconds": max(0.0, now - oldest[0][1]) if oldest else 0.0,
                      "hub_dirty_overdue_contacts": 0 if waiting else overdue(connector, grace),
                      "hub_erase_pending": self.redis.zcard(erase_key(connector)),
                      "hub_failed_syncs": FailedJobRegistry(queue=queue).count,
                      "hub_connector_paused": 1 if paused(connector) else 0}
            for name, value in values.items():
                families[name].add_metric([connector], float(value))
        yield from families.values()


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else str(bound)
