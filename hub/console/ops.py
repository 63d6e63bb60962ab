"""The ops pages: overview, failed syncs, pause and resume, contacts, webhook sources."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from flask import current_app, render_template

from .. import metrics, recent, sync
from ..ledger import dirty_key
from ..queue import get_queues
from . import bp
from .session import require_role


def redis() -> Any:
    return current_app.extensions["redis"]


def iso(moment: float | None) -> str | None:
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else None


def ago(seconds: float | None) -> str:
    """A wait as people read it: 45s, 12m 5s, 3h 20m, 2d 4h."""
    if seconds is None:
        return "-"
    whole = int(max(0.0, seconds))
    days, hours, minutes, secs = whole // 86400, whole % 86400 // 3600, whole % 3600 // 60, whole % 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {secs}s" if minutes else f"{secs}s"


def connector_overview(connector: str, hour: dict[str, dict[str, Any]], now: float) -> dict[str, Any]:
    """One connector at a glance: every figure a single Redis read, none a scan."""
    state = sync.status(connector)
    oldest = redis().zrange(dirty_key(connector), 0, 0, withscores=True)
    calls = hour.get(connector, {})
    return {**state, "oldest_wait": now - oldest[0][1] if oldest else None,
            "calls": calls.get("calls", 0), "errors": calls.get("errors", 0)}


def intake() -> list[dict[str, Any]]:
    """Events taken in since the counters began, by source and outcome (the /metrics counters)."""
    totals: dict[tuple[str, str], int] = {}
    for raw, count in redis().hgetall(metrics.EVENTS).items():
        parts = raw.decode().split(metrics.SEP)
        if len(parts) == 3:
            totals[(parts[1], parts[2])] = totals.get((parts[1], parts[2]), 0) + int(float(count))
    sources = sorted({s for s, _ in totals})
    outcomes = sorted({o for _, o in totals})
    return [{"source": s, "outcomes": {o: totals.get((s, o), 0) for o in outcomes}} for s in sources]


@bp.get("/overview")
@require_role("ops")
def overview() -> Any:
    now = time.time()
    hour = recent.last_hour(redis(), now)
    connectors = [connector_overview(c, hour, now) for c in get_queues().connectors]
    rows = intake()
    outcomes = sorted({o for row in rows for o in row["outcomes"]})
    return render_template("console/overview.html", connectors=connectors, intake=rows, outcomes=outcomes,
                           ago=ago, now=iso(now))
