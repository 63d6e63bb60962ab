"""The contact view: state, per-connector sync status, resync and erase from one place."""
from __future__ import annotations

import json

import pytest
import requests
from click.testing import CliRunner

from hub.core import sync
from hub.core.ledger import dirty_key
from tests.hub.test_ops import INGEST, OPS, clear, fault, holds, post_story, run_queue

ADMIN = {"Authorization": "Bearer admin-token"}


@pytest.fixture
def app(make_app, sandbox_server):  # type: ignore[no-untyped-def]
    return make_app(KLAVIYO_API_KEY="pk_sandbox_demo", KLAVIYO_BASE_URL=f"{sandbox_server.url}/klaviyo",
                    OMETRIA_API_KEY="om_sandbox_demo", OMETRIA_BASE_URL=f"{sandbox_server.url}/ometria")


def calls(sandbox_server, vendor: str) -> int:  # type: ignore[no-untyped-def]
    return requests.get(f"{sandbox_server.url}/_sandbox/stats", timeout=5).json().get(f"{vendor} total", 0)


def test_view_shows_state_pending_then_last_push_and_failures(app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    post_story(app)
    client = app.test_client()
    before = client.get("/v1/contacts/Anna@Example.com", headers=OPS)
    assert before.status_code == 200
    view = before.json
    assert view["email"] == "anna@example.com" and view["erased"] is False
    assert view["state"]["invites_sent"] == 2 and view["state"]["turnover"] == {"GBP": "59.90"}
    assert view["connectors"]["klaviyo"] == {"last_push": None, "pending": True, "erase_pending": False,
                                             "paused": None, "failed": []}

    fault(sandbox_server, "ometria", 400, body={"message": "Payload invalid"})
    run_queue(app, "klaviyo")
    run_queue(app, "ometria")
    view = client.get("/v1/contacts/anna@example.com", headers=OPS).json
    klaviyo, ometria = view["connectors"]["klaviyo"], view["connectors"]["ometria"]
    assert klaviyo["pending"] is False and klaviyo["last_push"]["ok"] is True
    assert ometria["last_push"]["ok"] is False and ometria["last_push"]["status"] == 400
    assert [(f["status"], f["message"], f["kind"]) for f in ometria["failed"]] == [(400, "Payload invalid", "sync_contacts")]


def test_view_needs_ops_or_admin_and_knows_unknown_people(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    assert client.get("/v1/contacts/a@example.com").status_code == 401
    assert client.get("/v1/contacts/a@example.com", headers=INGEST).status_code == 403
    assert client.get("/v1/contacts/a@example.com", headers=ADMIN).status_code == 404
    assert client.get("/v1/contacts/not-an-email", headers=OPS).status_code == 422


def test_resync_pushes_again_even_when_nothing_changed(app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    post_story(app)
    run_queue(app, "klaviyo")
    run_queue(app, "ometria")
    before = calls(sandbox_server, "klaviyo")
    client = app.test_client()
    with app.app_context():
        assert sync.flush("klaviyo")["pushed"] == 0, "nothing dirty, nothing sent"
    assert calls(sandbox_server, "klaviyo") == before

    answer = client.post("/v1/contacts/cleo@example.com/resync", json={"connectors": ["klaviyo"]}, headers=OPS)
    assert answer.status_code == 202 and answer.json == {"resync": ["klaviyo"]}
    assert app.extensions["redis"].zscore(dirty_key("klaviyo"), "cleo@example.com") is not None
    assert app.extensions["redis"].zscore(dirty_key("ometria"), "cleo@example.com") is None
    run_queue(app, "klaviyo")
    assert calls(sandbox_server, "klaviyo") > before
    held = holds(sandbox_server, "klaviyo", "cleo@example.com")
    assert held["lists"] == ["RfMkt1", "RfTxn1"] and held["fields"]["referral_promo_code"] == "ANNA-20"
    assert client.post("/v1/contacts/nobody@example.com/resync", headers=OPS).status_code == 404
    assert client.post("/v1/contacts/cleo@example.com/resync", json={"connectors": ["splio"]},
                       headers=OPS).status_code == 404


def test_erase_is_admin_only_and_deletes_at_every_connector(app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    post_story(app)
    run_queue(app, "klaviyo")
    client = app.test_client()
    assert client.post("/v1/contacts/dan@example.com/erase", headers=OPS).status_code == 403
    answer = client.post("/v1/contacts/dan@example.com/erase", headers=ADMIN)
    assert answer.status_code == 202 and answer.json["connectors"] == ["klaviyo", "ometria"]
    view = client.get("/v1/contacts/dan@example.com", headers=OPS).json
    assert view["erased"] is True and view["state"] is None
    assert view["connectors"]["klaviyo"]["erase_pending"] is True
    run_queue(app, "klaviyo")
    assert holds(sandbox_server, "klaviyo", "dan@example.com")["deleted"] is True
    # A resync of an erased person cannot bring them back.
    assert client.post("/v1/contacts/dan@example.com/resync", headers=OPS).status_code == 404


def test_cli_show_resync_erase(app, sandbox_server, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from hub.cli import main

    post_story(app)
    monkeypatch.setenv("HUB_REDIS_URL", app.config["HUB"]["REDIS_URL"])
    monkeypatch.setenv("HUB_KLAVIYO_API_KEY", "pk_sandbox_demo")
    monkeypatch.setenv("HUB_KLAVIYO_BASE_URL", f"{sandbox_server.url}/klaviyo")
    runner = CliRunner()
    shown = runner.invoke(main, ["contacts", "show", "ben@example.com"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["state"]["turnover"] == {"EUR": "120.00"}
    assert runner.invoke(main, ["contacts", "show", "nobody@example.com"]).exit_code == 1
    assert runner.invoke(main, ["contacts", "resync", "ben@example.com"]).output == "resync queued for klaviyo\n"
    erased = runner.invoke(main, ["contacts", "erase", "ben@example.com", "--yes"])
    assert erased.output.startswith("erased; deletion queued for klaviyo")
    clear(sandbox_server, "klaviyo")


@pytest.mark.parametrize("change", ["pushed", "unchanged"])
def test_a_resync_during_a_flush_is_never_lost(app, sandbox_server, monkeypatch: pytest.MonkeyPatch,
                                               change: str) -> None:  # type: ignore[no-untyped-def]
    """Ops ask for a resync after a flush read the contact and before it recorded the outcome
    (explicit synchronisation: the request is made from inside the flush, at that point, once).
    The vendor must get the contact again after the request, whatever that flush sent."""
    post_story(app)
    run_queue(app, "klaviyo")
    client = app.test_client()
    if change == "pushed":      # the flush sends Cleo: her state changed
        touch = {"id": "evt-race", "type": "contact.updated", "occurred_at": "2026-11-22T10:00:00Z",
                 "contact": {"email": "cleo@example.com", "first_name": "Cleopatra"}}
        assert client.post("/v1/events", json=touch, headers=INGEST).status_code == 202
    else:                       # the flush finds Cleo as the vendor holds her and sends nothing
        with app.app_context():
            sync.redirty("klaviyo", ["cleo@example.com"])
    settle, asked = sync.queue_settle, []    # the settle step is queued, then sent with the push's other writes

    def resync_then_settle(*args, **kwargs):  # type: ignore[no-untyped-def]
        if not asked:
            answer = client.post("/v1/contacts/cleo@example.com/resync", json={"connectors": ["klaviyo"]}, headers=OPS)
            assert answer.status_code == 202
            asked.append(calls(sandbox_server, "klaviyo"))
        return settle(*args, **kwargs)

    monkeypatch.setattr(sync, "queue_settle", resync_then_settle)
    before = calls(sandbox_server, "klaviyo")
    with app.app_context():
        sync.flush("klaviyo")
        assert asked, "the flush never reached the point the resync is made at"
        assert (asked[0] > before) is (change == "pushed")
        sync.flush("klaviyo")       # whatever the racing flush left for the next one
    assert calls(sandbox_server, "klaviyo") > asked[0], "the resync was lost: nothing sent after it"
    assert app.extensions["redis"].zscore(dirty_key("klaviyo"), "cleo@example.com") is None
    assert holds(sandbox_server, "klaviyo", "cleo@example.com")["fields"]["first_name"] == \
        ("Cleopatra" if change == "pushed" else "Cleo")
