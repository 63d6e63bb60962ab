"""`hub migrate`, and the same step at the start of every long-running command."""
from __future__ import annotations

import logging
from typing import Any, Mapping

import click

from hub.cli.terminal import UserError

log = logging.getLogger("hub.migrate")


def upgrade(config: Mapping[str, Any], url: str, outage_ok: bool = False) -> Any:
    """Bring the data at `url` to this hub's layout; a mistake the person can fix is one line.

    `outage_ok` (the worker pool, which rides out a Redis outage by respawning its workers): a
    Redis that cannot be reached is logged and the pool starts; each worker migrates before it
    takes a job (hub/jobs/workers.py)."""
    import redis

    from hub.core.erasure import ErasureKeyError
    from hub.core.migrate import LayoutError, bring_forward

    try:
        report = bring_forward(dict(config), url)
    except (LayoutError, ErasureKeyError) as exc:
        raise UserError(str(exc)) from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        if not outage_ok:
            raise
        log.warning("Redis cannot be reached: each worker brings the data layout forward when it starts",
                    extra={"error": str(exc)})
        return None
    if report.before != report.after:
        log.warning("data layout migrated", extra={"layout_before": report.before, "layout": report.after,
                                                   **{k.replace(" ", "_"): n for k, n in report.changed.items()}})
    return report


@click.command("migrate")
def migrate_cli() -> None:
    """Bring the data in Redis to this hub's layout (serve, worker and up do it when they start)."""
    from hub.core.config import load
    from hub.core.store import redis_for

    config = load()
    with redis_for(config, long_running=False) as url:
        click.echo(upgrade(config, url).summary())
