"""Referral Sync Hub.

The layers are sub-packages: `hub.core` (the domain, no Flask), and the adapters over it:
`hub.http` (the Flask app), `hub.cli` (the `hub` command), `hub.jobs` (RQ workers, the
scheduler, the feed process). `create_app` is the HTTP adapter's factory (hub.http.app), named
here so `from hub import create_app` and `wsgi.py` keep working; importing `hub` or `hub.core`
loads no Flask.
"""
from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from hub.http.app import create_app

        return create_app
    raise AttributeError(f"module 'hub' has no attribute {name!r}")
