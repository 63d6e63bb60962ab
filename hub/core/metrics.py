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
from typing import Any, Iterable

import requests
from redis.exceptions import RedisError

from hub.core.keys import METRIC_AUDIT as AUDIT, METRIC_AUDIT_RUNS as AUDIT_RUNS  # noqa: F401 - hub.core.audit counts here
from hub.core.keys import METRIC_BACKOFFS as BACKOFFS, METRIC_CALLS as CALLS, METRIC_CONTACTS as CONTACTS
from hub.core.keys import METRIC_EVENTS as EVENTS, METRIC_FEEDS as FEEDS  # noqa: F401 - hub.core.feeds counts here
from hub.core.keys import METRIC_LATENCY as LATENCY, METRIC_SEP, METRIC_SWEEPS as SWEEPS
from hub.core.recent import add_call

log = logging.getLogger("hub.metrics")
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, float("inf"))
SEP = METRIC_SEP


def field(*labels: Any) -> str:
    return SEP.join(str(label) for label in labels)


def _write(redis: Any, ops: Iterable[tuple[str, str, float]]) -> None:
    """Counting must never break the work it counts: Redis errors are logged and dropped."""
    try:
        pipe = redis.pipeline(transaction=False)
        queue(pipe, ops)
        pipe.execute()
    except RedisError as exc:
        log.warning("metrics not recorded: %s", type(exc).__name__)


def add(redis: Any, ops: Iterable[tuple[str, str, float]]) -> None:
    """Add to counters kept elsewhere (e.g. hub.core.audit's), with the same never-break rule."""
    _write(redis, ops)


def count_rejected(redis: Any, source: str, count: int, outcome: str = "invalid") -> None:
    """Events refused before the ledger (invalid, unauthorised, unknown type)."""
    if count:
        _write(redis, [(EVENTS, field("unknown", source, outcome), count)])


def count_call(redis: Any, connector: str, status: str) -> None:
    try:
        pipe = redis.pipeline(transaction=False)
        queue_call(pipe, connector, status)
        pipe.execute()
    except RedisError as exc:
        log.warning("metrics not recorded: %s", type(exc).__name__)


def queue_call(pipe: Any, connector: str, status: str, at: float | None = None) -> None:
    """Count one vendor call answered with `status` (made at `at`, default now) on a pipeline the
    caller sends with other work."""
    pipe.hincrby(CALLS, field(connector, status), 1)
    add_call(pipe, connector, status, at)       # the console's last hour (hub.core.recent)


def push_ops(connector: str, seconds: float, landed: int, failed: int) -> list[tuple[str, str, float]]:
    """One connector.push: its latency, and how many contacts landed or failed."""
    ops: list[tuple[str, str, float]] = [(LATENCY, field(connector, "sum"), float(seconds)),
                                        (LATENCY, field(connector, "count"), 1)]
    ops += [(LATENCY, field(connector, le), 1) for le in BUCKETS if seconds <= le]
    ops += [(CONTACTS, field(connector, outcome), n) for outcome, n in (("landed", landed), ("failed", failed)) if n]
    return ops


def queue(pipe: Any, ops: Iterable[tuple[str, str, float]]) -> None:
    """Counters added on a pipeline the caller sends with other work."""
    for key, name, amount in ops:
        if isinstance(amount, int):
            pipe.hincrby(key, name, amount)
        else:
            pipe.hincrbyfloat(key, name, amount)


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
            self.count("error")
            raise
        self.count(str(response.status_code))
        return response

    def count(self, status: str) -> None:
        count_call(self.redis, self.connector, status)


def _hash(redis: Any, key: str) -> dict[tuple[str, ...], float]:
    return {tuple(k.decode().split(SEP)): float(v) for k, v in redis.hgetall(key).items()}
