"""The mappings admin API and CLI: versions, If-Match, validation, preview against the real push,
rollback, export/import, re-sync, roles."""
from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import requests
from click.testing import CliRunner

from tests.conftest import TOKENS
from tests.story import event, story

ADMIN = {"Authorization": "Bearer admin-token"}
KLAVIYO_KEY = "pk_sandbox_demo"


def get(client, path: str, **kw):  # type: ignore[no-untyped-def]
    return client.get(path, headers={**ADMIN, **kw.pop("headers", {})}, **kw)


def send(client, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    # json.dumps, not json=: the test client would sort the keys, and order is part of "exact".
    return client.open(path, method=method, data=json.dumps(body), content_type="application/json",
                       headers={**ADMIN, **(headers or {})})


def renamed(document: dict[str, Any], old: str = "referral_friends_invited", new: str = "referral_invites_sent") -> dict[str, Any]:
    document = copy.deepcopy(document)
    for rule in document["fields"]:
        if rule["target"] == old:
            rule["target"] = new
    return document


def post_story(client) -> None:  # type: ignore[no-untyped-def]
    response = client.post("/v1/events", json={"events": story()}, headers={"Authorization": "Bearer ingest-token"})
    assert response.status_code == 202, response.get_json()


def flush(app) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from hub.core.sync import flush as run

    with app.app_context():
        return run("klaviyo")


def held(sandbox_server, email: str) -> dict[str, Any]:
    return requests.get(f"{sandbox_server.url}/_sandbox/klaviyo/contacts/{email}", timeout=5).json()


def writes(calls: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    """The calls that change something at the vendor (polls and lookups left out)."""
    return [(c["method"], c["path"], c["body"]) for c in calls if c["method"] != "GET"]


def sandbox_writes(sandbox_server) -> list[tuple[str, str, Any]]:  # type: ignore[no-untyped-def]
    rows = requests.get(f"{sandbox_server.url}/_sandbox/requests", params={"vendor": "klaviyo"}, timeout=5).json()
    return writes(rows["requests"])


def forget_requests(sandbox_server) -> None:  # type: ignore[no-untyped-def]
    requests.delete(f"{sandbox_server.url}/_sandbox/requests", timeout=5)


@pytest.fixture
def client(hub_app):  # type: ignore[no-untyped-def]
    return hub_app.test_client()


# -- reading and versions ------------------------------------------------------------------------
def test_get_returns_the_default_as_version_zero_with_an_etag(client) -> None:  # type: ignore[no-untyped-def]
    from hub.core.mappingstore import default_document

    response = get(client, "/v1/mappings/klaviyo")
    assert response.status_code == 200
    body = response.get_json()
    assert body["version"] == 0 and body["document"] == default_document("klaviyo")
    assert response.headers["ETag"] == body["etag"] and body["etag"].startswith('"v0-')
    assert get(client, "/v1/mappings/mailchimp").status_code == 404


def test_roles_a_non_admin_token_gets_403_and_no_token_401(client) -> None:  # type: ignore[no-untyped-def]
    for token in ("ingest-token", "ops-token"):
        response = client.get("/v1/mappings/klaviyo", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 403, token
        assert response.get_json()["error"]["code"] == "forbidden"
        assert client.put("/v1/mappings/klaviyo", json={}, headers={"Authorization": f"Bearer {token}",
                                                                     "If-Match": "*"}).status_code == 403
        assert client.get("/v1/connectors", headers={"Authorization": f"Bearer {token}"}).status_code == 403
    assert client.get("/v1/mappings/klaviyo/history").status_code == 401
    assert client.post("/v1/mappings/klaviyo/rollback", json={"version": 0},
                       headers={"Authorization": "Bearer nope"}).status_code == 401


def test_put_needs_if_match_and_a_stale_one_gets_412(client) -> None:  # type: ignore[no-untyped-def]
    current = get(client, "/v1/mappings/klaviyo").get_json()
    document = renamed(current["document"])
    missing = send(client, "PUT", "/v1/mappings/klaviyo", {"document": document})
    assert missing.status_code == 428 and missing.get_json()["error"]["code"] == "precondition_required"

    first = send(client, "PUT", "/v1/mappings/klaviyo", {"document": document, "comment": "rename"},
                 {"If-Match": current["etag"], "X-Hub-Author": "carla"})
    assert first.status_code == 200, first.get_json()
    saved = first.get_json()
    assert saved["version"] == 1 and first.headers["ETag"] == saved["etag"] != current["etag"]
    assert saved["author"] == "carla"
    assert saved["changes"]["fields"] == {"added": ["referral_invites_sent"], "removed": ["referral_friends_invited"],
                                          "changed": []}

    # A second admin still holding version 0's ETag is refused, and told where the mapping is now.
    stale = send(client, "PUT", "/v1/mappings/klaviyo", {"document": current["document"]}, {"If-Match": current["etag"]})
    assert stale.status_code == 412
    assert stale.get_json()["error"]["details"] == {"version": 1, "etag": saved["etag"]}
    assert get(client, "/v1/mappings/klaviyo").get_json()["document"] == document


def test_the_bare_document_is_accepted_too_and_the_author_defaults_to_a_token_fingerprint(client) -> None:  # type: ignore[no-untyped-def]
    current = get(client, "/v1/mappings/klaviyo").get_json()
    response = client.put("/v1/mappings/klaviyo?comment=bare", json=renamed(current["document"]),
                          headers={**ADMIN, "If-Match": current["etag"]})
    assert response.status_code == 200, response.get_json()
    entry = get(client, "/v1/mappings/klaviyo/history").get_json()["versions"][0]
    assert entry["comment"] == "bare" and entry["author"].startswith("token:")
    assert "admin-token" not in json.dumps(entry)


def test_an_invalid_document_is_refused_with_paths_and_nothing_is_saved(client) -> None:  # type: ignore[no-untyped-def]
    current = get(client, "/v1/mappings/klaviyo").get_json()
    document = copy.deepcopy(current["document"])
    document["fields"][4]["transform"] = "int"
    document["lists"][0]["when"] = "always_if_rich"
    document["connector"] = "splio"
    response = send(client, "PUT", "/v1/mappings/klaviyo", {"document": document}, {"If-Match": current["etag"]})
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "invalid_mapping"
    paths = {d["path"] for d in error["details"]}
    assert {"fields.4.transform", "lists.0.when", "connector"} <= paths
    assert get(client, "/v1/mappings/klaviyo").get_json()["version"] == 0

    check = send(client, "POST", "/v1/mappings/klaviyo/validate", document).get_json()
    assert check["valid"] is False and {d["path"] for d in check["errors"]} == paths


def test_history_and_rollback_restore_the_exact_document(client, redis_client) -> None:  # type: ignore[no-untyped-def]
    v0 = get(client, "/v1/mappings/klaviyo").get_json()
    first = renamed(v0["document"])
    first["fields"].append({"target": "opted_in", "source": "marketing_opt_in", "transform": "boolean", "as": "yes_no"})
    r1 = send(client, "PUT", "/v1/mappings/klaviyo", {"document": first, "comment": "one"}, {"If-Match": v0["etag"]}).get_json()
    second = renamed(first, "referral_turnover", "referral_revenue")
    r2 = send(client, "PUT", "/v1/mappings/klaviyo", {"document": second, "comment": "two"}, {"If-Match": r1["etag"]}).get_json()
    assert r2["version"] == 2

    back = send(client, "POST", "/v1/mappings/klaviyo/rollback", {"version": 1, "comment": "undo two"})
    assert back.status_code == 200, back.get_json()
    assert back.get_json()["version"] == 3
    now = get(client, "/v1/mappings/klaviyo").get_json()
    assert now["document"] == first
    stored = json.loads(redis_client.get("hub:mapping:klaviyo:current"))["document"]
    assert json.dumps(stored) == json.dumps(first), "stored as written, key order included"
    assert now["action"] == "rollback"

    versions = get(client, "/v1/mappings/klaviyo/history").get_json()["versions"]
    assert [v["version"] for v in versions] == [3, 2, 1, 0]
    assert [v["comment"] for v in versions] == ["undo two", "two", "one", "the shipped default"]
    assert versions[0]["current"] and versions[0]["rolled_back_to"] == 1 and "document" not in versions[0]
    assert get(client, "/v1/mappings/klaviyo/versions/2").get_json()["document"] == second

    # Back to the shipped default, guarded by If-Match like a PUT.
    assert send(client, "POST", "/v1/mappings/klaviyo/rollback", {"version": 0},
                {"If-Match": r2["etag"]}).status_code == 412
    assert send(client, "POST", "/v1/mappings/klaviyo/rollback", {"version": 0},
                {"If-Match": now["etag"]}).status_code == 200
    assert get(client, "/v1/mappings/klaviyo").get_json()["document"] == v0["document"]
    assert send(client, "POST", "/v1/mappings/klaviyo/rollback", {"version": 42}).status_code == 404


def test_sync_renders_with_the_saved_mapping(hub_app, client, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    post_story(client)
    flush(hub_app)
    assert held(sandbox_server, "anna@example.com")["fields"]["referral_friends_invited"] == 2
    current = get(client, "/v1/mappings/klaviyo").get_json()
    assert send(client, "PUT", "/v1/mappings/klaviyo", {"document": renamed(current["document"])},
                {"If-Match": current["etag"]}).status_code == 200
    flush(hub_app)
    assert held(sandbox_server, "anna@example.com")["fields"]["referral_invites_sent"] == 2


# -- preview -------------------------------------------------------------------------------------
def test_preview_of_one_contact_equals_what_the_sync_then_sends(hub_app, client, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    client.post("/v1/events", json=event(1, "referral.invited", referrer={"email": "zoe@example.com", "first_name": "Zoe"}),
                headers={"Authorization": "Bearer ingest-token"})
    preview = send(client, "POST", "/v1/mappings/klaviyo/preview", {"email": "Zoe@example.com"}).get_json()
    assert preview["sent"] is False and preview["contacts"][0]["status"] == "would_push"
    assert preview["contacts"][0]["fields"]["referral_friends_invited"] == 1
    assert held(sandbox_server, "zoe@example.com").get("error"), "a preview must send nothing"
    call = preview["requests"][0]
    assert call["method"] == "POST" and call["path"] == "/klaviyo/api/profile-import"
    assert call["headers"]["Authorization"] == "Klaviyo-API-Key ****"
    assert call["headers"]["revision"] and KLAVIYO_KEY not in json.dumps(preview)

    forget_requests(sandbox_server)
    flush(hub_app)
    assert sandbox_writes(sandbox_server) == writes(preview["requests"])
    again = send(client, "POST", "/v1/mappings/klaviyo/preview", {"email": "zoe@example.com"}).get_json()
    assert again["contacts"][0]["status"] == "unchanged" and again["requests"] == []
    forced = send(client, "POST", "/v1/mappings/klaviyo/preview", {"email": "zoe@example.com", "force": True}).get_json()
    assert writes(forced["requests"]) == writes(preview["requests"])


def test_preview_of_a_draft_batch_equals_the_resync_after_apply(hub_app, client, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    post_story(client)
    flush(hub_app)
    current = get(client, "/v1/mappings/klaviyo").get_json()
    draft = renamed(current["document"])
    emails = sorted(["anna@example.com", "ben@example.com", "cleo@example.com", "dan@example.com", "eve@example.com"])
    preview = send(client, "POST", "/v1/mappings/klaviyo/preview", {"emails": emails, "document": draft}).get_json()
    assert preview["mapping"] == {"draft": True}
    # Only referrers carry invites_sent: the friends render the same and cost nothing.
    assert [c["status"] for c in preview["contacts"]] == ["would_push", "would_push", "unchanged", "unchanged", "unchanged"]
    assert get(client, "/v1/mappings/klaviyo").get_json()["version"] == 0, "a draft preview saves nothing"

    dry = send(client, "POST", "/v1/mappings/klaviyo/validate", {"document": draft}).get_json()
    assert dry["valid"] and dry["resync"] == {"contacts": 5, "dry_run": True}
    assert dry["live_check"].startswith("skipped: the platform accepts any field name")
    applied = send(client, "PUT", "/v1/mappings/klaviyo", {"document": draft, "comment": "rename"},
                   {"If-Match": current["etag"]}).get_json()
    assert applied["resync"] == {"contacts": 5, "marked": True, "dry_run": False}
    forget_requests(sandbox_server)
    flush(hub_app)
    assert sandbox_writes(sandbox_server) == writes(preview["requests"])
    assert held(sandbox_server, "ben@example.com")["fields"]["referral_invites_sent"] == 1


def test_preview_of_a_sample_event_changes_nothing(hub_app, client, redis_client) -> None:  # type: ignore[no-untyped-def]
    post_story(client)
    flush(hub_app)
    before = {k: redis_client.dump(k) for k in redis_client.keys("hub:c:*")}
    dirty_before = redis_client.zcard("hub:dirty:klaviyo")
    sample = event(90, "friend.converted", referrer={"email": "anna@example.com"},
                   friend={"email": "dan@example.com"},
                   order={"id": "ord_new", "total": "10.00", "currency": "GBP"})
    preview = send(client, "POST", "/v1/mappings/klaviyo/preview", {"event": sample}).get_json()
    assert preview["event"] == {"id": "evt_090", "duplicate": False, "touches": ["anna@example.com", "dan@example.com"]}
    anna = next(c for c in preview["contacts"] if c["email"] == "anna@example.com")
    assert anna["fields"]["referral_friends_converted"] == 2 and anna["fields"]["referral_turnover"] == 69.9
    dan = next(c for c in preview["contacts"] if c["email"] == "dan@example.com")
    assert dan["fields"]["referral_converted_at"] == "2026-11-21T10:01:30Z"
    # Dan joins the customers list, Anna does not: one bulk import job each.
    jobs = [c["body"]["data"] for c in preview["requests"] if c["method"] == "POST"]
    assert [c["path"] for c in preview["requests"] if c["method"] == "POST"] == ["/klaviyo/api/profile-bulk-import-jobs"] * 2
    by_list = {tuple(r["id"] for r in j.get("relationships", {}).get("lists", {}).get("data", [])):
               [p["attributes"]["email"] for p in j["attributes"]["profiles"]["data"]] for j in jobs}
    assert by_list == {(): ["anna@example.com"], ("RfTxn1",): ["dan@example.com"]}
    assert {k: redis_client.dump(k) for k in redis_client.keys("hub:c:*")} == before
    assert redis_client.zcard("hub:dirty:klaviyo") == dirty_before and not redis_client.keys("hub:preview:*")
    assert not redis_client.exists("hub:seen:evt_090") and not redis_client.exists("hub:order:ord_new")

    seen = send(client, "POST", "/v1/mappings/klaviyo/preview", {"event": story()[0]}).get_json()
    assert seen["event"]["duplicate"] is True and seen["requests"] == []
    bad = send(client, "POST", "/v1/mappings/klaviyo/preview", {"event": {"id": "x", "type": "friend.exploded"}})
    assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "invalid_event"


# -- live account validation -----------------------------------------------------------------------
@pytest.fixture
def splio_app(make_app, sandbox_server):  # type: ignore[no-untyped-def]
    return make_app(SPLIO_API_KEY="splio_sandbox_demo", SPLIO_BASE_URL=f"{sandbox_server.url}/splio")


def test_a_field_the_account_lacks_is_refused_before_saving(splio_app) -> None:  # type: ignore[no-untyped-def]
    client = splio_app.test_client()
    current = get(client, "/v1/mappings/splio").get_json()
    document = renamed(current["document"], "referral_nb_converted_customers", "referral_nb_converted_custmers")
    response = send(client, "PUT", "/v1/mappings/splio", {"document": document}, {"If-Match": current["etag"]})
    assert response.status_code == 422
    assert response.get_json()["error"]["details"] == [{
        "path": "fields.4.target",
        "message": "the Splio account has no field 'referral_nb_converted_custmers'; "
                   "did you mean 'referral_nb_converted_customers'?"}]
    assert get(client, "/v1/mappings/splio").get_json()["version"] == 0
    # Standard contact keys are not in the custom field listing and pass.
    fine = send(client, "POST", "/v1/mappings/splio/validate", current["document"]).get_json()
    assert fine["valid"] and fine["live_check"].startswith("passed")
    skipped = send(client, "PUT", "/v1/mappings/splio?live=false", {"document": document}, {"If-Match": current["etag"]})
    assert skipped.status_code == 200 and skipped.get_json()["live_check"] == "skipped on request"


def test_connectors_list_check_and_fields(splio_app) -> None:  # type: ignore[no-untyped-def]
    client = splio_app.test_client()
    rows = {c["name"]: c for c in get(client, "/v1/connectors").get_json()["connectors"]}
    assert rows["splio"]["enabled"] and rows["splio"]["settings"]["api_key"] == "****"
    assert not rows["klaviyo"]["enabled"] and "splio_sandbox_demo" not in json.dumps(rows)
    assert get(client, "/v1/connectors/splio/check").get_json()["ok"] is True
    fields = get(client, "/v1/connectors/splio/fields").get_json()
    assert not fields["free_form"] and "referral_nb_converted_customers" in {f["name"] for f in fields["fields"]}
    assert get(client, "/v1/connectors/klaviyo/check").status_code == 409


def test_check_reports_rejected_credentials(make_app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    app = make_app(KLAVIYO_API_KEY="pk_wrong_key", KLAVIYO_BASE_URL=f"{sandbox_server.url}/klaviyo")
    body = get(app.test_client(), "/v1/connectors/klaviyo/check").get_json()
    assert body["ok"] is False and body["error"]["status"] == 401 and "pk_wrong_key" not in json.dumps(body)


# -- export / import --------------------------------------------------------------------------------
def test_export_then_import_round_trip_with_etag_guard(client) -> None:  # type: ignore[no-untyped-def]
    exported = get(client, "/v1/mappings/export").get_json()
    assert set(exported["mappings"]) >= {"klaviyo", "ometria", "splio"}
    edited = copy.deepcopy(exported)
    edited["mappings"]["klaviyo"]["document"] = renamed(exported["mappings"]["klaviyo"]["document"])
    dry = send(client, "POST", "/v1/mappings/import?dry_run=1", edited).get_json()
    assert set(dry["imported"]) == {"klaviyo"} and dry["imported"]["klaviyo"]["saved"] is False
    done = send(client, "POST", "/v1/mappings/import?comment=bulk", edited).get_json()
    assert done["imported"]["klaviyo"]["version"] == 1 and "splio" in done["unchanged"]

    # The same file again is stale for klaviyo only if klaviyo moved on meanwhile.
    other = copy.deepcopy(edited)
    other["mappings"]["klaviyo"]["document"] = renamed(edited["mappings"]["klaviyo"]["document"],
                                                       "referral_turnover", "referral_revenue")
    stale = send(client, "POST", "/v1/mappings/import", other)
    assert stale.status_code == 412 and stale.get_json()["error"]["details"][0]["path"] == "mappings.klaviyo.etag"
    forced = send(client, "POST", "/v1/mappings/import?force=1", other)
    assert forced.status_code == 200 and forced.get_json()["imported"]["klaviyo"]["version"] == 2

    broken = copy.deepcopy(other)
    broken["mappings"]["splio"]["document"]["fields"][0]["source"] = "shoe_size"
    broken["mappings"]["klaviyo"]["document"] = exported["mappings"]["klaviyo"]["document"]
    refused = send(client, "POST", "/v1/mappings/import?force=1", broken)
    assert refused.status_code == 422
    assert refused.get_json()["error"]["details"][0]["path"] == "mappings.splio.document.fields.0.source"
    assert get(client, "/v1/mappings/klaviyo").get_json()["version"] == 2, "all or nothing"


# -- the CLI ----------------------------------------------------------------------------------------
def test_cli_apply_history_preview_rollback(hub_app, client, sandbox_server, tmp_path, redis_url) -> None:  # type: ignore[no-untyped-def]
    from hub.cli import main

    post_story(client)
    flush(hub_app)
    env = {"HUB_REDIS_URL": redis_url, "HUB_KLAVIYO_API_KEY": KLAVIYO_KEY, "HUB_FLUSH_WINDOW": "0",
           "HUB_KLAVIYO_BASE_URL": f"{sandbox_server.url}/klaviyo", "HUB_AUTHOR": "carla",
           **{f"HUB_{k}": v for k, v in TOKENS.items()}}
    runner = CliRunner()
    shown = runner.invoke(main, ["mappings", "show", "klaviyo", "--document"], env=env)
    assert shown.exit_code == 0, shown.output
    path = tmp_path / "klaviyo.json"
    path.write_text(json.dumps(renamed(json.loads(shown.output))))

    preview = runner.invoke(main, ["mappings", "preview", "klaviyo", "--email", "anna@example.com",
                                   "--mapping", str(path)], env=env)
    assert preview.exit_code == 0, preview.output
    assert json.loads(preview.output)["contacts"][0]["fields"]["referral_invites_sent"] == 2

    dry = runner.invoke(main, ["mappings", "apply", "klaviyo", str(path), "--dry-run"], env=env)
    assert json.loads(dry.output)["resync"] == {"contacts": 5, "marked": False, "dry_run": True}
    applied = runner.invoke(main, ["mappings", "apply", "klaviyo", str(path), "-m", "rename invites"], env=env)
    assert applied.exit_code == 0, applied.output
    assert json.loads(applied.stdout)["resync"]["marked"] is True
    progress = [line for line in applied.stderr.splitlines() if line.startswith("resync klaviyo")]
    assert progress[0] == "resync klaviyo: 5 contacts to do", "progress goes to stderr"
    assert progress[-2].startswith("resync klaviyo: 5/5 contacts (100%)")
    assert progress[-1].startswith("resync klaviyo: done, 5 contacts")
    flush(hub_app)
    assert held(sandbox_server, "anna@example.com")["fields"]["referral_invites_sent"] == 2

    history = runner.invoke(main, ["mappings", "history", "klaviyo"], env=env)
    lines = history.output.splitlines()
    assert lines[0].startswith("* v1") and "carla" in lines[0] and "rename invites" in lines[0]
    back = runner.invoke(main, ["mappings", "rollback", "klaviyo", "0", "-m", "undo"], env=env)
    assert back.exit_code == 0 and json.loads(back.stdout)["version"] == 2

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"connector": "klaviyo", "identity": {"field": "email", "source": "email"},
                               "fields": [{"target": "x", "source": "nope"}]}))
    refused = runner.invoke(main, ["mappings", "apply", "klaviyo", str(bad)], env=env)
    assert refused.exit_code == 1 and "fields.0.source: unknown source nope" in refused.output
    listed = runner.invoke(main, ["connectors", "list"], env=env)
    assert listed.exit_code == 0 and "klaviyo     enabled" in listed.output and KLAVIYO_KEY not in listed.output


def comparable(calls: list[tuple[str, str, Any]]) -> list[tuple[str, str, Any]]:
    """Writes minus the logins (their secrets are masked in a preview), with what the vendor assigns
    (Salesforce Contact ids) and the clock (Ometria's consent timestamps) blanked."""
    out = []
    for method, path, body in calls:
        if path.endswith(("/authenticate", "/oauth2/token")):
            continue
        if isinstance(body, dict) and isinstance(body.get("records"), list):
            body = {**body, "records": [{**r, "ContactId": "<vendor id>"} if "ContactId" in r else r
                                        for r in body["records"]]}
        if isinstance(body, list):
            body = [{k: ("<now>" if k.startswith("timestamp_") else v) for k, v in r.items()} for r in body]
        out.append((method, path, body))
    return out


@pytest.mark.parametrize("vendor", ["emarsys", "salesforce", "ometria", "splio"])
def test_preview_equals_the_real_push_for_every_vendor(make_app, sandbox_server, redis_client, vendor: str) -> None:  # type: ignore[no-untyped-def]
    from sandbox import DEMO_SETTINGS

    settings = {f"{vendor.upper()}_{k.upper()}": v for k, v in DEMO_SETTINGS[vendor].items()}
    app = make_app(**settings, **{f"{vendor.upper()}_BASE_URL": f"{sandbox_server.url}/{vendor}"})
    client = app.test_client()
    post_story(client)
    # The batch a flush takes: the dirty contacts in the order they became dirty.
    emails = [e.decode() for e in redis_client.zrange(f"hub:dirty:{vendor}", 0, -1)]
    assert len(emails) == 5
    preview = send(client, "POST", f"/v1/mappings/{vendor}/preview", {"emails": emails}).get_json()
    assert all(c["status"] == "would_push" for c in preview["contacts"])
    from connectors import CONNECTORS

    for name in CONNECTORS[vendor].secret_settings:
        if DEMO_SETTINGS[vendor].get(name):
            assert DEMO_SETTINGS[vendor][name] not in json.dumps(preview), f"{name} leaked into the preview"
    forget_requests(sandbox_server)
    from hub.core.sync import flush as run

    with app.app_context():
        assert run(vendor)["failed"] == 0
    rows = requests.get(f"{sandbox_server.url}/_sandbox/requests", params={"vendor": vendor}, timeout=5).json()
    real = comparable(writes(rows["requests"]))
    assert real and real == comparable(writes(preview["requests"]))
