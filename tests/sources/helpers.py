"""Helpers the adapter tests share: load a published payload, sign nothing, run an adapter."""
from __future__ import annotations

import copy
import json
import pathlib
from typing import Any

from sources import SOURCES
from sources.base import Normalised

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z, for payloads that carry no time of their own
NOW_ISO = "2026-01-01T00:00:00Z"


def published(shared_dir: pathlib.Path, source: str, name: str) -> bytes:
    return (shared_dir / "payloads" / source / name).read_bytes()


def published_json(shared_dir: pathlib.Path, source: str, name: str) -> Any:
    return json.loads(published(shared_dir, source, name))


def run(source: str, payload: Any, settings: dict[str, Any], headers: dict[str, str] | None = None) -> Normalised:
    """Normalise bytes or a parsed body (a deep copy: adapters must not rely on mutating it)."""
    body = payload if isinstance(payload, (bytes, str)) else copy.deepcopy(payload)
    return SOURCES[source].normalise(body, headers or {}, settings, now=NOW)


def dumps(payload: Any) -> bytes:
    return json.dumps(payload).encode("utf-8")
