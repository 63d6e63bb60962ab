"""The CRM admin pages without a browser (the Flask test client, a real Redis, the sandbox over
HTTP): the table, the editor's errors next to their fields, the preview's diff, apply with the
ETag and its conflict, the re-sync offer, history and rollback, and the role and CSRF checks on
the server. The browser journey is tests/console/test_admin_journey.py."""
from __future__ import annotations

import re
from typing import Any

import pytest

from hub.core.mappingstore import default_document
from tests.console.test_admin_form import as_form
from tests.hub.test_console_sessions import csrf, sign_in
from tests.hub.test_mappings_admin import flush, held, post_story


@pytest.fixture
def app(make_app, sandbox_server):  # type: ignore[no-untyped-def]
    app = make_app(KLAVIYO_API_KEY="pk_sandbox_demo", KLAVIYO_BASE_URL=f"{sandbox_server.url}/klaviyo",
                   ADMIN_TOKENS="carla:admin-carla,dana:admin-dana", OPS_TOKENS="olga:ops-olga")
    app.sandbox = sandbox_server      # type: ignore[attr-defined]
    return app


def signed(app, token: str):  # type: ignore[no-untyped-def]
    client = app.test_client()
    assert sign_in(client, token).status_code == 302
    return client


def edit_form(client, connector: str = "klaviyo") -> dict[str, str]:  # type: ignore[no-untyped-def]
    page = client.get(f"/console/mappings/{connector}/edit")
    assert page.status_code == 200, page.text
    version = re.search(r'name="version" value="(\d+)"', page.text).group(1)        # type: ignore[union-attr]
    etag = re.search(r'name="etag" value="([^"]+)"', page.text).group(1)           # type: ignore[union-attr]
    from hub.core.mappingstore import current
    document = current(client.application.extensions["redis"], connector)["document"]
    return {**as_form(document), "csrf": csrf(page.text), "version": version, "etag": etag.replace("&#34;", '"')}


def rename(form: dict[str, str], old: str, new: str) -> None:
    key = next(k for k, v in form.items() if k.endswith("-target") and v == old)
    form[key] = new


def add_list(form: dict[str, str], list_id: str, kind: str = "marketing", when: str = "marketing_opt_in") -> None:
    blank = int(form["list-count"]) - 1
    form.update({f"list-{blank}-id": list_id, f"list-{blank}-kind": kind, f"list-{blank}-when": when})


def test_the_table_page_reads_field_from_stat(app) -> None:  # type: ignore[no-untyped-def]
    page = signed(app, "ops-olga").get("/console/mappings/klaviyo")
    assert page.status_code == 200
    row = re.search(r'<tr data-target="referral_turnover">(.*?)</tr>', page.text, re.S).group(1)    # type: ignore[union-attr]
    assert "turnover_amount" in row and "decimal, 2 places" in row
    assert "opted in to marketing" in page.text and "converted (bought)" in page.text
    assert "Edit this mapping" not in page.text          # ops read, never edit


def test_ops_can_read_but_every_change_is_refused_on_the_server(app) -> None:  # type: ignore[no-untyped-def]
    ops = signed(app, "ops-olga")
    for path in ("/console/connectors", "/console/mappings", "/console/mappings/klaviyo/history"):
        assert ops.get(path).status_code == 200, path
    assert ops.get("/console/mappings/klaviyo/edit").status_code == 403
    token = csrf(ops.get("/console/mappings/klaviyo").text)
    form = {**as_form(default_document("klaviyo")), "csrf": token, "version": "0", "etag": "*", "comment": "x",
            "action": "apply"}
    assert ops.post("/console/mappings/klaviyo/edit", data=form).status_code == 403
    assert ops.post("/console/mappings/klaviyo/rollback", data={"csrf": token, "version": "0"}).status_code == 403
    assert ops.post("/console/mappings/klaviyo/resync", data={"csrf": token}).status_code == 403
    assert ops.get("/v1/mappings/klaviyo").status_code in (401, 403)


