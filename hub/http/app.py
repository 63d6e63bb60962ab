"""Referral Sync Hub: the Flask app factory, the HTTP adapter over the core services.

The factory has no side effects: it starts no server and writes no environment variable. With no
HUB_REDIS_URL it connects to the data folder's embedded server, which the command that runs the
app makes sure of first (`hub.core.store.redis_for`). The services it serves come from
`hub.core.bootstrap.build_services`, the same function every worker and CLI command uses.
"""
from __future__ import annotations

from typing import Any, Mapping

from flask import Flask
from flask.ctx import AppContext


class ServicesContext(AppContext):
    """Flask's application context that also binds the app's core services (hub.core.services), so
    domain code run by a view, a test or a CLI helper inside `app.app_context()` finds them."""

    def push(self) -> None:
        from hub.core import services

        super().push()
        self._hub_tokens = getattr(self, "_hub_tokens", [])
        self._hub_tokens.append(services.bind(self.app.extensions["services"]))

    def pop(self, *args: Any) -> None:
        from hub.core import services

        services.unbind(self._hub_tokens.pop())
        super().pop(*args)


class Hub(Flask):
    """The hub's Flask app: its application contexts carry the core services."""

    def app_context(self) -> AppContext:
        return ServicesContext(self)


def create_app(overrides: Mapping[str, Any] | None = None, services: Any = None) -> Flask:
    """Build the hub. `overrides` (tests) win over HUB_* environment variables and defaults;
    `services` (built by hub.core.bootstrap.build_services) are used as they are when given."""
    from hub.http import admin as admin_http, audit as audit_http, contacts as contacts_http, endpoints as endpoints_http, errors as errors_http, health, ingest, logs as logs_http, metrics as metrics_http
    from hub.http import openapi, ops as ops_http, tasks as tasks_http, webhooks as webhooks_http
    from hub.core.bootstrap import build_services

    app = Hub(__name__)
    core = services if services is not None else build_services(overrides)
    settings = core.config
    app.config["HUB"] = settings
    app.config["MAX_CONTENT_LENGTH"] = settings["MAX_BODY"] + 1024
    app.extensions.update({"services": core, "redis": core.redis, "ledger": core.ledger,
                           "queues": core.queues, "erasure": core.erasure})
    errors_http.init_app(app)
    logs_http.init_app(app)
    for blueprint in (health.bp, ingest.bp, webhooks_http.bp, admin_http.bp, ops_http.bp, contacts_http.bp,
                      metrics_http.bp, openapi.bp, audit_http.bp, endpoints_http.bp, tasks_http.bp):
        app.register_blueprint(blueprint)
    from hub import console

    console.init_app(app)
    return app
