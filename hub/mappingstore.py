"""Where a connector's mapping lives: the admin's current version in Redis, else the default."""
from __future__ import annotations

import json
from typing import Any

from mappings import default_mapping

CURRENT = "hub:mapping:{}:current"


def current_mapping(redis: Any, connector: str) -> dict[str, Any]:
    stored = redis.get(CURRENT.format(connector))
    if stored:
        return json.loads(stored)["document"]
    return default_mapping(connector)
