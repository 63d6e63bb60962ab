"""Commands for running the hub for real: up, init, config check, send, lookup, redis."""
from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any

import click

from hub.cli.terminal import UserError, read_json


def env_port(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name) or default)
    except ValueError:
        raise UserError(f"{name} must be a port number, not {os.environ[name]!r}") from None


@click.command()
@click.option("--sandbox", "with_sandbox", is_flag=True, help="also run the vendor sandbox")
@click.option("--port", type=int, help="the HTTP API's port  [default: $HUB_PORT or 8000]")
@click.option("--sandbox-port", type=int, help="the sandbox's port  [default: $HUB_SANDBOX_PORT or 8900]")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--web-workers", default=2, show_default=True, help="gunicorn worker processes")
def up(with_sandbox: bool, port: int | None, sandbox_port: int | None, host: str, web_workers: int) -> None:
    """Run the whole hub in the foreground: Redis, the HTTP API, the worker pool (and the sandbox).

    Every line is prefixed with the process that printed it; Ctrl-C stops everything in order.
    """
    from hub.cli.up import run

    run(host, port or env_port("HUB_PORT", 8000), web_workers,
        (sandbox_port or env_port("HUB_SANDBOX_PORT", 8900)) if with_sandbox else None)


@click.command()
@click.option("--sandbox", "with_sandbox", is_flag=True, help="point all five connectors at the local sandbox")
@click.option("--force", is_flag=True, help="overwrite an existing .env")
@click.option("--path", "target", default=".env", show_default=True, help="the file to write")
def init(with_sandbox: bool, force: bool, target: str) -> None:
    """Write a commented .env with fresh secrets (and the sandbox's demo accounts with --sandbox)."""
    from hub.cli.envfile import pick_port, render

    path = Path(target)
    if path.exists() and not force:
        raise UserError(f"{path} exists; keep it, or pass --force to write a new one (new secrets)")
    port = pick_port(8000)
    sandbox_port = pick_port(8900) if with_sandbox else 8900
    try:
        path.write_text(render(with_sandbox, port, sandbox_port), encoding="utf-8")
        path.chmod(0o600)
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror or exc}") from None
    click.echo(f"wrote {path} (secrets are fresh; keep the file private)")
    if port != 8000 or (with_sandbox and sandbox_port != 8900):
        click.echo(f"  port 8000 or 8900 is taken here: the hub will use {port}"
                   + (f", the sandbox {sandbox_port}" if with_sandbox else ""))
    click.echo("next: hub config check; then hub up" + (" --sandbox" if with_sandbox else ""))


@click.group("config")
def config_cli() -> None:
    """The hub's configuration (environment over .env over defaults)."""


@config_cli.command("check")
def config_check() -> None:
    """Which connectors and webhook sources are enabled, and what is missing (secrets masked)."""
    from hub.core.config import find_env_file, load
    from hub.cli.envfile import check

    env_file = find_env_file()
    click.echo(f"settings    {env_file if env_file else 'no .env found'} + environment")
    lines, problems = check(load())
    for line in lines:
        click.echo(line)
    if problems:
        click.echo("\nmissing:")
        for problem in problems:
            click.echo(f"  - {problem}")
        raise SystemExit(1)
    click.echo("\nok")


def events_of(document: Any, source: str) -> list[dict[str, Any]]:
    if isinstance(document, dict) and isinstance(document.get("events"), list):
        document = document["events"]
    events = document if isinstance(document, list) else [document]
    if not events or not all(isinstance(e, dict) for e in events):
        raise UserError(f"{source} holds no event: give one event object, a list, or {{\"events\": [...]}}")
    return events


def emails_of(events: list[dict[str, Any]]) -> list[str]:
    found: list[str] = []
    for event in events:
        if event.get("type") == "contact.erased":
            continue
        for part in ("referrer", "friend", "contact"):
            email = (event.get(part) or {}).get("email") if isinstance(event.get(part), dict) else None
            if isinstance(email, str) and email.strip().lower() not in found:
                found.append(email.strip().lower())
    return found


def hub_url(url: str | None) -> str:
    return (url or os.environ.get("HUB_URL") or f"http://127.0.0.1:{env_port('HUB_PORT', 8000)}").rstrip("/")


