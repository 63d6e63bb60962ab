"""Settings: HUB_-prefixed environment variables over defaults, under a test dict."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from hub.core.store import SentinelURL

DEFAULTS: dict[str, Any] = {
    "REDIS_URL": "",                 # empty: start the embedded server (hub.core.store)
    "DATA_DIR": "var",
    "ERASURE_KEY": "",               # HMAC key for erased addresses; empty: <DATA_DIR>/erasure.key
    "INGEST_SECRETS": "",            # whsec_... secrets, comma or space separated (rotation)
    "INGEST_TOKENS": "",             # bearer tokens for the event API
    "ADMIN_TOKENS": "",              # bearer tokens with the admin role (name:token or bare, hub.core.auth)
    "OPS_TOKENS": "",                # bearer tokens with the ops role
    "PUBLIC_URL": "",                # the hub's address as users reach it; https: console cookies are Secure
    "CONSOLE_SESSION_TTL": 8 * 3600,  # seconds a console sign-in lasts
    "SIGNATURE_TOLERANCE": 300,      # seconds either way
    "MAX_EVENTS": 500,
    "MAX_BODY": 1024 * 1024,
    "DEDUPE_DAYS": 30,
    "EVENT_LOG_MAXLEN": 100_000,
    "CURRENCY": "GBP",               # the programme currency preferred for turnover fields
    "FLUSH_WINDOW": 0.2,             # seconds a flush waits so bursts coalesce into one write
    "FLUSH_BUDGET": 30.0,            # seconds one flush job works before handing over
    "RETRY_SCHEDULE": "10,60,300,1800,7200,18000,36000,36000",
    "RETRY_JITTER": 0.2,
    "FAILURE_TTL": 30 * 86400,
    "WORKER_TTL": 60,
    "MAINTENANCE_INTERVAL": 30,
    "WORKER_NICE": 19,               # worker processes yield the CPU to the HTTP API under load
    "FLUSH_LEASE": 30.0,             # seconds a flush lease lasts unrenewed: longer than any one vendor call
    "SWEEP_INTERVAL": 60,            # seconds between sweeps for stranded dirty contacts
    "SWEEP_GRACE": 30.0,             # seconds past due before the sweep calls a contact stranded
    "SCHEDULER_LEASE": 30.0,         # seconds before a standby scheduler takes over from a silent one
    "POOL_STOP_TIMEOUT": 30.0,       # seconds `hub worker` lets jobs finish on TERM before killing them
    # Ingest admission (hub.core.admission, docs/deployment.md)
    "INGEST_MIN_REPLICAS": "",       # replicas each 202 waits for (Redis WAIT); empty: 1 with Sentinel, else 0
    "INGEST_REPLICA_TIMEOUT_MS": 1000,  # how long a 202 waits for them before it becomes a 503
    "INGEST_RETRY_AFTER": 2,         # Retry-After (seconds) of the hub's own 503s on ingest
    "MEMORY_HIGH_WATER": 0.9,        # ingest answers 503 past this share of Redis maxmemory (> 1: bytes; 0: off)
    "MEMORY_CHECK_INTERVAL": 1.0,    # seconds a reading of Redis's INFO memory is reused
    # Anti-entropy audit (hub.core.audit, docs/reliability.md); AUDIT_SAMPLE_<CONNECTOR> and
    # AUDIT_INTERVAL_<CONNECTOR> override the first two for one connector.
    "AUDIT_INTERVAL": 3600,          # seconds between audits of a connector; 0 turns it off
    "AUDIT_SAMPLE": 20,              # contacts read back per audit
    "AUDIT_SHARE": 0.2,              # the audit's share of each vendor rate limit (pushes keep the rest)
    "AUDIT_BUDGET": 10.0,            # seconds one audit may spend before it stops
    "AUDIT_HISTORY": 20,             # audit findings kept per contact
    "FEEDS_POLL_INTERVAL": 60.0,     # seconds between polls of the SFTP feeds (docs/feeds.md); 0 turns it off
    "JOB_TTL": 7 * 86400,            # seconds a long job's progress stays readable (GET /v1/jobs/<id>)
}
INTEGERS = {"SIGNATURE_TOLERANCE", "MAX_EVENTS", "MAX_BODY", "DEDUPE_DAYS", "EVENT_LOG_MAXLEN",
            "FAILURE_TTL", "WORKER_TTL", "MAINTENANCE_INTERVAL", "WORKER_NICE", "SWEEP_INTERVAL",
            "AUDIT_INTERVAL", "AUDIT_SAMPLE", "AUDIT_HISTORY", "JOB_TTL", "INGEST_REPLICA_TIMEOUT_MS",
            "INGEST_RETRY_AFTER", "CONSOLE_SESSION_TTL"}
FLOATS = {"FLUSH_WINDOW", "FLUSH_BUDGET", "RETRY_JITTER", "FLUSH_LEASE", "SWEEP_GRACE", "SCHEDULER_LEASE",
          "POOL_STOP_TIMEOUT", "AUDIT_SHARE", "AUDIT_BUDGET", "FEEDS_POLL_INTERVAL", "MEMORY_HIGH_WATER",
          "MEMORY_CHECK_INTERVAL"}


def load(overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Defaults, then HUB_* from the environment, then `overrides` (tests)."""
    environ = os.environ if environ is None else environ
    config = dict(DEFAULTS)
    for key, value in environ.items():
        if key.startswith("HUB_"):
            config[key[4:]] = value
    config.update(overrides or {})
    for key in INTEGERS | FLOATS:
        try:
            config[key] = int(config[key]) if key in INTEGERS else float(config[key])
        except (TypeError, ValueError):
            kind = "a whole number" if key in INTEGERS else "a number"
            raise ValueError(f"HUB_{key} must be {kind}, not {config[key]!r}") from None
    if str(config["REDIS_URL"]).startswith("redis+sentinel:"):
        SentinelURL.parse(str(config["REDIS_URL"]))     # a ValueError naming HUB_REDIS_URL and the problem
    replicas = str(config["INGEST_MIN_REPLICAS"]).strip()
    if replicas and not replicas.isdigit():
        raise ValueError(f"HUB_INGEST_MIN_REPLICAS must be a whole number (or empty), not {replicas!r}")
    return config


