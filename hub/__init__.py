"""Referral Sync Hub: the Flask app factory, the one place that wires everything."""
from __future__ import annotations

import os
from typing import Any, Mapping

from flask import Flask


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the hub. `overrides` (tests) win over HUB_* environment variables and defaults."""
    from . import admin, config, errors, health, ingest, ledger, queue, store, webhooks
    from . import contacts, logs, metrics, openapi, ops

    app = Flask(__name__)
    settings = config.load(overrides)
    app.config["HUB"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings["MAX_BODY"] + 1024
    if not settings["REDIS_URL"]:
        server = store.ensure_redis_url(settings["DATA_DIR"])
        app.extensions["embedded_redis"] = server
        settings["REDIS_URL"] = os.environ["HUB_REDIS_URL"]
    app.extensions["redis"] = store.connect(settings["REDIS_URL"])
    ledger.init_app(app)
    queue.init_app(app)
    errors.init_app(app)
    logs.init_app(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(ingest.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(contacts.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(openapi.bp)
    return app
