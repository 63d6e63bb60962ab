"""What a CRM admin reads: the mapping as a table, the diff between two versions, the account's
lists, and the preview's now-against-after diff read from the sandbox (nothing written)."""
from __future__ import annotations

import copy
from typing import Any

import pytest
import requests

from hub.core import mappingview
from hub.core.mappingstore import default_document
from sandbox import DEMO_SETTINGS
from tests.hub.test_mappings_admin import ADMIN, flush, get, held, post_story, renamed, send


def settings_env(sandbox_server, *names: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    env = {}
    for name in names:
        env[f"{name.upper()}_BASE_URL"] = f"{sandbox_server.url}/{name}"
        env.update({f"{name.upper()}_{k.upper()}": v for k, v in DEMO_SETTINGS[name].items()})
    return env


@pytest.fixture
def client(make_app, sandbox_server):  # type: ignore[no-untyped-def]
    app = make_app(**settings_env(sandbox_server, "klaviyo", "emarsys", "ometria"))
    app.sandbox = sandbox_server      # type: ignore[attr-defined]
    return app.test_client()


def with_new_list(document: dict[str, Any], list_id: str = "RfMkt2") -> dict[str, Any]:
    document = copy.deepcopy(document)
    document["lists"].append({"id": list_id, "kind": "marketing", "when": "marketing_opt_in"})
    return document


# -- the table ---------------------------------------------------------------------------------
def test_the_table_reads_vendor_field_from_stat_with_transform_and_lists_with_conditions(client) -> None:  # type: ignore[no-untyped-def]
    body = get(client, "/v1/mappings/klaviyo/table").get_json()
    rows = {r["target"]: r for r in body["table"]["fields"]}
    assert rows["referral_turnover"] == {"target": "referral_turnover", "label": "", "source": "turnover_amount",
                                         "transform": "decimal, 2 places"}
    assert rows["referral_converted_at"]["transform"] == "date, format iso"
    assert rows["first_name"]["transform"] == ""
    conditions = {r["id"]: r["condition"] for r in body["table"]["lists"]}
    assert conditions == {"RfMkt1": "marketing (with consent): opted in to marketing",
                          "RfTxn1": "transactional: converted (bought)"}
    assert body["version"] == 0 and body["etag"].startswith('"v0-')
    lines = mappingview.table_text(body["table"])
    assert "referral_turnover  <-  turnover_amount  (decimal, 2 places)" in lines


def test_emarsys_field_ids_are_labelled_with_the_accounts_names(client) -> None:  # type: ignore[no-untyped-def]
    from sandbox.emarsys import FIELDS

    rows = {r["target"]: r for r in get(client, "/v1/mappings/emarsys/table").get_json()["table"]["fields"]}
    assert rows["12001"]["label"] == FIELDS[12001][0]
    assert rows["12001"]["source"] == "invites_sent"
    unlabelled = get(client, "/v1/mappings/emarsys/table?live=false").get_json()["table"]["fields"]
    assert all(r["label"] == "" for r in unlabelled)


def test_the_table_of_an_old_version_and_of_one_that_does_not_exist(client) -> None:  # type: ignore[no-untyped-def]
    current = get(client, "/v1/mappings/klaviyo").get_json()
    assert send(client, "PUT", "/v1/mappings/klaviyo", {"document": renamed(current["document"])},
                {"If-Match": current["etag"]}).status_code == 200
    old = get(client, "/v1/mappings/klaviyo/table?version=0").get_json()["table"]
    new = get(client, "/v1/mappings/klaviyo/table").get_json()["table"]
    assert "referral_friends_invited" in [r["target"] for r in old["fields"]]
    assert "referral_invites_sent" in [r["target"] for r in new["fields"]]
    assert get(client, "/v1/mappings/klaviyo/table?version=9").status_code == 404
    assert get(client, "/v1/mappings/klaviyo/table?version=x").status_code == 422


# -- between versions ----------------------------------------------------------------------------
def test_a_rename_a_new_list_and_a_changed_transform_between_two_versions(client) -> None:  # type: ignore[no-untyped-def]
    current = get(client, "/v1/mappings/klaviyo").get_json()
    document = with_new_list(renamed(current["document"]))
    for rule in document["fields"]:
        if rule["target"] == "referral_turnover":
            rule["places"] = 0
    assert send(client, "PUT", "/v1/mappings/klaviyo", {"document": document, "comment": "three edits"},
                {"If-Match": current["etag"], "X-Hub-Author": "carla"}).status_code == 200
    diff = get(client, "/v1/mappings/klaviyo/diff?from=0&to=1").get_json()
    assert diff["to"]["author"] == "carla" and diff["to"]["comment"] == "three edits"
    changes = {(c["change"], (c["before"] or c["after"])["target"]): c for c in diff["fields"]}
    assert set(changes) == {("renamed", "referral_friends_invited"), ("changed", "referral_turnover")}
    assert changes[("renamed", "referral_friends_invited")]["after"]["target"] == "referral_invites_sent"
    assert changes[("changed", "referral_turnover")]["after"]["transform"] == "decimal, 0 places"
    assert [(c["change"], c["after"]["id"]) for c in diff["lists"]] == [("added", "RfMkt2")]
    assert diff["same"] is False
    back = get(client, "/v1/mappings/klaviyo/diff?from=1&to=0").get_json()
    assert {c["change"] for c in back["fields"]} == {"renamed", "changed"}
    assert [c["change"] for c in back["lists"]] == ["removed"]
    assert get(client, "/v1/mappings/klaviyo/diff?from=0&to=0").get_json()["same"] is True
    assert get(client, "/v1/mappings/klaviyo/diff?from=0&to=7").status_code == 404
    assert get(client, "/v1/mappings/klaviyo/diff?from=0").status_code == 422


def test_a_field_moved_to_another_stat_is_removed_and_added_not_renamed() -> None:
    old = default_document("klaviyo")
    new = copy.deepcopy(old)
    rule = next(r for r in new["fields"] if r["target"] == "referral_friends_invited")
    rule.update(target="referral_invites", source="friends_registered")
    diff = mappingview.version_diff(old, new)
    assert sorted(c["change"] for c in diff["fields"]) == ["added", "removed"]


# -- the account's lists ---------------------------------------------------------------------------
def test_the_accounts_lists_from_klaviyo_and_emarsys_and_none_where_there_is_no_list_call(client) -> None:  # type: ignore[no-untyped-def]
    from sandbox import emarsys, klaviyo

    body = get(client, "/v1/connectors/klaviyo/lists").get_json()
    assert body["listable"] is True
    assert {(i["id"], i["name"]) for i in body["lists"]} == set(klaviyo.LISTS.items())
    assert {(i["id"], i["name"]) for i in get(client, "/v1/connectors/emarsys/lists").get_json()["lists"]} == \
        set(emarsys.LISTS.items())
    assert get(client, "/v1/connectors/ometria/lists").get_json() == {"connector": "ometria", "listable": False,
                                                                      "lists": []}
    assert get(client, "/v1/connectors/splio/lists").status_code == 409      # not enabled here
    assert client.get("/v1/connectors/klaviyo/lists", headers={"Authorization": "Bearer ops-token"}).status_code == 403


# -- preview: now against after ----------------------------------------------------------------------
def test_the_preview_diff_reads_the_sandbox_now_and_shows_after_writing_nothing(client) -> None:  # type: ignore[no-untyped-def]
    sandbox = client.application.sandbox
    post_story(client)
    flush(client.application)
    before = held(sandbox, "cleo@example.com")
    calls = requests.get(f"{sandbox.url}/_sandbox/stats", timeout=5).json()
    draft = with_new_list(renamed(get(client, "/v1/mappings/klaviyo").get_json()["document"],
                                  "referral_promo_code", "referral_code"))
    answer = send(client, "POST", "/v1/mappings/klaviyo/preview",
                  {"email": "cleo@example.com", "document": draft, "diff": True}).get_json()
    [diff] = answer["diff"]
    assert diff["source"] == "sandbox" and diff["exists"] is True
    fields = {f["field"]: f for f in diff["fields"]}
    assert fields["referral_code"] == {"field": "referral_code", "now": None, "after": "ANNA-20", "changed": True,
                                       "mapped": True}
    # The old field stays at the vendor with its value: the hub never deletes vendor fields.
    assert fields["referral_promo_code"] == {"field": "referral_promo_code", "now": "ANNA-20", "after": "ANNA-20",
                                             "changed": False, "mapped": False}
    assert fields["first_name"]["changed"] is False
    lists = {row["id"]: row for row in diff["lists"]}
    assert (lists["RfMkt2"]["now"], lists["RfMkt2"]["after"], lists["RfMkt2"]["changed"]) == (False, True, True)
    assert (lists["RfMkt1"]["now"], lists["RfMkt1"]["after"], lists["RfMkt1"]["changed"]) == (True, True, False)
    assert diff["consent"] == {"hub": True, "now": True, "after": True, "changed": False}
    # Nothing was written: the sandbox holds what it held, and saw only reads.
    assert held(sandbox, "cleo@example.com") == before
    after_calls = requests.get(f"{sandbox.url}/_sandbox/stats", timeout=5).json()
    assert {k: v for k, v in after_calls.items() if k.startswith("klaviyo") and not k.endswith("total")} == \
        {k: v for k, v in calls.items() if k.startswith("klaviyo") and not k.endswith("total")}


def test_a_contact_the_vendor_does_not_hold_yet_and_one_the_hub_does_not_know(client) -> None:  # type: ignore[no-untyped-def]
    post_story(client)          # not flushed: the sandbox holds nobody yet
    answer = send(client, "POST", "/v1/mappings/klaviyo/preview",
                  {"emails": ["anna@example.com", "zed@example.com"], "diff": True}).get_json()
    anna, zed = answer["diff"]
    assert anna["exists"] is False
    invited = next(f for f in anna["fields"] if f["field"] == "referral_friends_invited")
    assert (invited["now"], invited["after"], invited["changed"]) == (None, 2, True)
    assert zed == {"email": "zed@example.com", "status": "unknown",
                   "message": "the hub holds no state for this contact"}


def test_a_vendor_without_a_read_api_says_unknown(client) -> None:  # type: ignore[no-untyped-def]
    post_story(client)
    sandbox = client.application.sandbox
    # Ometria pointed away from the sandbox's /ometria prefix: the hub must ask the vendor, and
    # Ometria has no read API the hub uses.
    held_now = mappingview.held_now("ometria", {"base_url": f"{sandbox.url}/elsewhere"}, _Client(), _update())
    assert held_now.source == "unknown" and "no read API" in held_now.note
    row = {"email": "anna@example.com", "status": "would_push", "fields": {"x": 1}, "lists": {},
           "marketing_consent": None}
    diff = mappingview.profile_diff(row, _update(), held_now, [{"id": "8400", "kind": "marketing",
                                                                "when": "marketing_opt_in"}])
    assert diff["fields"] == [{"field": "x", "now": "unknown", "after": 1, "changed": "unknown", "mapped": True}]
    assert diff["lists"][0]["now"] == "unknown" and diff["consent"]["now"] == "unknown"


class _Client:
    label = "Ometria"

    @classmethod
    def readable(cls) -> bool:
        from connectors import CONNECTORS

        return CONNECTORS["ometria"].readable()


def _update():  # type: ignore[no-untyped-def]
    from connectors import ContactUpdate

    return ContactUpdate(email="anna@example.com", fields={"x": 1})


def test_the_connector_status_says_when_a_push_last_succeeded(client) -> None:  # type: ignore[no-untyped-def]
    status = client.get("/v1/connectors/klaviyo/pause", headers={"Authorization": "Bearer ops-token"})
    assert status.status_code == 200 and status.get_json()["last_success"] is None
    post_story(client)
    flush(client.application)
    stamp = client.get("/v1/connectors/klaviyo/pause", headers=ADMIN).get_json()["last_success"]
    assert stamp and stamp.endswith("Z")


def test_cli_table_diff_lists_and_preview_diff(client, redis_url, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from click.testing import CliRunner

    from hub.cli import main
    from tests.conftest import TOKENS

    sandbox = client.application.sandbox
    post_story(client)
    flush(client.application)
    env = {"HUB_REDIS_URL": redis_url, "HUB_FLUSH_WINDOW": "0", "HUB_AUTHOR": "carla",
           **{f"HUB_{k}": v for k, v in settings_env(sandbox, "klaviyo").items()},
           **{f"HUB_{k}": v for k, v in TOKENS.items()}}
    runner = CliRunner()
    table = runner.invoke(main, ["mappings", "show", "klaviyo", "--table"], env=env)
    assert table.exit_code == 0, table.output
    assert "referral_turnover  <-  turnover_amount  (decimal, 2 places)" in table.output
    path = tmp_path / "draft.json"
    path.write_text(json.dumps(renamed(default_document("klaviyo"))))
    assert runner.invoke(main, ["mappings", "apply", "klaviyo", str(path), "-m", "rename"], env=env).exit_code == 0
    diff = json.loads(runner.invoke(main, ["mappings", "diff", "klaviyo", "0", "1"], env=env).output)
    assert [(c["change"], c["after"]["target"]) for c in diff["fields"]] == [("renamed", "referral_invites_sent")]
    lists = json.loads(runner.invoke(main, ["connectors", "lists", "klaviyo"], env=env).output)
    assert "RfMkt2" in [i["id"] for i in lists["lists"]]
    preview = runner.invoke(main, ["mappings", "preview", "klaviyo", "--email", "anna@example.com", "--diff"], env=env)
    [anna] = json.loads(preview.output)["diff"]
    invites = next(f for f in anna["fields"] if f["field"] == "referral_invites_sent")
    assert invites["after"] == 2 and invites["mapped"] is True
