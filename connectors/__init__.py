"""The vendor connectors, by name. Each module is one platform behind `Connector`."""
from __future__ import annotations

from .base import MARKETING, TRANSACTIONAL, Connector, ContactUpdate, PushResult
from .klaviyo import KlaviyoConnector
from .ometria import OmetriaConnector
from .splio import SplioConnector

CONNECTORS: dict[str, type[Connector]] = {c.name: c for c in (
    KlaviyoConnector,
    OmetriaConnector,
    SplioConnector,
)}

__all__ = ["CONNECTORS", "Connector", "ContactUpdate", "PushResult", "MARKETING", "TRANSACTIONAL"]
