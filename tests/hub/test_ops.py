"""Retry policy, failed syncs and pauses: what ops see and do when a vendor misbehaves.

Flushes run in the test process against the in-process sandbox; jobs ops put back on a queue are
run by a real RQ SimpleWorker in burst mode, exactly as a hub worker would run them.
"""
from __future__ import annotations

from hub.core.auth import short_hash

import json

import pytest
import requests
import responses
from click.testing import CliRunner
from rq import SimpleWorker
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from rq.serializers import JSONSerializer

from connectors.klaviyo import KlaviyoConnector
from hub.core import failed, sync
from hub.core.ledger import dirty_key
from hub.core.queue import get_queues
from tests.story import event, story

OPS = {"Authorization": "Bearer ops-token"}
INGEST = {"Authorization": "Bearer ingest-token"}
CREDENTIALS = {"klaviyo": "pk_sandbox_demo", "ometria": "om_sandbox_demo", "splio": "splio_sandbox_demo"}
PEOPLE = ["anna@example.com", "ben@example.com", "cleo@example.com", "dan@example.com", "eve@example.com"]


@pytest.fixture(autouse=True)
def no_inline_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    # The connector's own in-call back-off (0.5 s, 1 s) is not what these tests are about.
    monkeypatch.setattr(KlaviyoConnector, "backoff", 0.0)


@pytest.fixture
def ops_app(make_app, sandbox_server):  # type: ignore[no-untyped-def]
    """Klaviyo, Ometria and Splio against the sandbox; a two-step schedule without jitter."""
    def build(**overrides):  # type: ignore[no-untyped-def]
        settings = {"RETRY_SCHEDULE": "10,60", "RETRY_JITTER": 0}
        for vendor, key in CREDENTIALS.items():
            settings[f"{vendor.upper()}_API_KEY"] = key
            settings[f"{vendor.upper()}_BASE_URL"] = f"{sandbox_server.url}/{vendor}"
        return make_app(**{**settings, **overrides})
    return build


def fault(sandbox_server, vendor: str, status: int, **spec) -> None:  # type: ignore[no-untyped-def]
    requests.post(f"{sandbox_server.url}/_sandbox/faults", json={"vendor": vendor, "status": status, **spec}, timeout=5)


def clear(sandbox_server, vendor: str) -> None:  # type: ignore[no-untyped-def]
    requests.delete(f"{sandbox_server.url}/_sandbox/faults", params={"vendor": vendor}, timeout=5)


def holds(sandbox_server, vendor: str, email: str):  # type: ignore[no-untyped-def]
    response = requests.get(f"{sandbox_server.url}/_sandbox/{vendor}/contacts/{email}", timeout=5)
    return response.json() if response.ok else None


def calls(sandbox_server, vendor: str) -> int:  # type: ignore[no-untyped-def]
    return requests.get(f"{sandbox_server.url}/_sandbox/stats", timeout=5).json().get(f"{vendor} total", 0)


def post_story(app) -> None:  # type: ignore[no-untyped-def]
    response = app.test_client().post("/v1/events", json={"events": story()}, headers=INGEST)
    assert response.status_code == 202, response.json


def time_passes(app, connector: str) -> None:  # type: ignore[no-untyped-def]
    """The scheduled retry is due: forget the back-off deadline (the scheduler would wait it out)."""
    app.extensions["redis"].delete(sync.BACKOFF.format(connector))


def run_queue(app, connector: str) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        queue = get_queues().get(connector)
        SimpleWorker([queue], connection=app.extensions["redis"], serializer=JSONSerializer).work(burst=True)