def test_a_change_without_its_csrf_token_is_refused(app) -> None:  # type: ignore[no-untyped-def]
    carla = signed(app, "admin-carla")
    form = edit_form(carla)
    form.pop("csrf")
    rename(form, "referral_friends_invited", "referral_invites_sent")
    answer = carla.post("/console/mappings/klaviyo/edit", data={**form, "action": "apply", "comment": "no csrf"})
    assert answer.status_code in (400, 403)
    assert "referral_invites_sent" not in carla.get("/console/mappings/klaviyo").text


def test_errors_are_shown_next_to_their_fields(app) -> None:  # type: ignore[no-untyped-def]
    carla = signed(app, "admin-carla")
    form = edit_form(carla)
    page = carla.post("/console/mappings/klaviyo/edit", data={**form, "field-3-transform": "int", "action": "validate"})
    assert page.status_code == 422
    said = dict(re.findall(r'data-error-for="([^"]+)">([^<]+)<', page.text))
    assert list(said) == ["field-3-transform"] and "unknown transform int" in said["field-3-transform"]
    assert 'name="field-3-transform" aria-label="Transform, row 4" aria-invalid="true"' in page.text
    twice = carla.post("/console/mappings/klaviyo/edit", data={**form, "field-2-target": form["field-1-target"],
                                                               "action": "validate"})
    said = dict(re.findall(r'data-error-for="([^"]+)">([^<]+)<', twice.text))
    assert list(said) == ["field-2-target"] and "is mapped twice" in said["field-2-target"]
    fine = carla.post("/console/mappings/klaviyo/edit", data={**form, "action": "validate"})
    assert fine.status_code == 200 and "Valid." in fine.text


