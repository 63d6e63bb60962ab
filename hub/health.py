"""Liveness and readiness."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from .admission import over_high_water
from .errors import error_response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():  # type: ignore[no-untyped-def]
    try:
        current_app.extensions["redis"].ping()
        over = over_high_water(current_app.extensions["redis"], current_app.config["HUB"])
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return error_response(503, "not_ready", f"redis unreachable: {type(exc).__name__}")
    if over:
        return error_response(503, "store_full", f"redis memory above the high-water mark ({over[0]} of "
                              f"{over[1]} bytes): ingest answers 503 until it drains")
    return jsonify({"status": "ready", "connectors": current_app.extensions["queues"].connectors})
