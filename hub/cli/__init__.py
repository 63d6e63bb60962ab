"""`hub`: every verb a person needs, from serving to the demo.

Every command first reads the nearest `.env` (the environment wins over the file), runs in the
folder it was started in (relative paths are the person's), and reports a mistake as one line
(`hub.cli.terminal`). Commands that use the hub's Redis build the services with `command_services()`, which
makes sure the data folder's embedded server runs for as long as the command does.

To add a command: define it in its own module and register it in the list at the end.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Mapping

import click

from hub.cli.terminal import UserError, plain_errors

log = logging.getLogger("hub.cli")


class HubGroup(click.Group):
    """The root command: .env first, then one-line errors for everything below it."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        try:
            with plain_errors():
                bootstrap()
        except click.ClickException as exc:
            exc.show()
            raise SystemExit(exc.exit_code) from None
        except ValueError as exc:        # a setting that is not of its kind
            click.echo(f"Error: {exc}", err=True)
            raise SystemExit(2) from None
        return super().main(*args, **kwargs)

    def invoke(self, ctx: click.Context) -> Any:
        from hub.core.config import load
        from hub.core.errors import APIError

        try:
            with plain_errors(load().get("REDIS_URL") or None):
                return super().invoke(ctx)
        except APIError as exc:
            raise (UserError if exc.status in (400, 404) else click.ClickException)(exc.message) from None


def bootstrap() -> None:
    """Read the .env and pin the data folder to an absolute path, so child processes agree."""
    from hub.core.config import load, load_env_file

    load_env_file()
    data_dir = os.path.abspath(os.path.expanduser(load()["DATA_DIR"]))
    os.environ["HUB_DATA_DIR"] = data_dir


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
                self.cfg.set("when_ready", lambda server: log.warning(
                    "listening", extra={"url": f"http://{host}:{port}", "workers": workers, "threads": threads}))

            def load(self) -> Any:
                return factory()

        App().run()


def warn_at_startup(config: Mapping[str, Any]) -> None:
    """Log what a vendor is retiring in the credentials set (e.g. Emarsys WSSE), once per start."""
    import logging

    from connectors import CONNECTORS

    from hub.core.config import connector_settings

    log = logging.getLogger("hub.connectors")
    for name, cls in CONNECTORS.items():
        for message in cls.startup_warnings(connector_settings(config, name)):
            log.warning(message, extra={"connector": name})


def port_option(default_variable: str, default: int) -> Callable[[Any], Any]:
    return click.option("--port", default=lambda: int(os.environ.get(default_variable, default)), type=int,
                        show_default=f"${default_variable} or {default}")


@click.group(cls=HubGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Referral Sync Hub. Settings come from HUB_* variables and the nearest .env (`hub init` writes one)."""


@main.command()
@port_option("HUB_PORT", 8000)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--workers", default=2, show_default=True, help="gunicorn worker processes")
@click.option("--threads", default=4, show_default=True,
              help="threads per worker (gthread, which keeps connections alive, when > 1; sync at 1)")
def serve(port: int, host: str, workers: int, threads: int) -> None:
    """Serve the HTTP API with gunicorn."""
    from hub import create_app
    from hub.core import logs
    from hub.core.config import load
    from hub.core.store import redis_for

    logs.setup()
    config = load()
    warn_at_startup(config)
    with redis_for(config, long_running=True) as url:
        upgrade(config, url)
        Gunicorn.run(create_app, port, host, workers, threads)


@main.command()
def worker() -> None:
    """Run one worker process per enabled connector queue, respawned when one dies."""
    from hub.core import logs
    from hub.core.config import load
    from hub.core.queue import enabled_connectors
    from hub.core.store import redis_for
    from hub.jobs.workers import run_pool

    logs.setup()    # the pool's own lines as JSON, like every other process
    config = load()
    warn_at_startup(config)
    connectors = enabled_connectors(config)
    if not connectors:
        raise UserError("no connector is enabled: set HUB_<CONNECTOR>_* credentials (`hub config check` "
                        "shows what is missing; `hub init --sandbox` writes a .env for the sandbox)")
    with redis_for(config, long_running=True) as url:
        upgrade(config, url, outage_ok=True)
        run_pool(connectors)


@main.command()
@port_option("HUB_SANDBOX_PORT", 8900)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--latency", default=0.0, show_default=True, help="seconds added to every vendor call")
@click.option("--fault-rate", default=0.0, show_default=True, help="share of calls answered 503")
@click.option("--sftp-port", type=int, help="also serve an SFTP server on this port (0: any free port)")
@click.option("--sftp-root", default="var/sftp", show_default=True, help="the folder the SFTP server serves")
@click.option("--sftp-host-key", default="var/sftp-host-key", show_default=True, help="its host key (created if missing)")
@click.option("--sftp-authorized-keys", help="an authorized_keys file for public-key logins")
def sandbox(port: int, host: str, latency: float, fault_rate: float, sftp_port: int | None, sftp_root: str,
            sftp_host_key: str, sftp_authorized_keys: str | None) -> None:
    """Serve the local stand-in for the vendor APIs (one process, many threads)."""
    from sandbox import create_sandbox

    from hub.core import logs

    logs.setup()

    def factory() -> Any:
        app = create_sandbox(latency=latency, fault_rate=fault_rate)
        if sftp_port is not None:
            from sandbox.sftp import attach

            attach(app, sftp_port, sftp_root, sftp_host_key, sftp_authorized_keys, host)
        return app

    Gunicorn.run(factory, port, host, 1, 64)


@main.command()
@click.option("--keep", is_flag=True, help="leave everything running until Ctrl-C")
def demo(keep: bool) -> None:
    """Start Redis, the hub, a worker and the sandbox; post a referral story; show the result."""
    from hub.cli.demo import run

    run(keep=keep)


@main.group()
def connectors() -> None:
    """Connectors: list, check, fields, and pause, resume and status of each enabled one."""


# -- registration: each module defines its commands beside the code they drive ----------------

from hub.cli.audit import audit_cli  # noqa: E402

main.add_command(audit_cli)

from hub.cli.admin import CONNECTOR_COMMANDS, mappings  # noqa: E402
from hub.cli.contacts import contacts_cli  # noqa: E402
from hub.cli.feeds import feeds  # noqa: E402
from hub.cli.ops import connectors_pause, connectors_resume, connectors_status, failed_cli  # noqa: E402
from hub.cli.runner import RUN_COMMANDS  # noqa: E402

for _command in (connectors_pause, connectors_resume, connectors_status, *CONNECTOR_COMMANDS):
    connectors.add_command(_command)
for _command in (failed_cli, contacts_cli, mappings, feeds, *RUN_COMMANDS):
    main.add_command(_command)

from hub.cli.endpoints import endpoints_cli  # noqa: E402

main.add_command(endpoints_cli)

from hub.cli.migrate import migrate_cli, upgrade  # noqa: E402

main.add_command(migrate_cli)
