"""Klaviyo import jobs still running after a push: pending, checked later with back-off, then
finished or failed, never assumed done. The hub and the sandbox in-process over real HTTP; each
scheduled check is run by hand (the explicit synchronisation point RQ's scheduler would be)."""
from __future__ import annotations

from typing import Any

import pytest
import requests
from rq.registry import ScheduledJobRegistry

from hub.core import failed, keys, pushstate, sync, vendorchecks, vendorjobs
from hub.core.ledger import dirty_key, erase_key
from hub.core.queue import get_queues
from hub.jobs.scheduler import Periodic, periodic_jobs
from tests.hub.test_ops import INGEST, OPS, holds, post_story
from tests.story import KLAVIYO, event


@pytest.fixture
def app(make_app, sandbox_server):  # type: ignore[no-untyped-def]
    return make_app(KLAVIYO_API_KEY="pk_sandbox_demo", KLAVIYO_BASE_URL=f"{sandbox_server.url}/klaviyo")


def processing(sandbox_server, polls: int) -> None:  # type: ignore[no-untyped-def]
    requests.post(f"{sandbox_server.url}/_sandbox/klaviyo/jobs", json={"processing_polls": polls}, timeout=5).raise_for_status()


def pending_refs(app) -> list[str]:  # type: ignore[no-untyped-def]
    return sorted(r.decode() for r in app.extensions["redis"].zrange(vendorjobs.JOBS.format("klaviyo"), 0, -1))


def scheduled_checks(app) -> list[list[Any]]:  # type: ignore[no-untyped-def]
    queue = get_queues().get("klaviyo")
    jobs = [queue.fetch_job(i) for i in ScheduledJobRegistry(queue=queue).get_job_ids()]
    return sorted(j.args for j in jobs if j is not None and j.func_name == "hub.jobs.entry.check_vendor_job")


def vendor_job_contents(r) -> list[bytes]:  # type: ignore[no-untyped-def]
    """Every field, value and member of the vendor-job stores."""
    out: list[bytes] = []
    for key in r.scan_iter("hub:vjob*"):
        kind = r.type(key)
        if kind == b"hash":
            out += [x for pair in r.hgetall(key).items() for x in pair]
        elif kind == b"zset":
            out += r.zrange(key, 0, -1)
        else:
            out.append(r.get(key) or b"")
    return out


def landed(sandbox_server, emails) -> bool:  # type: ignore[no-untyped-def]
    return all((holds(sandbox_server, "klaviyo", e) or {}).get("fields") == KLAVIYO[e]["fields"] for e in emails)


