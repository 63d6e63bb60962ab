"""HTTP: GET /metrics, the Prometheus text of hub.metrics.HubCollector."""
from __future__ import annotations

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from hub import services
from .metrics import HubCollector


bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics() -> Response:
    """Prometheus text format. Counts and backlogs only: no personal data, so no token."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HubCollector(services.current().redis,  # type: ignore[arg-type]
                                   services.current().queues.connectors))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
