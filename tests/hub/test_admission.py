"""Ingest admission: the memory high-water mark (503 before anything is written) and durable
ingest (a 202 only once a replica holds the events: Redis WAIT), against real redis-servers."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import redis as redis_lib

from hub import create_app
from hub.core.admission import min_replicas
from hub.core.ledger import get_ledger
from hub.core.processes import free_port
from hub.core.store import SentinelURL, server_binary
from tests.conftest import INGEST_SECRET, TOKENS, signed_headers
from tests.story import story


def post(client, events, msg_id: str = "m1"):  # type: ignore[no-untyped-def]
    body = json.dumps({"events": events}).encode()
    return client.post("/v1/events", data=body, headers=signed_headers(body, msg_id=msg_id))


def test_past_the_high_water_mark_ingest_refuses_and_writes_nothing(make_app, redis_client) -> None:  # type: ignore[no-untyped-def]
    app = make_app(MEMORY_HIGH_WATER=2, MEMORY_CHECK_INTERVAL=0)      # 2 bytes: always past it
    client = app.test_client()
    events = story()
    answer = post(client, events)
    assert answer.status_code == 503 and answer.headers["Retry-After"] == "2"
    assert answer.json["error"]["code"] == "store_full"
    with app.app_context():
        assert get_ledger().states([e["referrer"]["email"] for e in events if "referrer" in e]) == \
            {e["referrer"]["email"]: None for e in events if "referrer" in e}
    assert not redis_client.exists("hub:dirty:klaviyo")
    ready = client.get("/readyz")
    assert ready.status_code == 503 and ready.json["error"]["code"] == "store_full"
    scrape = client.get("/metrics").get_data(as_text=True)
    assert 'hub_ingest_refused_total{reason="memory"} 1.0' in scrape
    assert "hub_redis_used_memory_bytes" in scrape

    roomy = make_app(MEMORY_HIGH_WATER=10 ** 12).test_client()
    again = post(roomy, events)
    assert again.status_code == 202 and again.json == {"accepted": len(events), "duplicates": 0}
    assert roomy.get("/readyz").status_code == 200


def test_a_share_of_an_unlimited_redis_is_no_mark(make_app) -> None:  # type: ignore[no-untyped-def]
    client = make_app(MEMORY_HIGH_WATER=0.5, MEMORY_CHECK_INTERVAL=0).test_client()   # maxmemory 0
    assert post(client, story()[:1]).status_code == 202


@pytest.fixture
def primary(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A primary of our own (no replica yet) and a way to give it one."""
    procs: list[subprocess.Popen[bytes]] = []

    def server(name: str, *args: str) -> int:
        port = free_port()
        (tmp_path / name).mkdir()
        procs.append(subprocess.Popen([server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                       "--dir", str(tmp_path / name), *args],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        client = redis_lib.Redis(port=port)
        for _ in range(200):
            try:
                client.ping()
                return port
            except redis_lib.ConnectionError:
                subprocess.run(["sleep", "0.05"], check=True)   # the server is starting
        raise AssertionError(f"{name} did not start")

    port = server("primary")
    yield port, server
    for proc in procs:
        proc.kill()
        proc.wait(10)


def hub_on(port: int, **settings):  # type: ignore[no-untyped-def]
    return create_app({"REDIS_URL": f"redis://127.0.0.1:{port}/0", "INGEST_SECRETS": INGEST_SECRET,
                       "KLAVIYO_API_KEY": "pk_test", "DATA_DIR": "var", **TOKENS, **settings})


def test_durable_ingest_answers_503_until_a_replica_has_the_events(primary) -> None:  # type: ignore[no-untyped-def]
    port, server = primary
    client = hub_on(port, INGEST_MIN_REPLICAS="1", INGEST_REPLICA_TIMEOUT_MS=100).test_client()
    events = story()
    first = post(client, events)
    assert first.status_code == 503 and first.headers["Retry-After"] == "2"
    assert first.json["error"]["code"] == "not_durable"
    replica = server("replica", "--replicaof", "127.0.0.1", str(port))
    follower = redis_lib.Redis(port=replica)
    for _ in range(400):
        if follower.info("replication").get("master_link_status") == "up":
            break
        subprocess.run(["sleep", "0.05"], check=True)
    # The retry finds every event applied (the primary had them): duplicates, and still it
    # waits for the replica before its 202.
    again = post(client, events)
    assert again.status_code == 202 and again.json == {"accepted": 0, "duplicates": len(events)}
    assert follower.exists(*[f"hub:c:{e['referrer']['email']}" for e in events[:1]])
    scrape = client.get("/metrics").get_data(as_text=True)
    assert 'hub_ingest_refused_total{reason="replicas"} 1.0' in scrape
    assert "hub_ingest_min_replicas 1.0" in scrape


def test_without_the_setting_a_lone_primary_answers_202(primary) -> None:  # type: ignore[no-untyped-def]
    port, _ = primary
    assert post(hub_on(port).test_client(), story()[:2]).status_code == 202


def test_min_replicas_defaults_to_one_with_sentinel_only() -> None:
    assert min_replicas({"INGEST_MIN_REPLICAS": "", "REDIS_URL": "redis+sentinel://h:1/svc/0"}) == 1
    assert min_replicas({"INGEST_MIN_REPLICAS": "", "REDIS_URL": "redis://h:6379/0"}) == 0
    assert min_replicas({"INGEST_MIN_REPLICAS": "0", "REDIS_URL": "redis+sentinel://h:1/svc"}) == 0


@pytest.mark.parametrize("url, problem", [
    ("redis+sentinel:///svc", "at least one Sentinel"),
    ("redis+sentinel://h:1", "/<service name>"),
    ("redis+sentinel://h:x/svc", "not host:port"),
    ("redis+sentinel://h:1/svc/zero", "/<db number>"),
])
def test_a_bad_sentinel_url_is_named(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match="HUB_REDIS_URL") as caught:
        SentinelURL.parse(url)
    assert problem in str(caught.value)


def test_a_sentinel_url_parses() -> None:
    parsed = SentinelURL.parse("redis+sentinel://:pw@10.0.0.1:26379,10.0.0.2/hub/3?sentinel_password=s")
    assert parsed == SentinelURL(sentinels=(("10.0.0.1", 26379), ("10.0.0.2", 26379)), service="hub", db=3,
                                 password="pw", sentinel_password="s")


def test_the_cli_names_a_bad_sentinel_url_in_one_line(tmp_path: Path) -> None:
    import os
    import sys

    env = {**os.environ, "HUB_ENV_FILE": "none", "HUB_REDIS_URL": "redis+sentinel://127.0.0.1:26379/"}
    done = subprocess.run([sys.executable, "-m", "hub", "failed", "list"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "Error: HUB_REDIS_URL: a Sentinel URL ends in /<service name> or /<service name>/<db number>"]
