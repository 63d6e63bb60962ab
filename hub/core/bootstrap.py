"""`build_services(config)`: the one place that wires the core, for every adapter alike.

The web app, each RQ worker, the scheduler, the feed process and the CLI commands build their
services here; none of them builds another's. No server is started and no environment variable
is written: the embedded Redis, when there is no HUB_REDIS_URL, is made sure of by the command
that runs the process (`hub.core.store.redis_for`), before it builds the services.
"""
from __future__ import annotations

from typing import Any, Mapping

from hub.core import config as settings_module
from hub.core import store
from hub.core.erasure import Keyed, load_key
from hub.core.forget import forget
from hub.core.ledger import Ledger
from hub.core.queue import Queues, enabled_connectors
from hub.core.services import Services


def build_services(overrides: Mapping[str, Any] | None = None) -> Services:
    """The hub's services: settings from defaults, HUB_* environment variables, then `overrides`."""
    settings = settings_module.load(overrides)
    settings["REDIS_URL"] = store.url_for(settings)
    redis = store.connect(settings["REDIS_URL"])
    erasure = Keyed(load_key(settings))
    queues = Queues(redis, enabled_connectors(settings), settings)
    ledger = Ledger(redis, settings, erasure=erasure, forget=forget)
    return Services(config=settings, redis=redis, ledger=ledger, queues=queues, erasure=erasure)
