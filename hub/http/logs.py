"""HTTP: request ids in and out, one access line per request, the request id on every record."""
from __future__ import annotations

import logging
import time
import uuid
from typing import Any
from flask import Flask, g, has_request_context, request
from hub.core.logs import HANDLER_NAME, HEADER, ID_SOURCES, SAFE_ID, setup


def note(**fields: Any) -> None:
    """Add fields (event ids, counts) to this request's access line."""
    if has_request_context():
        g.setdefault("log_fields", {}).update(fields)


def request_ids() -> dict[str, str]:
    return {"request_id": g.request_id} if has_request_context() and "request_id" in g else {}


def init_app(app: Flask) -> None:
    """Request ids in and out, one access line per request."""
    from flask.logging import default_handler

    if request_ids not in ID_SOURCES:
        ID_SOURCES.append(request_ids)

    if not any(h.get_name() == HANDLER_NAME for h in logging.getLogger("hub").handlers):
        setup()
    logging.getLogger("hub").removeHandler(default_handler)

    @app.before_request
    def start() -> None:
        offered = request.headers.get(HEADER, "")
        g.request_id = offered if SAFE_ID.match(offered) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def finish(response: Any) -> Any:
        response.headers[HEADER] = g.get("request_id", "")
        route = request.url_rule.rule if request.url_rule else "<unmatched>"
        fields = {"method": request.method, "route": route, "status": response.status_code,
                  "duration_ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 1),
                  **g.get("log_fields", {})}
        level = logging.WARNING if response.status_code >= 500 else logging.INFO
        if route not in ("/healthz", "/readyz", "/metrics"):
            app.logger.log(level, "request", extra=fields)
        return response
