"""HTTP: GET /metrics, the Prometheus text of the counters hub.core.metrics keeps and of the backlogs
read from the queues, the dirty sets and the event feed."""
from __future__ import annotations

from flask import Response
from flask_smorest import Blueprint

from hub.http.openapi import declare
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from hub.core import services
import time
from typing import Any, Iterator
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from hub.core.keys import METRIC_AUDIT as AUDIT, METRIC_AUDIT_RUNS as AUDIT_RUNS, METRIC_BACKOFFS as BACKOFFS  # noqa: E402
from hub.core.keys import METRIC_CALLS as CALLS, METRIC_CONTACTS as CONTACTS, METRIC_EVENTS as EVENTS  # noqa: E402
from hub.core.keys import METRIC_FEEDS as FEEDS, METRIC_LATENCY as LATENCY, METRIC_SWEEPS as SWEEPS  # noqa: E402
from hub.core.metrics import BUCKETS, _hash
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from hub.core.feed import metric_families
from hub.core.ledger import dirty_key, erase_key
from hub.core.queue import get_queues
from hub.core.sync import backing_off_until, overdue, paused


bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
@declare(ok=(200, "Prometheus text exposition format.", "metrics"))
def show_metrics() -> Response:
    """Prometheus text format. Counts and backlogs only: no personal data, so no token."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(services.current().redis,  # type: ignore[arg-type]
                                   services.current().queues.connectors))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


class HubCollector:
    """Renders the Redis counters and reads the gauges at scrape time."""

    def __init__(self, redis: Any, connectors: list[str]) -> None:
        self.redis = redis
        self.connectors = connectors

    def collect(self) -> Iterator[Any]:
        yield from self.counters()
        yield self.latency()
        yield from self.gauges()
        yield from metric_families(self.redis)
        from hub.core import admission

        yield from admission.metric_families(self.redis, services.current().config)

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