def test_5xx_backs_off_on_the_schedule_then_becomes_one_failed_sync(ops_app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    app = ops_app()
    post_story(app)
    fault(sandbox_server, "klaviyo", 500)
    with app.app_context():
        first = sync.flush("klaviyo")
        assert (first["attempt"], first["retry_in"]) == (1, 10.0)
        assert ScheduledJobRegistry(queue=get_queues().get("klaviyo")).count == 1
        assert sync.flush("klaviyo") == {"backing_off_until": pytest.approx(float(app.extensions["redis"].get(sync.BACKOFF.format("klaviyo"))))}
        time_passes(app, "klaviyo")
        second = sync.flush("klaviyo")
        assert (second["attempt"], second["retry_in"]) == (2, 60.0)
        assert failed.list_failed() == []
        time_passes(app, "klaviyo")
        assert sync.flush("klaviyo")["exhausted"] is True
        items = failed.list_failed()
    assert len(items) == 1
    item = items[0]
    assert item["connector"] == "klaviyo" and item["kind"] == "sync_contacts"
    assert item["contacts"] == PEOPLE
    assert (item["status"], item["retriable"], item["attempts"]) == (500, True, 3)
    assert item["first_attempt"] <= item["last_attempt"]
    with app.app_context():
        assert failed.show(item["id"])["exception"].startswith("RetriableVendorError: HTTP 500")
    redis = app.extensions["redis"]
    assert redis.zcard(dirty_key("klaviyo")) == 0, "filed contacts leave the dirty set"
    assert not redis.exists(sync.ATTEMPTS.format("klaviyo")), "the next batch starts a fresh schedule"
    last = json.loads(redis.hget(sync.LAST.format("klaviyo"), "anna@example.com"))
    assert last["ok"] is False and last["status"] == 500


def test_429_waits_at_least_retry_after_and_uses_no_attempt(ops_app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    app = ops_app(RETRY_SCHEDULE="1")
    post_story(app)
    fault(sandbox_server, "ometria", 429, count=3, headers={"Retry-After": "30"})
    with app.app_context():
        for _ in range(3):
            answer = sync.flush("ometria")
            assert answer["retry_in"] >= 30 and answer["attempt"] == 0, answer
            time_passes(app, "ometria")
        assert sync.flush("ometria")["pushed"] == 5
        assert failed.list_failed() == []
    assert holds(sandbox_server, "ometria", "anna@example.com")["fields"]["friends_invited"] == 2


def test_vendor_reset_header_sets_the_wait(ops_app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    app = ops_app()
    post_story(app)
    # Splio's gateway sends RateLimit-Reset (seconds), never Retry-After.
    fault(sandbox_server, "splio", 429, count=1, headers={"RateLimit-Reset": "45"}, path="/splio/data")
    with app.app_context():
        answer = sync.flush("splio")
    assert answer["retry_in"] >= 45 and answer["attempt"] == 0


def test_fatal_error_is_filed_at_once_never_retried(ops_app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    app = ops_app()
    post_story(app)
    fault(sandbox_server, "ometria", 400, body={"message": "Payload invalid"})
    with app.app_context():
        answer = sync.flush("ometria")
        assert answer["fatal"]["status"] == 400
        assert ScheduledJobRegistry(queue=get_queues().get("ometria")).count == 0
        [item] = failed.list_failed(connector="ometria")
    assert (item["status"], item["attempts"], item["retriable"], item["message"]) == (400, 1, False, "Payload invalid")


def test_401_pauses_with_the_reason_keeps_contacts_dirty_and_resume_catches_up(ops_app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    app = ops_app()
    post_story(app)
    fault(sandbox_server, "splio", 401)
    client = app.test_client()
    with app.app_context():
        answer = sync.flush("splio")
    assert answer["paused"]["by"] == "hub" and "401" in answer["paused"]["reason"]
    state = client.get("/v1/connectors/splio/pause", headers=OPS).json
    assert state["paused"]["reason"].startswith("credentials rejected by the vendor: HTTP 401")
    assert state["dirty"] == 5 and state["failed"] == 0
    admin_view = client.get("/v1/connectors", headers={"Authorization": "Bearer admin-token"}).json
    assert {c["name"]: c["paused"] for c in admin_view["connectors"]}["splio"]["by"] == "hub"

    before = calls(sandbox_server, "splio")
    with app.app_context():
        assert sync.flush("splio") == {"paused": True}
    assert calls(sandbox_server, "splio") == before, "a paused connector calls nobody"

    clear(sandbox_server, "splio")
    resumed = client.post("/v1/connectors/splio/resume", headers=OPS)
    assert resumed.status_code == 200 and resumed.json["paused"] is None and resumed.json["queued"] >= 1
    run_queue(app, "splio")
    assert holds(sandbox_server, "splio", "anna@example.com")["fields"]["referral_nb_potential_referred"] == 2
    assert app.extensions["redis"].zcard(dirty_key("splio")) == 0


def test_ops_pause_stops_pushes_and_events_keep_accumulating(ops_app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    app = ops_app()
    client = app.test_client()
    answer = client.post("/v1/connectors/klaviyo/pause", json={"reason": "Klaviyo maintenance"}, headers=OPS)
    # attributed to the token's name: a bare token is named by its short hash (hub.core.auth)
    assert answer.json["paused"] == {"reason": "Klaviyo maintenance", "by": short_hash("ops-token"),
                                     "at": answer.json["paused"]["at"]}
    post_story(app)
    run_queue(app, "klaviyo")
    assert holds(sandbox_server, "klaviyo", "anna@example.com") is None
    assert app.extensions["redis"].zcard(dirty_key("klaviyo")) == 5
    client.post("/v1/connectors/klaviyo/resume", headers=OPS)
    run_queue(app, "klaviyo")
    assert holds(sandbox_server, "klaviyo", "anna@example.com")["fields"]["referral_friends_invited"] == 2


def file_klaviyo_failure(app, sandbox_server) -> str:  # type: ignore[no-untyped-def]
    post_story(app)
    fault(sandbox_server, "klaviyo", 422, body={"errors": [{"status": 422, "code": "invalid", "title": "Invalid input.",
                                                           "detail": "bad profile"}]})
    with app.app_context():
        sync.flush("klaviyo")
        [item] = failed.list_failed(connector="klaviyo")
    return item["id"]


def test_retry_resets_counters_and_pushes_the_current_state(ops_app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    app = ops_app()
    job_id = file_klaviyo_failure(app, sandbox_server)
    redis = app.extensions["redis"]
    # As if RQ had spent retries on it: `rq requeue` would keep these.
    spent = Job.fetch(job_id, connection=redis, serializer=JSONSerializer)
    spent.retries_left, spent.number_of_retries = 0, 4
    spent.save()
    # The state moves on while the failure waits: Anna invites a third friend.
    app.test_client().post("/v1/events", json=event(20, "referral.invited", referrer={"email": "anna@example.com"}),
                           headers=INGEST)
    run_queue(app, "klaviyo")  # the flush for that event fails the same way
    clear(sandbox_server, "klaviyo")

    answer = app.test_client().post("/v1/failed/retry", json={"all": True}, headers=OPS)
    assert answer.status_code == 202 and job_id in answer.json["retried"]
    requeued = Job.fetch(job_id, connection=redis, serializer=JSONSerializer)
    assert not requeued.number_of_retries and not requeued.retries_left
    assert requeued.meta["attempts"] == 0 and requeued.meta["retries"] == 1
    run_queue(app, "klaviyo")
    held = holds(sandbox_server, "klaviyo", "anna@example.com")
    assert held["fields"]["referral_friends_invited"] == 3, "the retry pushed the CURRENT state"
    assert held["fields"]["referral_friends_converted"] == 1
    with app.app_context():
        assert failed.list_failed() == []


def test_a_retry_while_paused_waits_in_the_dirty_set(ops_app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    app = ops_app()
    job_id = file_klaviyo_failure(app, sandbox_server)
    clear(sandbox_server, "klaviyo")
    client = app.test_client()
    client.post("/v1/connectors/klaviyo/pause", headers=OPS)
    assert client.post(f"/v1/failed/{job_id}/retry", headers=OPS).status_code == 202
    run_queue(app, "klaviyo")
    assert app.extensions["redis"].zcard(dirty_key("klaviyo")) == 5
    assert holds(sandbox_server, "klaviyo", "anna@example.com") is None
    client.post("/v1/connectors/klaviyo/resume", headers=OPS)
    run_queue(app, "klaviyo")
    assert holds(sandbox_server, "klaviyo", "anna@example.com")["fields"]["referral_friends_invited"] == 2


def test_a_retry_that_fails_again_is_back_in_the_list_with_fresh_meta(ops_app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    app = ops_app()
    job_id = file_klaviyo_failure(app, sandbox_server)
    client = app.test_client()
    client.post(f"/v1/failed/{job_id}/retry", headers=OPS)
    run_queue(app, "klaviyo")
    shown = client.get(f"/v1/failed/{job_id}", headers=OPS).json
    assert (shown["attempts"], shown["retries"], shown["status"]) == (1, 1, 422)
    assert "422" in shown["exception"]


def test_list_filters_show_and_discard(ops_app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    app = ops_app()
    post_story(app)
    fault(sandbox_server, "klaviyo", 422, body={"errors": [{"code": "invalid", "detail": "bad"}]})
    fault(sandbox_server, "ometria", 400, body={"message": "nope"})
    with app.app_context():
        sync.flush("klaviyo")
        sync.flush("ometria")
    client = app.test_client()
    assert client.get("/v1/failed", headers=OPS).json["count"] == 2
    assert [i["connector"] for i in client.get("/v1/failed?connector=ometria", headers=OPS).json["failed"]] == ["ometria"]
    assert client.get("/v1/failed?code=400", headers=OPS).json["count"] == 1
    assert client.get("/v1/failed?code=invalid", headers=OPS).json["failed"][0]["connector"] == "klaviyo"
    assert client.get("/v1/failed?since=1h", headers=OPS).json["count"] == 2
    assert client.get("/v1/failed?since=2099-01-01T00:00:00Z", headers=OPS).json["count"] == 0
    assert client.get("/v1/failed?contact=ANNA@example.com", headers=OPS).json["count"] == 2
    assert client.get("/v1/failed?since=yesterday", headers=OPS).status_code == 422
    assert client.get("/v1/failed?connector=nope", headers=OPS).status_code == 404
    one = client.get("/v1/failed?connector=ometria", headers=OPS).json["failed"][0]["id"]
    assert client.get(f"/v1/failed/{one}", headers=OPS).json["function"] == "hub.jobs.entry.sync_contacts"
    assert client.get("/v1/failed/missing", headers=OPS).status_code == 404
    assert client.post("/v1/failed/retry", json={}, headers=OPS).status_code == 422, "no accidental retry-all"
    assert client.delete(f"/v1/failed/{one}", headers=OPS).json == {"discarded": [one]}
    assert client.delete(f"/v1/failed/{one}", headers=OPS).status_code == 404
    assert client.post("/v1/failed/discard", json={"connector": "klaviyo"}, headers=OPS).json["count"] == 1
    assert client.get("/v1/failed", headers=OPS).json["count"] == 0


def test_ops_routes_need_the_ops_role(ops_app) -> None:  # type: ignore[no-untyped-def]
    client = ops_app().test_client()
    for method, path in (("get", "/v1/failed"), ("post", "/v1/failed/retry"), ("get", "/v1/failed/x"),
                         ("delete", "/v1/failed/x"), ("post", "/v1/connectors/klaviyo/pause"),
                         ("post", "/v1/connectors/klaviyo/resume"), ("get", "/v1/connectors/klaviyo/pause")):
        assert getattr(client, method)(path).status_code == 401, path
        assert getattr(client, method)(path, headers=INGEST).status_code == 403, path
    assert client.get("/v1/failed", headers={"Authorization": "Bearer admin-token"}).status_code == 200
    assert client.post("/v1/connectors/nope/pause", headers=OPS).status_code == 404


def test_rq_sees_the_same_failed_jobs_and_rq_requeue_still_works(ops_app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    app = ops_app()
    job_id = file_klaviyo_failure(app, sandbox_server)
    redis = app.extensions["redis"]
    registry = FailedJobRegistry("sync-klaviyo", connection=redis, serializer=JSONSerializer)
    assert registry.get_job_ids() == [job_id]
    clear(sandbox_server, "klaviyo")
    registry.requeue(job_id)  # what `rq requeue --queue sync-klaviyo` does
    run_queue(app, "klaviyo")
    assert holds(sandbox_server, "klaviyo", "cleo@example.com")["lists"] == ["RfMkt1", "RfTxn1"]


@responses.activate
def test_failed_sync_meta_logs_and_answers_carry_no_secret(make_app, capsys) -> None:  # type: ignore[no-untyped-def]
    secret = "om_live_5uP3rS3cr3t_k3y_0123456789"
    app = make_app(OMETRIA_API_KEY=secret, OMETRIA_BASE_URL="https://ometria.test")
    # A vendor that echoes the credential back in its error (some do).
    responses.add(responses.POST, "https://ometria.test/v2/push", status=400,
                  json={"message": f"record rejected for account key {secret}"},
                  match=[responses.matchers.header_matcher({"X-Ometria-Auth": secret})])
    post_story(app)
    with app.app_context():
        sync.flush("ometria")
        [item] = failed.list_failed()
        shown = failed.show(item["id"])
    raw = app.extensions["redis"].hgetall(f"rq:job:{item['id']}")
    results = app.extensions["redis"].xrange(f"rq:results:{item['id']}")
    assert results, "the failure is recorded where rq and rq-dashboard look"
    client = app.test_client()
    api = client.get("/v1/failed", headers=OPS).data.decode() + client.get(f"/v1/failed/{item['id']}", headers=OPS).data.decode()
    logged = capsys.readouterr().err
    assert "record rejected for account key ***" == item["message"]
    for where, text in (("meta", json.dumps(item)), ("show", json.dumps(shown)), ("job hash", repr(raw)), ("rq result", repr(results)),
                        ("api", api), ("logs", logged)):
        assert secret not in text, where


@responses.activate
def test_pause_reason_never_echoes_the_rejected_key(make_app) -> None:  # type: ignore[no-untyped-def]
    secret = "om_live_an0th3r_s3cr3t_value_42"
    app = make_app(OMETRIA_API_KEY=secret, OMETRIA_BASE_URL="https://ometria.test")
    responses.add(responses.POST, "https://ometria.test/v2/push", status=401, json={"message": f"invalid key {secret}"})
    post_story(app)
    with app.app_context():
        reason = sync.flush("ometria")["paused"]["reason"]
    assert secret not in reason and "invalid key ***" in reason


def test_cli_lists_retries_and_pauses(ops_app, sandbox_server, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from hub.cli import main

    app = ops_app()
    job_id = file_klaviyo_failure(app, sandbox_server)
    monkeypatch.setenv("HUB_REDIS_URL", app.config["HUB"]["REDIS_URL"])
    for vendor, key in CREDENTIALS.items():
        monkeypatch.setenv(f"HUB_{vendor.upper()}_API_KEY", key)
        monkeypatch.setenv(f"HUB_{vendor.upper()}_BASE_URL", f"{sandbox_server.url}/{vendor}")
    runner = CliRunner()
    listed = runner.invoke(main, ["failed", "list"])
    assert listed.exit_code == 0, listed.output
    assert job_id in listed.output and "klaviyo" in listed.output and "422" in listed.output
    assert json.loads(runner.invoke(main, ["failed", "list", "--json", "--connector", "ometria"]).output) == []
    assert json.loads(runner.invoke(main, ["failed", "show", job_id]).output)["contacts"] == PEOPLE
    assert runner.invoke(main, ["failed", "retry"]).exit_code != 0, "retry needs ids, a filter or --all"
    retried = runner.invoke(main, ["failed", "retry", "--connector", "klaviyo"])
    assert retried.stdout.startswith("retried 1 failed sync(s)") and job_id in retried.stdout
    assert "retry: 1/1 failed syncs (100%)" in retried.stderr, "progress goes to stderr"
    paused = runner.invoke(main, ["connectors", "pause", "ometria", "--reason", "vendor incident 42"])
    assert "ometria: PAUSED by ops" in paused.output and "vendor incident 42" in paused.output
    assert "ometria: active" in runner.invoke(main, ["connectors", "resume", "ometria"]).output
    assert runner.invoke(main, ["connectors", "pause", "nope"]).exit_code != 0
