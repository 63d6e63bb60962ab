"""The anti-entropy audit against the in-process sandbox over real HTTP and a real Redis: contacts
in step are left alone, drift is found and repaired by the normal flush, consent is reported and
never written, the audit's reads keep to their share of the rate limit, and erasing a contact
erases its audit history."""
from __future__ import annotations

import json
import time
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from connectors.ratelimit import RateLimiter
from connectors.splio import SplioConnector
from hub.core import audit, keys, pushstate, repairs, sync, vendorchecks, vendorjobs
from hub.cli import main
from hub.core.ledger import dirty_key
from hub.core.queue import get_queues
from sandbox import DEMO_SETTINGS
from tests.hub.test_ops import INGEST, OPS, PEOPLE, post_story, run_queue

READABLE = ("klaviyo", "emarsys", "salesforce", "splio")
# Where each vendor's default mapping puts the referrer's turnover, and the customers list.
TURNOVER = {"klaviyo": "referral_turnover", "emarsys": "12005", "salesforce": "Referral_Turnover__c",
            "splio": "referral_turnover_generated"}
CUSTOMERS = {"klaviyo": "RfTxn1", "emarsys": "740002", "salesforce": "701Rf000000Txn1AAA", "splio": "26"}
MARKETING = {"klaviyo": "RfMkt1", "salesforce": "701Rf000000Mkt1AAA", "splio": "25"}


@pytest.fixture
def app(make_app, sandbox_server):  # type: ignore[no-untyped-def]
    """Every vendor enabled against the sandbox, the story pushed everywhere."""
    settings: dict[str, Any] = {"AUDIT_SHARE": 1.0}
    for vendor, values in DEMO_SETTINGS.items():
        settings[f"{vendor.upper()}_BASE_URL"] = f"{sandbox_server.url}/{vendor}"
        settings.update({f"{vendor.upper()}_{k.upper()}": v for k, v in values.items()})
    hub = make_app(**settings)
    post_story(hub)
    for vendor in DEMO_SETTINGS:
        run_queue(hub, vendor)
    return hub


