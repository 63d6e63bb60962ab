"""/metrics, /healthz, /readyz and the JSON logs."""
from __future__ import annotations

import io
import json
import logging

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from hub.core import logs, metrics, sync
from tests.hub.test_ops import OPS, fault, post_story, run_queue


@pytest.fixture
def app(make_app, sandbox_server):  # type: ignore[no-untyped-def]
    return make_app(KLAVIYO_API_KEY="pk_sandbox_demo", KLAVIYO_BASE_URL=f"{sandbox_server.url}/klaviyo",
                    OMETRIA_API_KEY="om_sandbox_demo", OMETRIA_BASE_URL=f"{sandbox_server.url}/ometria")


def scrape(app) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:  # type: ignore[no-untyped-def]
    response = app.test_client().get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    out = {}
    for family in text_string_to_metric_families(response.data.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_vendor_calls_latency_backlog_and_failures_are_exported(app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    post_story(app)
    before = scrape(app)
    assert before[("hub_dirty_contacts", (("connector", "klaviyo"),))] == 5
    assert before[("hub_dirty_oldest_seconds", (("connector", "klaviyo"),))] >= 0
    assert before[("hub_queue_depth", (("connector", "klaviyo"),))] == 1
    fault(sandbox_server, "ometria", 400, body={"message": "nope"})
    run_queue(app, "klaviyo")
    run_queue(app, "ometria")
    with app.app_context():
        sync.pause("ometria", "testing")
    after = scrape(app)
    klaviyo = (("connector", "klaviyo"),)
    ometria = (("connector", "ometria"),)
    assert after[("hub_vendor_calls_total", (("connector", "ometria"), ("status", "400")))] == 1
    assert sum(v for (name, labels), v in after.items()
               if name == "hub_vendor_calls_total" and ("connector", "klaviyo") in labels) >= 1
    assert after[("hub_push_latency_seconds_count", klaviyo)] == 1
    assert after[("hub_push_latency_seconds_bucket", klaviyo + (("le", "+Inf"),))] == 1
    assert after[("hub_contacts_pushed_total", (("connector", "klaviyo"), ("outcome", "landed")))] == 5
    assert after[("hub_dirty_contacts", klaviyo)] == 0
    assert after[("hub_failed_syncs", ometria)] == 1 and after[("hub_failed_syncs", klaviyo)] == 0
    assert after[("hub_connector_paused", ometria)] == 1 and after[("hub_connector_paused", klaviyo)] == 0


def test_counters_are_shared_by_every_process(app, make_app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    other = make_app(KLAVIYO_API_KEY="pk_sandbox_demo", KLAVIYO_BASE_URL=f"{sandbox_server.url}/klaviyo")
    redis = app.extensions["redis"]
    metrics.count_call(redis, "klaviyo", "503")
    metrics.count_call(other.extensions["redis"], "klaviyo", "503")
    assert scrape(other)[("hub_vendor_calls_total", (("connector", "klaviyo"), ("status", "503")))] == 2


def test_rejected_events_are_counted_by_source(app) -> None:  # type: ignore[no-untyped-def]
    metrics.count_rejected(app.extensions["redis"], "talon_one", 2)
    key = ("hub_events_total", (("outcome", "invalid"), ("source", "talon_one"), ("type", "unknown")))
    assert scrape(app)[key] == 2


def test_a_call_that_gets_no_answer_counts_as_error(app) -> None:  # type: ignore[no-untyped-def]
    session = metrics.CountingSession(app.extensions["redis"], "klaviyo")
    with pytest.raises(requests.ConnectionError):
        session.get("http://127.0.0.1:9/nothing-listens-here", timeout=2)
    assert scrape(app)[("hub_vendor_calls_total", (("connector", "klaviyo"), ("status", "error")))] == 1


def test_health_and_readiness(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    assert client.get("/healthz").json == {"status": "ok"}
    assert client.get("/readyz").json == {"status": "ready", "connectors": ["klaviyo", "ometria"]}


@pytest.fixture
def captured():  # type: ignore[no-untyped-def]
    stream = io.StringIO()
    logs.setup(stream=stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logs.setup()


def test_json_access_lines_carry_the_request_id_and_no_email(app, captured) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    given = client.get("/v1/contacts/anna@example.com", headers={**OPS, "X-Request-ID": "req-42"})
    fresh = client.get("/v1/contacts/anna@example.com", headers={**OPS, "X-Request-ID": "bad id with spaces"})
    assert given.headers["X-Request-ID"] == "req-42"
    assert len(fresh.headers["X-Request-ID"]) == 32
    lines = captured()
    assert [line["request_id"] for line in lines] == ["req-42", fresh.headers["X-Request-ID"]]
    assert lines[0]["route"] == "/v1/contacts/<path:email>" and lines[0]["status"] == 404
    assert "anna" not in json.dumps(lines)


def test_log_lines_pseudonymise_emails_and_mask_secret_fields(app, captured) -> None:  # type: ignore[no-untyped-def]
    logger = logging.getLogger("hub.sync")
    logger.warning("could not push anna@example.com", extra={"api_key": "pk_live_x", "contacts": ["ben@example.com"],
                                                            "event_ids": ["evt_1"]})
    [line] = captured()
    assert line["level"] == "warning" and line["logger"] == "hub.sync"
    assert line["msg"].startswith("could not push rsh_") and line["api_key"] == "***"
    assert line["contacts"][0].startswith("rsh_") and line["event_ids"] == ["evt_1"]
    assert "example.com" not in json.dumps(line)


def test_posted_events_are_counted_by_type_source_and_outcome(app) -> None:  # type: ignore[no-untyped-def]
    from tests.story import story

    client = app.test_client()
    bearer = {"Authorization": "Bearer ingest-token"}
    assert client.post("/v1/events", json={"events": story()[:3]}, headers=bearer).status_code == 202
    assert client.post("/v1/events", json={"events": story()[:1]}, headers=bearer).status_code == 202
    assert client.post("/v1/events", json={"events": [{"id": "x"}]}, headers=bearer).status_code == 422
    seen = scrape(app)
    key = lambda t, o: ("hub_events_total", (("outcome", o), ("source", "api"), ("type", t)))  # noqa: E731
    assert seen[key("referrer.enrolled", "accepted")] == 2
    assert seen[key("referral.invited", "accepted")] == 1
    assert seen[key("referrer.enrolled", "duplicate")] == 1
    assert seen[key("unknown", "invalid")] == 1
