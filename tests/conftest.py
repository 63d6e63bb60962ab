"""Shared fixtures: a real Redis (the machine's at HUB_REDIS_URL, else an embedded one) and a
sandbox served over real HTTP."""
from __future__ import annotations

import os
import pathlib
import threading
from typing import Iterator

import pytest
import redis as redis_lib
from werkzeug.serving import make_server

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
REQUIRE_SHARED = "HUB_REQUIRE_SHARED"   # CI sets it: a test that needs ../shared fails instead of skipping


def need_shared() -> pathlib.Path:
    """../shared, or a skip on a clone without it (a failure when HUB_REQUIRE_SHARED=1)."""
    if SHARED.is_dir():
        return SHARED
    if os.environ.get(REQUIRE_SHARED) == "1":
        pytest.fail(f"../shared is not beside the project and {REQUIRE_SHARED}=1")
    pytest.skip("../shared is not beside the project")


@pytest.fixture(scope="session", autouse=True)
def no_project_env_file() -> Iterator[None]:
    """Hub processes the tests start read no developer's .env (tests that want one set it)."""
    previous = os.environ.get("HUB_ENV_FILE")
    os.environ["HUB_ENV_FILE"] = "none"
    yield
    if previous is None:
        os.environ.pop("HUB_ENV_FILE", None)
    else:
        os.environ["HUB_ENV_FILE"] = previous


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """HUB_REDIS_URL when set; otherwise an embedded redis-server for the whole session."""
    url = os.environ.get("HUB_REDIS_URL")
    if url:
        yield url
        return
    from hub.core.store import start_embedded

    server = start_embedded(tmp_path_factory.mktemp("redis"))
    os.environ["HUB_REDIS_URL"] = server.url
    yield server.url
    os.environ.pop("HUB_REDIS_URL", None)
    server.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis_lib.Redis]:
    """A client on the test database, emptied before each test."""
    client = redis_lib.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


class LiveServer:
    def __init__(self, app, host: str = "127.0.0.1") -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self.server = make_server(host, 0, app, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://{host}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sandbox_server() -> Iterator[LiveServer]:
    """The vendor sandbox on a free port, in this process (no latency, no faults)."""
    from sandbox import create_sandbox

    server = LiveServer(create_sandbox())
    yield server
    server.stop()


@pytest.fixture
def shared_dir() -> pathlib.Path:
    return need_shared()


INGEST_SECRET = "whsec_" + __import__("base64").b64encode(b"referral-sync-hub-test-secret-32b").decode()
TOKENS = {"INGEST_TOKENS": "ingest-token", "ADMIN_TOKENS": "admin-token", "OPS_TOKENS": "ops-token"}


@pytest.fixture
def make_app(redis_url: str, redis_client: redis_lib.Redis):  # type: ignore[no-untyped-def]
    """Build a hub app on the test Redis; keyword overrides win."""
    from hub import create_app

    def build(**overrides):  # type: ignore[no-untyped-def]
        config = {"REDIS_URL": redis_url, "INGEST_SECRETS": INGEST_SECRET, "FLUSH_WINDOW": 0, **TOKENS}
        config.update(overrides)
        return create_app(config)
    return build


@pytest.fixture
def hub_app(make_app, sandbox_server):  # type: ignore[no-untyped-def]
    """A hub with Klaviyo enabled against the in-process sandbox."""
    return make_app(KLAVIYO_API_KEY="pk_sandbox_demo", KLAVIYO_BASE_URL=f"{sandbox_server.url}/klaviyo")


def signed_headers(body: bytes, secret: str = INGEST_SECRET, msg_id: str = "msg_1", timestamp: int | None = None) -> dict[str, str]:
    """Standard Webhooks headers signed by the `standardwebhooks` package, so every test that
    posts signed events checks the hub's verifier against an implementation other than its own."""
    import time as _time
    from datetime import datetime, timezone

    from standardwebhooks.webhooks import Webhook

    stamp = int(_time.time()) if timestamp is None else timestamp
    signature = Webhook(secret).sign(msg_id, datetime.fromtimestamp(stamp, timezone.utc), body.decode("utf-8"))
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp),
            "webhook-signature": signature, "Content-Type": "application/json"}
