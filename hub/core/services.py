"""The services the hub's domain code works with, and which set the running code uses.

`hub.core.bootstrap.build_services(config)` builds them once per process (a web app, a worker, a CLI
command); the adapter that built them binds them for the code it runs (`using`), and domain code
reaches them with `current()`. Nothing here knows about Flask: the HTTP adapter binds the app's
services whenever Flask pushes an application context.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from hub.core.erasure import Keyed
    from hub.core.ledger import Ledger
    from hub.core.queue import Queues

log = logging.getLogger("hub")


@dataclass
class Services:
    """Everything below the adapters needs: settings, Redis, the ledger, the queues, the erasure key."""

    config: dict[str, Any]
    redis: Any
    ledger: "Ledger"
    queues: "Queues"
    erasure: "Keyed"
    resolver: Any = None      # host, port -> addresses for the event feed's checks (hub.core.netguard); None: DNS
    cache: dict[str, Any] = field(default_factory=dict)   # registered scripts and parsed settings


_current: ContextVar[Services] = ContextVar("hub_services")


class NoServices(RuntimeError):
    """Domain code ran where no adapter has bound the services."""


def current() -> Services:
    try:
        return _current.get()
    except LookupError:
        raise NoServices("no hub services are bound here: build them with hub.core.bootstrap.build_services "
                         "and run inside hub.core.services.using(...)") from None


def bind(services: Services) -> Token[Services]:
    return _current.set(services)


def unbind(token: Token[Services]) -> None:
    _current.reset(token)


@contextmanager
def using(services: Services) -> Iterator[Services]:
    token = bind(services)
    try:
        yield services
    finally:
        unbind(token)
