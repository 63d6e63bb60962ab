"""Referral Sync Hub: the Flask app factory, the one place that wires everything.

The factory has no side effects: it starts no server and writes no environment variable. With no
HUB_REDIS_URL it connects to the data folder's embedded server, which the command that runs the
app makes sure of first (`hub.store.redis_for`).
"""
from __future__ import annotations

from typing import Any, Mapping

from flask import Flask


def create_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the hub. `overrides` (tests) win over HUB_* environment variables and defaults."""
    from . import admin, config, errors, health, ingest, ledger, queue, store, webhooks
    from . import audit, contacts, endpoints, jobs, logs, metrics, openapi, ops

    app = Flask(__name__)
    settings = config.load(overrides)
    app.config["HUB"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings["MAX_BODY"] + 1024
    settings["REDIS_URL"] = store.url_for(settings)
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
    app.register_blueprint(audit.bp)
    app.register_blueprint(endpoints.bp)
    app.register_blueprint(jobs.bp)
    from . import console

    console.init_app(app)
    return app
