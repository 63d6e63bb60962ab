"""The event feed's endpoint records in Redis: read and written here, below both the feed
(hub/core/feed.py, which reads them to fan messages out) and the operations on them
(hub/core/endpoints.py, which also keeps their secrets)."""
from __future__ import annotations

import json
from typing import Any

from hub.core import keys, services
from hub.core.errors import APIError

ENDPOINTS = keys.FEED_ENDPOINTS        # id -> JSON record (no secret)


def redis() -> Any:
    return services.current().redis


def load(endpoint_id: str, r: Any = None) -> dict[str, Any]:
    raw = (r or redis()).hget(ENDPOINTS, endpoint_id)
    if not raw:
        raise APIError(404, "unknown_endpoint", f"no endpoint {endpoint_id!r}")
    return json.loads(raw)


def save(record: dict[str, Any], r: Any = None) -> None:
    (r or redis()).hset(ENDPOINTS, record["id"], json.dumps(record))


def all_endpoints(r: Any = None) -> list[dict[str, Any]]:
    rows = [json.loads(v) for v in (r or redis()).hvals(ENDPOINTS)]
    return sorted(rows, key=lambda e: (e["created_at"], e["id"]))
