"""The vendor connectors, by name. Each module is one platform behind `Connector`."""
from __future__ import annotations

from .base import MARKETING, TRANSACTIONAL, Connector, ContactUpdate, PushResult
from .emarsys import EmarsysConnector
from .klaviyo import KlaviyoConnector
from .ometria import OmetriaConnector
from .salesforce import SalesforceConnector
from .splio import SplioConnector

CONNECTORS: dict[str, type[Connector]] = {c.name: c for c in (
    KlaviyoConnector,
    EmarsysConnector,
    SalesforceConnector,
    OmetriaConnector,
    SplioConnector,
)}

__all__ = ["CONNECTORS", "Connector", "ContactUpdate", "PushResult", "MARKETING", "TRANSACTIONAL"]
