"""`hub`: every verb a person needs, from serving to the demo."""
from __future__ import annotations

import os
from typing import Any, Callable

import click


class Gunicorn:
    """Serve a WSGI app factory with gunicorn, as in production."""

    @staticmethod
    def run(factory: Callable[[], Any], port: int, host: str, workers: int, threads: int) -> None:
        from gunicorn.app.base import BaseApplication

        class App(BaseApplication):  # type: ignore[misc]
            def load_config(self) -> None:
                self.cfg.set("bind", f"{host}:{port}")
                self.cfg.set("workers", workers)
                self.cfg.set("threads", threads)
                self.cfg.set("worker_class", "gthread" if threads > 1 else "sync")
                self.cfg.set("accesslog", None)
                self.cfg.set("loglevel", os.environ.get("HUB_LOG_LEVEL", "warning").lower())
                self.cfg.set("timeout", 60)
                self.cfg.set("graceful_timeout", 10)

            def load(self) -> Any:
                return factory()

        App().run()


@click.group()
def main() -> None:
    """Referral Sync Hub."""


@main.command()
@click.option("--port", default=8000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes")
@click.option("--threads", default=1, show_default=True, help="threads per worker (gthread when > 1)")
def serve(port: int, host: str, workers: int, threads: int) -> None:
    """Serve the HTTP API with gunicorn."""
    from . import create_app
    from .config import load
    from .store import ensure_redis_url

    server = ensure_redis_url(load()["DATA_DIR"])  # children share one embedded server
    try:
        Gunicorn.run(create_app, port, host, workers, threads)
    finally:
        if server:
            server.stop()


@main.command()
def worker() -> None:
    """Run one worker process per enabled connector queue, respawned when one dies."""
    from .config import load
    from .queue import enabled_connectors
    from .store import ensure_redis_url
    from .workers import run_pool

    config = load()
    server = ensure_redis_url(config["DATA_DIR"])
    connectors = enabled_connectors(config)
    if not connectors:
        raise click.ClickException("no connector is enabled: set HUB_<CONNECTOR>_* credentials")
    try:
        run_pool(connectors)
    finally:
        if server:
            server.stop()


@main.command()
@click.option("--port", default=8900, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--latency", default=0.0, show_default=True, help="seconds added to every vendor call")
@click.option("--fault-rate", default=0.0, show_default=True, help="share of calls answered 503")
def sandbox(port: int, host: str, latency: float, fault_rate: float) -> None:
    """Serve the local stand-in for the vendor APIs (one process, many threads)."""
    from sandbox import create_sandbox

    Gunicorn.run(lambda: create_sandbox(latency=latency, fault_rate=fault_rate), port, host, 1, 64)


@main.command()
@click.option("--keep", is_flag=True, help="leave everything running until Ctrl-C")
def demo(keep: bool) -> None:
    """Start Redis, the hub, a worker and the sandbox; post a referral story; show the result."""
    from .demo import run

    run(keep=keep)


@main.group()
def connectors() -> None:
    """Connectors: pause, resume and status of each enabled connector."""


from .contacts import contacts_cli  # noqa: E402 - commands defined beside their API
from .ops import connectors_pause, connectors_resume, connectors_status, failed_cli  # noqa: E402

connectors.add_command(connectors_pause)
connectors.add_command(connectors_resume)
connectors.add_command(connectors_status)
main.add_command(failed_cli)
main.add_command(contacts_cli)

from .admin_cli import CONNECTOR_COMMANDS, mappings  # noqa: E402

main.add_command(mappings)
for _command in CONNECTOR_COMMANDS:
    connectors.add_command(_command)
