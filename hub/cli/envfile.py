"""`hub init` and `hub config check`: a commented .env to start from, and what a config enables."""
from __future__ import annotations

import base64
import re
import secrets
import socket
from typing import Any, Mapping

SECRET_NAME = re.compile(r"key|token|secret|password|private", re.I)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def pick_port(preferred: int) -> int:
    """The preferred port when nothing listens on it, else a free one."""
    if port_free(preferred):
        return preferred
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def render(sandbox: bool, port: int, sandbox_port: int) -> str:
    """The .env text: fresh secrets, and with `sandbox` the sandbox's demo accounts."""
    ingest = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    lines = [
        "# Referral Sync Hub settings, read by every `hub` command from this folder (or below it).",
        "# A variable set in the environment wins over this file. Every setting: the configuration",
        "# table in README.md. Keep this file private: it holds secrets.",
        "",
        "# Where the embedded Redis keeps its data, socket and pid (relative to this file).",
        "# Set HUB_REDIS_URL instead to use your own Redis, e.g. redis://127.0.0.1:6379/0",
        "HUB_DATA_DIR=var",
        "",
        "# The HTTP API's port (`hub serve`, `hub up`) and the URL `hub send` posts to.",
        f"HUB_PORT={port}",
        f"HUB_URL=http://127.0.0.1:{port}",
        "",
        "# Senders sign POST /v1/events with this Standard Webhooks secret (`hub send` does).",
        "# Several, comma separated, while you rotate.",
        f"HUB_INGEST_SECRETS={ingest}",
        "# Bearer tokens for people and scripts: the admin role (mappings) and the ops role",
        "# (failed syncs, pause/resume, contacts).",
        f"HUB_ADMIN_TOKENS={secrets.token_urlsafe(32)}",
        f"HUB_OPS_TOKENS={secrets.token_urlsafe(32)}",
        "# Senders that cannot sign may use a bearer token instead:",
        "# HUB_INGEST_TOKENS=",
        "",
    ]
    if sandbox:
        lines += sandbox_lines(sandbox_port)
    else:
        lines += [
            "# Connectors: a connector is enabled when its credentials are set (docs/connectors.md).",
            "# HUB_KLAVIYO_API_KEY=pk_...",
            "# HUB_EMARSYS_CLIENT_ID=...          (OAuth2, the default; WSSE's USERNAME/SECRET are retiring)",
            "# HUB_EMARSYS_CLIENT_SECRET=...",
            "# HUB_SALESFORCE_CLIENT_ID=...",
            "# HUB_SALESFORCE_CLIENT_SECRET=...",
            "# HUB_SALESFORCE_REFRESH_TOKEN=...",
            "# HUB_OMETRIA_API_KEY=...",
            "# HUB_SPLIO_API_KEY=...",
            "",
            "# Webhook sources (docs/webhooks.md), e.g.:",
            "# HUB_SOURCE_MENTION_ME_SECRET=...",
            "",
        ]
    return "\n".join(lines)


def sandbox_lines(sandbox_port: int) -> list[str]:
    from sandbox import DEMO_SETTINGS

    base = f"http://127.0.0.1:{sandbox_port}"
    lines = [
        "# The sandbox (`hub sandbox`, `hub up --sandbox`) stands in for the five vendors, with",
        "# their demo accounts. Replace these with real credentials and drop the BASE_URLs to go live.",
        f"HUB_SANDBOX_PORT={sandbox_port}",
        f"HUB_SANDBOX_URL={base}",
    ]
    for vendor, settings in DEMO_SETTINGS.items():
        lines.append("")
        if vendor == "salesforce":
            lines.append("# Salesforce: BASE_URL is where the hub logs in; the instance URL comes from the login answer.")
        lines.append(f"HUB_{vendor.upper()}_BASE_URL={base}/{vendor}")
        lines += [f"HUB_{vendor.upper()}_{key.upper()}={value}" for key, value in settings.items()]
    return lines + [""]


def mask(name: str, value: str) -> str:
    if SECRET_NAME.search(name) and value:
        return "****"
    return value


def check(config: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """Lines to print and the problems found (what is missing for a working hub)."""
    from connectors import CONNECTORS

    from hub.core.config import connector_settings, split
    from sources import SOURCES

    lines: list[str] = []
    problems: list[str] = []
    if config.get("REDIS_URL"):
        from hub.cli.terminal import safe_url

        lines.append(f"redis       {safe_url(str(config['REDIS_URL']))}")
    else:
        from hub.core.store import Embedded

        server = Embedded.of(config["DATA_DIR"])
        state = "running" if server.running() else "not running (started by the first hub command)"
        lines.append(f"redis       embedded, data in {server.data_dir} ({state})")
    auth = []
    if split(config.get("INGEST_SECRETS")):
        auth.append(f"{len(split(config['INGEST_SECRETS']))} signing secret(s)")
    if split(config.get("INGEST_TOKENS")):
        auth.append(f"{len(split(config['INGEST_TOKENS']))} bearer token(s)")
    lines.append(f"event API   {', '.join(auth) or 'NO SECRET: every event would get 401'}")
    if not auth:
        problems.append("set HUB_INGEST_SECRETS (or HUB_INGEST_TOKENS) so senders can post events")
    for role in ("ADMIN", "OPS"):
        count = len(split(config.get(f"{role}_TOKENS")))
        lines.append(f"{role.lower():<11} {count} token(s)" if count else f"{role.lower():<11} no token: the {role.lower()} API answers 401")
    lines.append("")
    lines.append("connectors")
    enabled = 0
    for name, cls in CONNECTORS.items():
        settings = connector_settings(config, name)
        if cls.configured(settings):
            enabled += 1
            shown = ", ".join(f"{key}={mask(key, value)}" for key, value in sorted(settings.items()))
            lines.append(f"  {name:<11} enabled   {shown}")
        else:
            wanted = " + ".join(f"HUB_{name.upper()}_{key.upper()}" for key in cls.required_settings)
            lines.append(f"  {name:<11} disabled  (set {wanted})")
    if not enabled:
        problems.append("no connector is enabled: the worker has nothing to do (`hub init --sandbox` for a try-out)")
    lines.append("")
    lines.append("webhook sources")
    environ = {f"HUB_{k}": str(v) for k, v in config.items()}
    for name, adapter in SOURCES.items():
        try:
            settings = adapter.settings_from_env(environ)
        except Exception as exc:  # noqa: BLE001 - a SettingsError names the bad value
            lines.append(f"  {name:<11} MISCONFIGURED: {exc}")
            problems.append(f"webhook source {name}: {exc}")
            continue
        if adapter.configured(settings):
            shown = ", ".join(f"{k}={'****' if k in adapter.secret_settings else v}"
                              for k, v in sorted(settings.items()) if v not in (None, "", [], {}))
            lines.append(f"  {name:<11} enabled   {shown[:160]}")
        else:
            wanted = " + ".join(f"HUB_SOURCE_{name.upper()}_{key.upper()}" for key in adapter.required_settings)
            lines.append(f"  {name:<11} off       (set {wanted})")
    return lines, problems