def holds(sandbox_server, vendor: str, email: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = requests.get(f"{sandbox_server.url}/_sandbox/{vendor}/contacts/{email}", timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def drift(sandbox_server, vendor: str, email: str, **change: Any) -> None:  # type: ignore[no-untyped-def]
    response = requests.patch(f"{sandbox_server.url}/_sandbox/{vendor}/contacts/{email}", json=change, timeout=5)
    assert response.status_code == 200, response.text


def counters(app) -> dict[tuple[str, str], float]:  # type: ignore[no-untyped-def]
    raw = app.extensions["redis"].hgetall(repairs.CONTACTS)
    return {tuple(k.decode().split("\t")): float(v) for k, v in raw.items()}  # type: ignore[misc]


def run(app, connector: str, **kw: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    with app.app_context():
        return audit.audit(connector, **kw)


@pytest.mark.parametrize("vendor", READABLE)
def test_contacts_in_step_are_read_and_left_alone(app, vendor: str) -> None:  # type: ignore[no-untyped-def]
    report = run(app, vendor, size=50)
    assert (report["checked"], report["in_step"], report["out_of_step"], report["findings"]) == (5, 5, 0, [])
    assert report["stopped"] is None and report["skipped"] is None
    r = app.extensions["redis"]
    assert r.zcard(dirty_key(vendor)) == 0
    assert get_queues_count(app, vendor) == 0
    assert all(audit.history(r, email) == [] for email in PEOPLE)
    assert counters(app) == {(vendor, "checked"): 5, (vendor, "in_step"): 5}


def get_queues_count(app, vendor: str) -> int:  # type: ignore[no-untyped-def]
    with app.app_context():
        return get_queues().get(vendor).count


def test_ometria_has_no_read_and_is_skipped(app) -> None:  # type: ignore[no-untyped-def]
    report = run(app, "ometria")
    assert report["skipped"] == "Ometria has no read API the hub uses" and report["checked"] == 0


@pytest.mark.parametrize("vendor", READABLE)
def test_drift_is_found_then_the_flush_repairs_it(app, sandbox_server, vendor: str) -> None:  # type: ignore[no-untyped-def]
    drift(sandbox_server, vendor, "anna@example.com", fields={TURNOVER[vendor]: 1.5})
    if vendor != "emarsys":      # Emarsys lists are not read back
        drift(sandbox_server, vendor, "cleo@example.com",
              lists=[i for i in holds(sandbox_server, vendor, "cleo@example.com")["lists"] if i != CUSTOMERS[vendor]])
    report = run(app, vendor, size=50)
    findings = {f["email"]: f for f in report["findings"]}
    assert findings["anna@example.com"] == {"email": "anna@example.com", "repair": True, "fields": [TURNOVER[vendor]]}
    if vendor != "emarsys":
        assert findings["cleo@example.com"] == {"email": "cleo@example.com", "repair": True,
                                                "lists_lost": [CUSTOMERS[vendor]]}
    assert report["out_of_step"] == report["repairs_queued"] == len(findings)
    r = app.extensions["redis"]
    assert sorted(e.decode() for e in r.zrange(dirty_key(vendor), 0, -1)) == sorted(findings)
    assert get_queues_count(app, vendor) == 1      # the audit started the flush that repairs
    assert 0 < r.ttl(repairs.OPEN.format(vendor)) <= 86400

    run_queue(app, vendor)
    assert float(holds(sandbox_server, vendor, "anna@example.com")["fields"][TURNOVER[vendor]]) == 59.9
    if vendor != "emarsys":
        assert CUSTOMERS[vendor] in holds(sandbox_server, vendor, "cleo@example.com")["lists"]
    history = audit.history(r, "anna@example.com")
    assert [(h["event"], h["connector"]) for h in history] == [("repaired", vendor), ("mismatch", vendor)]
    assert history[1]["fields"] == [TURNOVER[vendor]] and "59.9" not in json.dumps(history)
    numbers = counters(app)
    assert numbers[(vendor, "out_of_step")] == numbers[(vendor, "repaired")] == len(findings)
    assert r.get(repairs.OPEN.format(vendor)) == b"0"
    again = run(app, vendor, size=50)          # and now everything is in step again
    assert (again["in_step"], again["out_of_step"]) == (5, 0)


def test_consent_and_marketing_lists_are_reported_never_written(app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    # Cleo unsubscribes inside Klaviyo: her choice there stands.
    drift(sandbox_server, "klaviyo", "cleo@example.com", marketing_consent=False, lists=["RfTxn1"])
    report = run(app, "klaviyo", size=50)
    assert report["findings"] == [{"email": "cleo@example.com", "repair": False, "consent": {"hub": True, "vendor": False},
                                   "lists_other": ["RfMkt1 (marketing): missing at the vendor"]}]
    assert report["repairs_queued"] == 0
    r = app.extensions["redis"]
    assert r.zcard(dirty_key("klaviyo")) == 0
    sync_stats = requests.get(f"{sandbox_server.url}/_sandbox/stats", timeout=5).json()
    run_queue(app, "klaviyo")
    assert requests.get(f"{sandbox_server.url}/_sandbox/stats", timeout=5).json().get("klaviyo POST subscribe") == \
        sync_stats.get("klaviyo POST subscribe")
    held = holds(sandbox_server, "klaviyo", "cleo@example.com")
    assert held["marketing_consent"] is False and held["lists"] == ["RfTxn1"]
    assert audit.history(r, "cleo@example.com")[0]["repair"] is False


def test_a_contact_the_vendor_lost_is_pushed_again_as_new(app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    sandbox_server.app.extensions["sandbox"].delete("splio", "cleo@example.com")
    report = run(app, "splio", emails=["cleo@example.com"])
    assert report["findings"] == [{"email": "cleo@example.com", "repair": True, "missing": True}]
    run_queue(app, "splio")
    held = holds(sandbox_server, "splio", "cleo@example.com")
    assert held["deleted"] is False and held["lists"] == ["25", "26"]


def test_contacts_waiting_for_a_push_are_not_audited(app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    drift(sandbox_server, "splio", "anna@example.com", fields={"referral_turnover_generated": 1.5})
    with app.app_context():
        sync.redirty("splio", ["anna@example.com"])
        assert "anna@example.com" not in audit.sample("splio", 50)
        report = audit.audit("splio", size=50)
    assert report["checked"] == 4 and report["out_of_step"] == 0


def test_the_sample_is_drawn_from_the_contacts_pushed_to_the_connector(app) -> None:  # type: ignore[no-untyped-def]
    r = app.extensions["redis"]
    with app.app_context():
        sampled = audit.sample("splio", 50)
        assert set(sampled) == set(PEOPLE)
        r.hdel(keys.contact("anna@example.com"), pushstate.field("splio"))   # as if never pushed there
        r.zadd(keys.CONTACT_INDEX, {"ghost@example.com": 1.0})               # in the index, no state
        assert set(audit.sample("splio", 50)) == set(PEOPLE) - {"anna@example.com"}
        assert len(audit.sample("splio", 2)) == 2


def test_a_repair_in_a_klaviyo_import_job_still_running_is_left_to_the_job(app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    # Two drifted profiles go back in one bulk import job, which Klaviyo keeps processing a while.
    for email in ("anna@example.com", "ben@example.com"):
        drift(sandbox_server, "klaviyo", email, fields={TURNOVER["klaviyo"]: 1.5})
    assert run(app, "klaviyo", size=50)["repairs_queued"] == 2
    requests.post(f"{sandbox_server.url}/_sandbox/klaviyo/jobs", json={"processing_polls": 1},
                  timeout=5).raise_for_status()
    r = app.extensions["redis"]
    with app.app_context():
        sync.flush("klaviyo")
        refs = [ref.decode() for ref in r.zrange(vendorjobs.JOBS.format("klaviyo"), 0, -1)]
        assert len(refs) == 1 and r.zcard(dirty_key("klaviyo")) == 0
        assert {"anna@example.com", "ben@example.com"}.isdisjoint(audit.sample("klaviyo", 50))
    waiting = run(app, "klaviyo", emails=["anna@example.com", "ben@example.com"])
    assert (waiting["checked"], waiting["changed_meanwhile"], waiting["repairs_queued"]) == (0, 2, 0)
    assert r.zcard(dirty_key("klaviyo")) == 0, "no second push while the job runs"
    assert counters(app).get(("klaviyo", "repaired")) is None
    with app.app_context():
        assert vendorchecks.check("klaviyo", refs[0])["finished"] is True
    # The repair landed with the job: counted, in the history, and the vendor is in step.
    assert counters(app)[("klaviyo", "repaired")] == 2 and r.get(repairs.OPEN.format("klaviyo")) == b"0"
    assert audit.history(r, "anna@example.com")[0]["event"] == "repaired"
    again = run(app, "klaviyo", size=50)
    assert (again["in_step"], again["out_of_step"]) == (5, 0)


def test_paused_or_backing_off_connectors_are_not_audited(app) -> None:  # type: ignore[no-untyped-def]
    with app.app_context():
        sync.pause("splio", "maintenance")
        assert audit.audit("splio")["skipped"] == "paused"
        sync.resume("splio")
        app.extensions["redis"].set(sync.BACKOFF.format("splio"), str(time.time() + 60))
        assert audit.audit("splio")["skipped"] == "backing off"


def test_reads_keep_to_their_share_of_the_shared_limit(redis_client) -> None:  # type: ignore[no-untyped-def]
    """Two calls a minute for everyone; the audit's share (0.5) is one: its second read stops the
    audit at once, while a push still gets the slot the audit left."""
    limits = ((2, 60.0),)
    reads = audit.ReadLimiter(redis_client, "hub:rl", share=0.5, deadline=time.monotonic() + 30)
    pushes = RateLimiter(redis_client, "hub:rl")
    assert reads.acquire("klaviyo:profiles", limits) == 0
    with pytest.raises(audit.Stop, match="rate_share"):
        reads.acquire("klaviyo:profiles", limits)
    assert pushes.acquire("klaviyo:profiles", limits) == 0
    assert pushes.acquire("klaviyo:profiles", limits) > 0        # reads and pushes share the one budget


def test_a_stopped_audit_keeps_what_it_compared(app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(SplioConnector, "read_batch", 2)
    calls = {"n": 0}
    real = audit.check

    def check(*args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise audit.Stop("rate_share")
        real(*args)
    monkeypatch.setattr(audit, "check", check)
    report = run(app, "splio", size=50)
    assert (report["checked"], report["stopped"]) == (2, "rate_share")
    assert app.extensions["redis"].hget(repairs.RUNS, "splio\tstopped") == b"1"


def test_settings_per_connector_and_turning_it_off(make_app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    config = {"AUDIT_INTERVAL": 600, "AUDIT_SAMPLE": 20, "AUDIT_INTERVAL_SPLIO": "0", "AUDIT_SAMPLE_KLAVIYO": "5"}
    assert audit.setting(config, "AUDIT_SAMPLE", "klaviyo") == 5 and audit.setting(config, "AUDIT_SAMPLE", "splio") == 20
    config.update({"AUDIT_BUDGET": 10.0, "KLAVIYO_API_KEY": "k", "SPLIO_API_KEY": "s", "OMETRIA_API_KEY": "o"})
    jobs = audit.periodic_audits(config)
    assert jobs == [{"name": "audit-klaviyo", "func": "hub.jobs.entry.audit", "args": ("klaviyo",),
                     "interval_seconds": 600, "timeout": 130}]
    app = make_app(SPLIO_API_KEY="splio_sandbox_demo", SPLIO_BASE_URL=f"{sandbox_server.url}/splio",
                   AUDIT_INTERVAL_SPLIO="0")
    with app.app_context():
        assert audit.audit_job("splio") == {"connector": "splio", "skipped": "audit turned off"}


def test_the_scheduled_job_returns_counts_never_addresses(app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    drift(sandbox_server, "splio", "anna@example.com", fields={"referral_turnover_generated": 1.5})
    with app.app_context():
        result = audit.audit_job("splio")
    assert result["out_of_step"] == 1 and "@" not in json.dumps(result)
    assert "@" not in app.extensions["redis"].get(audit.LAST.format("splio")).decode()


def test_cli_runs_one_audit_and_says_what_it_found(app, sandbox_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for key, value in app.config["HUB"].items():
        if isinstance(value, (str, int, float)) and key.startswith(("SPLIO_", "REDIS_URL", "FLUSH_WINDOW", "AUDIT_")):
            monkeypatch.setenv(f"HUB_{key}", str(value))
    drift(sandbox_server, "splio", "anna@example.com", fields={"referral_turnover_generated": 1.5})
    out = CliRunner().invoke(main, ["audit", "run", "splio", "--sample", "10"])
    assert out.exit_code == 0, out.output
    assert out.output.splitlines() == [
        "splio: checked 5, in step 4, out of step 1, repairs queued 1",
        "  anna@example.com: fields differ: referral_turnover_generated; repair queued"]
    unknown = CliRunner().invoke(main, ["audit", "run", "mailchimp"])
    assert unknown.exit_code == 1 and "no enabled connector named 'mailchimp'" in unknown.output
    assert "Traceback" not in unknown.output


def test_api_runs_one_audit_for_ops(app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    drift(sandbox_server, "salesforce", "ben@example.com", fields={"Referral_Friends_Invited__c": 9})
    assert client.post("/v1/connectors/salesforce/audit", json={}).status_code == 401
    assert client.post("/v1/connectors/salesforce/audit", json={}, headers=INGEST).status_code == 403
    assert client.post("/v1/connectors/nope/audit", json={}, headers=OPS).status_code == 404
    bad = client.post("/v1/connectors/salesforce/audit", json={"sample": 0}, headers=OPS)
    assert bad.status_code == 422 and bad.json["error"]["details"] == {"field": "sample"}
    for contacts in (["x"], [], "a@example.com", ["a" * 250 + "@example.com"]):
        refused = client.post("/v1/connectors/salesforce/audit", json={"contacts": contacts}, headers=OPS)
        assert refused.status_code == 422 and refused.json["error"]["details"] == {"field": "contacts"}
    # A lone surrogate is no text: refused as a bad body before the route reads it, like every route.
    assert client.post("/v1/connectors/salesforce/audit", json={"contacts": ["\ud800@example.com"]},
                       headers=OPS).status_code == 400
    answer = client.post("/v1/connectors/salesforce/audit", json={"contacts": ["Ben@Example.com"]}, headers=OPS)
    assert answer.status_code == 200
    assert answer.json["findings"] == [{"email": "ben@example.com", "repair": True,
                                        "fields": ["Referral_Friends_Invited__c"]}]


def test_contact_view_shows_the_audit_history(app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    drift(sandbox_server, "emarsys", "ben@example.com", fields={"12001": "0"})
    run(app, "emarsys", size=50)
    view = app.test_client().get("/v1/contacts/ben@example.com", headers=OPS).json
    assert [(h["connector"], h["event"], h["fields"]) for h in view["audit"]] == [("emarsys", "mismatch", ["12001"])]


def traces(r: Any, email: str) -> set[str]:
    """Every key whose name or content mentions the address."""
    found = set()
    for name in r.scan_iter(count=1000):
        kind = r.type(name).decode()
        if kind == "string":
            content = [r.get(name)]
        elif kind == "hash":
            content = [x for pair in r.hgetall(name).items() for x in pair]
        elif kind == "list":
            content = r.lrange(name, 0, -1)
        elif kind == "set":
            content = list(r.smembers(name))
        elif kind == "zset":
            content = r.zrange(name, 0, -1)
        elif kind == "stream":
            content = [x for _, entry in r.xrange(name) for pair in entry.items() for x in pair]
        else:
            content = []
        if email.encode() in name or any(email.encode() in (x or b"") for x in content):
            found.add(name.decode())
    return found


def test_erasure_leaves_no_trace_of_the_audit(app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    """Whatever else erasure keeps (another part of the hub's work), the audit adds no store of
    its own that outlives it: with an audit finding and a repair pending, erasing the person
    leaves exactly the traces it leaves without the audit."""
    r = app.extensions["redis"]
    email = "dan@example.com"

    def erase_and_flush() -> set[str]:
        assert app.test_client().post(f"/v1/contacts/{email}/erase", headers={"Authorization": "Bearer admin-token"}
                                      ).status_code == 202
        for vendor in DEMO_SETTINGS:
            run_queue(app, vendor)
        return traces(r, email)

    with app.app_context():
        drift(sandbox_server, "splio", email, fields={"firstname": "Daniel"})
        assert audit.audit("splio", emails=[email])["repairs_queued"] == 1
    assert r.hget(f"hub:c:{email}", repairs.PENDING) is not None
    with_audit = erase_and_flush()
    assert not any("audit" in name for name in with_audit)

    r.flushdb()
    post_story(app)
    for vendor in DEMO_SETTINGS:
        run_queue(app, vendor)
    without_audit = erase_and_flush()
    assert with_audit == without_audit


def test_a_vendor_error_stops_the_audit_and_its_text_stays_out_of_redis(app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    requests.post(f"{sandbox_server.url}/_sandbox/faults", timeout=5, json={
        "vendor": "splio", "status": 403, "path": "/splio/data/contacts/", "body": {"status": 403, "errors": [
            {"error_key": "id", "error": "forbidden", "error_description": "no access to anna@example.com"}]}})
    with app.app_context():
        report = audit.audit("splio", emails=["anna@example.com"])
        result = audit.audit_job("splio")
    assert report["stopped"] == "vendor_error" and report["checked"] == 0
    assert report["error"] == {"status": 403, "code": "forbidden", "message": "id: no access to anna@example.com"}
    assert result["stopped"] == "vendor_error" and "@" not in json.dumps(result)
    assert "@" not in app.extensions["redis"].get(audit.LAST.format("splio")).decode()
    assert app.extensions["redis"].hget(repairs.RUNS, "splio\tstopped") == b"2"


def test_the_hub_scheduler_runs_an_audit_per_readable_connector(app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    from rq import Queue, SimpleWorker
    from rq.serializers import JSONSerializer

    from hub.jobs.scheduler import HubScheduler, Periodic, QUEUE, periodic_jobs

    drift(sandbox_server, "emarsys", "anna@example.com", fields={"12005": "1.00"})
    config = app.config["HUB"]
    jobs = [j for j in periodic_jobs(config) if j.name.startswith("audit-")]
    assert jobs == [Periodic(f"audit-{c}", "hub.jobs.entry.audit", interval_seconds=3600, args=(c,), timeout=130)
                    for c in READABLE]
    r = app.extensions["redis"]
    scheduler = HubScheduler(r, jobs, 30)
    scheduler.register_birth()
    assert sorted(j.name for j in scheduler.enqueue_jobs()) == sorted(f"audit-{c}" for c in READABLE)
    scheduler.register_death()
    with app.app_context():
        queue = Queue(QUEUE, connection=r, serializer=JSONSerializer)
        SimpleWorker([queue], connection=r, serializer=JSONSerializer).work(burst=True)
    for connector in READABLE:
        last = json.loads(r.get(audit.LAST.format(connector)))
        assert (last["checked"], last["stopped"]) == (5, None)
    assert json.loads(r.get(audit.LAST.format("emarsys")))["repairs_queued"] == 1
    assert r.zrange(dirty_key("emarsys"), 0, -1) == [b"anna@example.com"]
