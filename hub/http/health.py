"""Liveness and readiness."""
from __future__ import annotations

from flask import jsonify
from flask_smorest import Blueprint

from hub.core.admission import over_high_water
from hub.http.errors import error_response
from hub.http.openapi import STRINGS, declare, obj, t
from hub.core import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@declare("The process is up.", (200, "Up.", obj(status=t("string", enum=["ok"]))), redis=False)
def check_liveness():  # type: ignore[no-untyped-def]
    return jsonify({"status": "ok"})


@bp.get("/readyz")
@declare("The hub can reach Redis.", (200, "Ready.", obj(status=t("string"), connectors=STRINGS)),
    errors={503: "Redis cannot be reached (code not_ready)."})
def check_readiness():  # type: ignore[no-untyped-def]
    try:
        core = services.current()
        core.redis.ping()
        over = over_high_water(core.redis, core.config)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return error_response(503, "not_ready", f"redis unreachable: {type(exc).__name__}")
    if over:
        return error_response(503, "store_full", f"redis memory above the high-water mark ({over[0]} of "
                              f"{over[1]} bytes): ingest answers 503 until it drains")
    return jsonify({"status": "ready", "connectors": core.queues.connectors})