def split(value: str | list[str] | None) -> list[str]:
    if isinstance(value, list):
        return value
    return [part for part in (value or "").replace(",", " ").split() if part]


def connector_settings(config: Mapping[str, Any], name: str) -> dict[str, str]:
    """HUB_<CONNECTOR>_<SETTING> entries as {"setting": value}."""
    prefix = f"{name.upper()}_"
    return {key[len(prefix):].lower(): str(value) for key, value in config.items()
            if key.startswith(prefix) and value not in (None, "")}


def retry_schedule(config: Mapping[str, Any]) -> list[float]:
    return [float(x) for x in split(str(config["RETRY_SCHEDULE"]))]


ENV_FILE_VARIABLE = "HUB_ENV_FILE"     # a .env to read instead of searching for one; "none": read none
HOME_VARIABLE = "REFERRAL_HUB_HOME"   # set by ./dev: the project folder, whose .env is the fallback


def find_env_file(cwd: str | os.PathLike[str] | None = None) -> Path | None:
    """HUB_ENV_FILE, else the nearest .env from the working folder up, else the project's own."""
    named = os.environ.get(ENV_FILE_VARIABLE)
    if named == "none":
        return None
    if named:
        return Path(named).expanduser().resolve()
    here = Path(cwd or os.getcwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / ".env").is_file():
            return folder / ".env"
    home = os.environ.get(HOME_VARIABLE)
    if home and (Path(home) / ".env").is_file():
        return Path(home).resolve() / ".env"
    return None


def load_env_file(path: Path | None = None) -> Path | None:
    """Read a .env into os.environ (Flask's convention); variables already set win over the file.

    A relative HUB_DATA_DIR in the file is taken relative to the file's folder, so every command
    finds the same data (and embedded Redis) from whichever folder it is run.
    """
    from dotenv import dotenv_values

    path = path or find_env_file()
    if path is None:
        return None
    if not path.is_file():
        raise FileNotFoundError(2, "no such file", str(path))
    for key, value in dotenv_values(path).items():
        if value is None or key in os.environ:
            continue
        if key == "HUB_DATA_DIR" and not Path(value).expanduser().is_absolute():
            value = str((path.parent / value).resolve())
        os.environ[key] = value
    return path
