"""Liveness and readiness."""
from __future__ import annotations

from flask import Blueprint, jsonify

from .errors_http import error_response
from hub import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():  # type: ignore[no-untyped-def]
    try:
        services.current().redis.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return error_response(503, "not_ready", f"redis unreachable: {type(exc).__name__}")
    return jsonify({"status": "ready", "connectors": services.current().queues.connectors})