def test_contacts_wait_while_the_job_runs_and_land_when_it_completes(app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    processing(sandbox_server, 2)
    post_story(app)
    r = app.extensions["redis"]
    with app.app_context():
        answer = sync.flush("klaviyo")
        refs = pending_refs(app)
        assert len(refs) == 2, "two import jobs (one joins the customers list), both still processing"
        assert scheduled_checks(app) == [["klaviyo", ref] for ref in refs]
        assert r.zcard(dirty_key("klaviyo")) == 0, "no flush pushes them again meanwhile"
        assert not any(r.hexists(keys.contact(e), pushstate.field("klaviyo")) for e in KLAVIYO), "nothing is called landed"
        assert answer["failed"] == 0
    view = app.test_client().get("/v1/contacts/cleo@example.com", headers=OPS).json["connectors"]["klaviyo"]
    assert view["pending"] is True and view["last_push"] is None
    assert all(holds(sandbox_server, "klaviyo", e) is None for e in KLAVIYO)

    with app.app_context():
        first = [vendorchecks.check("klaviyo", ref) for ref in refs]
        assert [a["next_check_in"] for a in first] == [vendorjobs.delay(1)] * 2, "the next look waits longer"
        assert not any(holds(sandbox_server, "klaviyo", e) for e in KLAVIYO)
        second = [vendorchecks.check("klaviyo", ref) for ref in refs]
        assert all(a["finished"] for a in second) and sum(a["landed"] for a in second) == 5
        assert pending_refs(app) == [] and r.hlen(vendorjobs.WAITING.format("klaviyo")) == 0
        assert r.zcard(dirty_key("klaviyo")) == 0
        assert failed.list_failed() == []
        assert sync.flush("klaviyo")["pushed"] == 0, "landed means recorded: nothing is sent again"
        assert vendorchecks.check("klaviyo", refs[0]) == {"job": refs[0], "gone": True}
    for email, want in KLAVIYO.items():
        held = holds(sandbox_server, "klaviyo", email)
        assert {k: held[k] for k in ("fields", "lists", "marketing_consent")} == want, email
    view = app.test_client().get("/v1/contacts/cleo@example.com", headers=OPS).json["connectors"]["klaviyo"]
    assert view["pending"] is False and view["last_push"]["ok"] is True


def test_a_rejected_profile_in_a_finished_job_becomes_a_failed_sync_alone(app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    processing(sandbox_server, 1)
    post_story(app)
    client = app.test_client()
    assert client.post("/v1/events", json={"events": [event(30, "referral.invited", referrer={
        "email": "reject-zed@example.com"})]}, headers=INGEST).status_code == 202
    with app.app_context():
        sync.flush("klaviyo")
        for ref in pending_refs(app):
            vendorchecks.check("klaviyo", ref)
        [item] = failed.list_failed(connector="klaviyo")
    assert item["contacts"] == ["reject-zed@example.com"] and item["code"] == "invalid"
    assert landed(sandbox_server, KLAVIYO)


def test_a_contact_that_changed_while_its_job_ran_is_pushed_again_not_called_landed(app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    processing(sandbox_server, 1)
    post_story(app)
    r = app.extensions["redis"]
    with app.app_context():
        sync.flush("klaviyo")
        refs = pending_refs(app)
        processing(sandbox_server, 0)
        assert app.test_client().post("/v1/events", json={"events": [event(31, "referral.invited", referrer={
            "email": "anna@example.com"})]}, headers=INGEST).status_code == 202
        for ref in refs:
            vendorchecks.check("klaviyo", ref)
        assert r.zscore(dirty_key("klaviyo"), "anna@example.com") is not None
        assert r.hget(keys.contact("anna@example.com"), pushstate.field("klaviyo")) is None
        assert r.hget(keys.contact("ben@example.com"), pushstate.field("klaviyo")) is not None
        assert sync.flush("klaviyo")["pushed"] == 1
    assert holds(sandbox_server, "klaviyo", "anna@example.com")["fields"]["referral_friends_invited"] == 3


def test_a_person_erased_while_the_job_ran_is_deleted_after_it(app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    processing(sandbox_server, 1)
    post_story(app)
    r = app.extensions["redis"]
    with app.app_context():
        sync.flush("klaviyo")
        refs = pending_refs(app)
        assert app.test_client().post("/v1/events", json={"events": [event(32, "contact.erased", contact={
            "email": "dan@example.com"})]}, headers=INGEST).status_code == 202
        sync.flush("klaviyo")
        # Deleted now, the job could create dan again when it completes: the deletion waits for it.
        assert r.zscore(erase_key("klaviyo"), "dan@example.com") is not None
        for ref in refs:
            vendorchecks.check("klaviyo", ref)        # the job completes, and creates dan at Klaviyo
        assert holds(sandbox_server, "klaviyo", "dan@example.com")["deleted"] is False
        sync.flush("klaviyo")
        assert r.zcard(erase_key("klaviyo")) == 0
        assert not any(b"dan@example.com" in held for held in vendor_job_contents(r)), \
            "no vendor-job store remembers the erased person"
    assert holds(sandbox_server, "klaviyo", "dan@example.com")["deleted"] is True
    assert not r.exists(keys.contact("dan@example.com")), "the erased person keeps nothing, no pushed entry either"
    assert landed(sandbox_server, [e for e in KLAVIYO if e != "dan@example.com"])


def test_a_check_lost_long_ago_is_re_armed(app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    processing(sandbox_server, 5)
    post_story(app)
    r = app.extensions["redis"]
    with app.app_context():
        sync.flush("klaviyo")
        queue = get_queues().get("klaviyo")
        registry = ScheduledJobRegistry(queue=queue)
        for job_id in registry.get_job_ids():
            registry.remove(job_id, delete_job=True)
        assert vendorjobs.sweep("klaviyo") == 0, "not late yet"
        for ref in pending_refs(app):
            r.zadd(vendorjobs.JOBS.format("klaviyo"), {ref: 1.0})
        assert vendorjobs.sweep("klaviyo") == 2
        assert len(scheduled_checks(app)) == 2


def test_lost_checks_are_looked_for_on_the_hub_scheduler() -> None:
    assert Periodic("vendor-jobs", "hub.jobs.entry.sweep_vendor_jobs", interval_seconds=60, timeout=120) in periodic_jobs(
        {"SWEEP_INTERVAL": 60})