def test_preview_apply_conflict_resync_and_rollback(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    post_story(client)
    flush(app)
    carla, dana = signed(app, "admin-carla"), signed(app, "admin-dana")
    stale = edit_form(dana)                          # dana opens the editor on version 0 too
    form = edit_form(carla)
    rename(form, "referral_friends_invited", "referral_invites_sent")
    add_list(form, "RfMkt2")

    page = carla.post("/console/mappings/klaviyo/edit", data={**form, "action": "preview", "email": "anna@example.com"})
    assert page.status_code == 200, page.text
    row = re.search(r'<tr data-field="referral_invites_sent"[^>]*>(.*?)</tr>', page.text, re.S).group(1)  # type: ignore[union-attr]
    assert "(empty)" in row and "<code>2</code>" in row and "changes" in row
    assert "Klaviyo-API-Key ****" in page.text and "pk_sandbox_demo" not in page.text
    assert "referral_invites_sent" not in str(held(app.sandbox, "anna@example.com"))        # nothing written

    saved = carla.post("/console/mappings/klaviyo/edit", data={**form, "action": "apply", "comment": "rename invites"})
    assert saved.status_code == 302, saved.text
    offer = carla.get(saved.headers["Location"])
    assert "saved as version 1" in offer.text and "carla" in offer.text
    assert re.search(r'data-field="resync-count">5<', offer.text)

    rename(stale, "first_name", "given_name")
    clash = dana.post("/console/mappings/klaviyo/edit", data={**stale, "action": "apply", "comment": "mine"})
    assert clash.status_code == 409
    assert 'data-field="other-author">carla<' in clash.text and "rename invites" in clash.text
    assert 'data-change="renamed"' in clash.text and 'data-change="added"' in clash.text
    assert "consent changed" not in clash.text      # the form leaves the default out, as the document does

    token = csrf(offer.text)
    assert carla.post("/console/mappings/klaviyo/resync", data={"csrf": token}).status_code == 200
    from hub.core.sync import flush as run
    with app.app_context():
        run("klaviyo")
    assert held(app.sandbox, "anna@example.com")["fields"]["referral_invites_sent"] == 2

    history = carla.get("/console/mappings/klaviyo/history")
    etag = re.search(r'name="etag" value="([^"]+)"', history.text).group(1).replace("&#34;", '"')  # type: ignore[union-attr]
    back = carla.post("/console/mappings/klaviyo/rollback", data={"csrf": token, "version": "0", "etag": etag,
                                                                  "comment": "undo"})
    assert back.status_code == 302
    from hub.core.mappingstore import current
    head: dict[str, Any] = current(app.extensions["redis"], "klaviyo")
    assert head["version"] == 2 and head["author"] == "carla" and head["document"] == default_document("klaviyo")
    compare = carla.get("/console/mappings/klaviyo/history?from=1&to=2")
    assert 'data-change="renamed"' in compare.text and 'data-change="removed"' in compare.text


def test_emarsys_editor_offers_the_accounts_field_ids_and_checks_the_live_account(make_app, sandbox_server) -> None:  # type: ignore[no-untyped-def]
    from sandbox import DEMO_SETTINGS, emarsys

    app = make_app(EMARSYS_BASE_URL=f"{sandbox_server.url}/emarsys", ADMIN_TOKENS="carla:admin-carla",
                   **{f"EMARSYS_{k.upper()}": v for k, v in DEMO_SETTINGS["emarsys"].items()})
    carla = signed(app, "admin-carla")
    page = carla.get("/console/mappings/emarsys/edit")
    # the target picker suggests the account's field ids with their names; lists come from the account
    assert '<option value="12001">Referral invites sent (12001)</option>' in page.text
    for list_id, name in emarsys.LISTS.items():
        assert f'<option value="{list_id}"' in page.text and name in page.text
    form = edit_form(carla, "emarsys")
    form[next(k for k, v in form.items() if k.endswith("-target") and v == "12001")] = "12099"
    checked = carla.post("/console/mappings/emarsys/edit", data={**form, "action": "validate"})
    assert checked.status_code == 422
    said = dict(re.findall(r'data-error-for="([^"]+)">([^<]+)<', checked.text))
    [(where, message)] = said.items()
    assert where.endswith("-target") and "the SAP Emarsys account has no field &#39;12099&#39;" in message
    saved = carla.post("/console/mappings/emarsys/edit", data={**form, "action": "apply", "comment": "x"})
    assert saved.status_code == 422 and "12099" in saved.text
    from hub.core.mappingstore import current
    assert current(app.extensions["redis"], "emarsys")["version"] == 0


def test_preview_after_a_sample_event(app) -> None:  # type: ignore[no-untyped-def]
    import json

    client = app.test_client()
    post_story(client)
    flush(app)
    carla = signed(app, "admin-carla")
    form = edit_form(carla)
    event = {"id": "evt_sample_9", "type": "referral.invited", "occurred_at": "2026-11-21T11:00:00Z",
             "referrer": {"email": "anna@example.com"}}
    page = carla.post("/console/mappings/klaviyo/edit", data={**form, "action": "preview", "event": json.dumps(event)})
    assert page.status_code == 200, page.text
    assert "After the sample event evt_sample_9" in page.text
    row = re.search(r'<tr data-field="referral_friends_invited"[^>]*>(.*?)</tr>', page.text, re.S).group(1)  # type: ignore[union-attr]
    assert re.findall(r"<code>(\d+)</code>", row) == ["2", "3"]          # now 2 at Klaviyo, 3 after the event
    assert held(app.sandbox, "anna@example.com")["fields"]["referral_friends_invited"] == 2
    bad = carla.post("/console/mappings/klaviyo/edit", data={**form, "action": "preview", "event": "{not json"})
    assert bad.status_code == 422 and 'data-error-for="event"' in bad.text
    wrong = carla.post("/console/mappings/klaviyo/edit", data={**form, "action": "preview",
                                                               "event": json.dumps({"id": "e", "type": "nope"})})
    assert wrong.status_code == 422 and 'data-error-for="event"' in wrong.text