def wait_ready(url: str, seconds: float) -> None:
    import requests

    deadline = time.monotonic() + seconds
    while True:
        try:
            if requests.get(f"{url}/readyz", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise click.ClickException(f"the hub at {url} was not ready within {seconds:.0f} s")
        time.sleep(0.2)


def wait_synced(url: str, token: str, emails: list[str], seconds: float) -> None:
    """Until every contact's current state has landed at every enabled connector."""
    import requests

    deadline = time.monotonic() + seconds
    waiting = list(emails)
    while waiting:
        for email in list(waiting):
            try:
                answer = requests.get(f"{url}/v1/contacts/{email}", headers={"Authorization": f"Bearer {token}"},
                                      timeout=5)
            except requests.RequestException:
                break       # the hub is restarting: ask again on the next round
            if answer.ok and all(not c.get("pending") and (c.get("last_push") or {}).get("ok")
                                 for c in answer.json().get("connectors", {}).values()):
                waiting.remove(email)
        if not waiting:
            break
        if time.monotonic() > deadline:
            raise click.ClickException(f"not yet at every connector after {seconds:.0f} s: {', '.join(waiting)} "
                                       f"(`hub contacts show EMAIL` says why)")
        time.sleep(0.3)
    click.echo(f"synced to every enabled connector: {', '.join(emails)}")


@click.command()
@click.argument("file")
@click.option("--url", help="the hub  [default: $HUB_URL, else http://127.0.0.1:$HUB_PORT]")
@click.option("--wait", "wait_seconds", type=float, default=0, metavar="SECONDS",
              help="wait up to SECONDS for the hub to be ready, then for the contacts to be synced "
                   "(the sync wait needs an ops or admin token)")
def send(file: str, url: str | None, wait_seconds: float) -> None:
    """Sign FILE's events (- = stdin) with the first HUB_INGEST_SECRETS secret and post them."""
    import requests

    from hub.core.auth import sign
    from hub.core.auth import token_values
    from hub.core.config import load, split

    events = events_of(read_json(file), "stdin" if file == "-" else file)
    secret = next(iter(split(load().get("INGEST_SECRETS"))), None)
    if not secret:
        raise UserError("HUB_INGEST_SECRETS is not set: nothing to sign with (`hub init` writes one)")
    target = hub_url(url)
    if wait_seconds:
        wait_ready(target, wait_seconds)
    body = json.dumps({"events": events}, separators=(",", ":")).encode()
    msg_id, stamp = f"msg_{uuid.uuid4().hex}", int(time.time())
    headers = {"Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(stamp),
               "webhook-signature": sign(secret, msg_id, stamp, body)}
    try:
        answer = requests.post(f"{target}/v1/events", data=body, headers=headers, timeout=30)
    except requests.RequestException as exc:
        raise click.ClickException(f"the hub at {target} cannot be reached ({type(exc).__name__}); "
                                   f"is it running? (`hub up`)") from None
    click.echo(f"{answer.status_code} {answer.text.strip()}")
    if not answer.ok:
        raise SystemExit(1)
    token = next(iter(token_values(load().get("OPS_TOKENS")) + token_values(load().get("ADMIN_TOKENS"))), None)
    if wait_seconds and token and emails_of(events):
        wait_synced(target, token, emails_of(events), wait_seconds)


@click.command()
@click.argument("email")
@click.option("--sandbox-url", help="[default: $HUB_SANDBOX_URL, else http://127.0.0.1:$HUB_SANDBOX_PORT]")
def lookup(email: str, sandbox_url: str | None) -> None:
    """What each vendor in the sandbox holds for EMAIL: fields, lists, consent."""
    import requests

    from hub.cli.demo import VENDORS, describe

    base = (sandbox_url or os.environ.get("HUB_SANDBOX_URL")
            or f"http://127.0.0.1:{env_port('HUB_SANDBOX_PORT', 8900)}").rstrip("/")
    click.echo(email)
    for vendor in VENDORS:
        try:
            answer = requests.get(f"{base}/_sandbox/{vendor}/contacts/{email.strip().lower()}", timeout=5)
        except requests.RequestException:
            raise click.ClickException(f"the sandbox at {base} cannot be reached; is it running? "
                                       f"(`hub up --sandbox`)") from None
        try:
            held = answer.json() if answer.ok else None
        except ValueError:
            raise click.ClickException(f"{base} did not answer as the sandbox does (is it the sandbox?)") from None
        click.echo(describe(vendor, held))


@click.group("redis")
def redis_cli() -> None:
    """The embedded Redis of the data folder (HUB_DATA_DIR): status, start, stop."""


def embedded() -> Any:
    from hub.core.config import load
    from hub.core.store import Embedded

    config = load()
    if config.get("REDIS_URL"):
        from hub.cli.terminal import safe_url

        raise UserError(f"HUB_REDIS_URL is set ({safe_url(str(config['REDIS_URL']))}): the hub uses that "
                        f"server, not an embedded one")
    return Embedded.of(config["DATA_DIR"])


@redis_cli.command("status")
def redis_status() -> None:
    """Whether the data folder's server runs, its pid, socket and log."""
    status = embedded().status()
    state = f"running (pid {status['pid']})" if status["running"] else "not running"
    click.echo(f"embedded Redis {state}\n  data   {status['data_dir']}\n  url    unix://{status['socket']}\n"
               f"  log    {status['log']}")


@redis_cli.command("start")
def redis_start() -> None:
    """Start the data folder's server and leave it running (`hub redis stop` stops it)."""
    server = embedded()
    started = server.start()
    click.echo(f"embedded Redis {'started' if started else 'already running'} on {server.url}")


@redis_cli.command("stop")
def redis_stop() -> None:
    """Stop the data folder's server (its AOF is flushed first)."""
    server = embedded()
    if not server.unused():
        click.echo("note: a hub process (serve, worker, up) still uses it and will answer 503 until it is back")
    click.echo("embedded Redis stopped" if server.stop() else "embedded Redis was not running")


RUN_COMMANDS = (up, init, config_cli, send, lookup, redis_cli)
