"""GET /openapi.json: every registered route is in it, it is valid OpenAPI 3.0, its auth matches
what the routes really demand, and its event schema agrees with the hub's own validation."""
from __future__ import annotations

import copy
import inspect
import re
from typing import Any

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import OpenAPIV30SpecValidator

from hub.http.auth import require
from hub.cli.demo import story
from hub.http.openapi import build
from hub.core.schemas import load_events
from sources import SOURCES

TOKENS = {"ingest": "ingest-token", "ops": "ops-token", "admin": "admin-token"}
# A token that is valid but lacks the role: what the app must answer 403 to.
OTHER_ROLE = {"ops": "ingest-token", "admin": "ops-token"}


@pytest.fixture
def app(make_app):  # type: ignore[no-untyped-def]
    return make_app()


@pytest.fixture
def doc(app) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()  # type: ignore[no-any-return]


def openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in doc["paths"].items() for method, op in item.items()]


def validator(doc: dict[str, Any], schema: dict[str, Any]) -> OAS30Validator:
    """A validator for `schema` whose #/components/... references resolve inside the document."""
    return OAS30Validator({**schema, "components": doc["components"]}, format_checker=OAS30Validator.FORMAT_CHECKER)


def event_validator(doc: dict[str, Any]) -> OAS30Validator:
    return validator(doc, {"$ref": "#/components/schemas/Event"})


# -- coverage ----------------------------------------------------------------------------------

def test_every_registered_route_and_method_is_in_the_document(app, doc) -> None:  # type: ignore[no-untyped-def]
    # the console's pages are HTML for browsers, not the API (tests/console covers them)
    rules = [r for r in app.url_map.iter_rules() if r.endpoint != "static" and not r.endpoint.startswith("console.")]
    assert len(rules) > 25
    missing = [f"{method} {rule.rule}" for rule in rules for method in sorted(rule.methods - {"HEAD", "OPTIONS"})
               if method.lower() not in doc["paths"].get(openapi_path(rule.rule), {})]
    assert missing == []
    assert "/static/{filename}" not in doc["paths"]
    assert not [path for path in doc["paths"] if path.startswith("/console")]
    assert doc["paths"]["/openapi.json"]["get"]["security"] == []


def test_every_route_has_its_own_entry(doc) -> None:  # type: ignore[no-untyped-def]
    """A route added without a @declare(...) is still listed, but named here."""
    bare = [f"{method.upper()} {path}" for path, method, op in operations(doc) if op.get("x-undocumented")]
    assert bare == [], "declare these views with hub.http.openapi.declare (answers, body, parameters)"


def test_a_new_route_is_picked_up_from_the_url_map(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app()

    @require("ops")
    def extra(number: int):  # type: ignore[no-untyped-def]
        """Count something.

        With a longer story."""

    app.add_url_rule("/v1/extra/<int:number>", "extra", extra, methods=["GET", "POST"])
    document = build(app)
    item = document["paths"]["/v1/extra/{number}"]
    assert set(item) == {"get", "post"}
    get = item["get"]
    assert get["summary"] == "Count something."
    assert "With a longer story." in get["description"]
    assert get["security"] == [{"opsToken": []}] and get["x-hub-role"] == "ops"
    assert get["parameters"] == [{"in": "path", "name": "number", "required": True,
                                  "schema": {"type": "integer", "minimum": 0},
                                  "description": "A version number from the history."}]
    assert {"401", "403", "503"} <= set(get["responses"])
    assert get["x-undocumented"] is True
    assert item["get"]["operationId"] != item["post"]["operationId"]


def test_summaries_come_from_the_view_docstrings(app, doc) -> None:  # type: ignore[no-untyped-def]
    for rule in app.url_map.iter_rules():
        first = (inspect.getdoc(app.view_functions[rule.endpoint]) or "").split("\n")[0]
        if rule.endpoint == "static" or rule.endpoint.startswith("console.") or not first:
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert doc["paths"][openapi_path(rule.rule)][method.lower()]["summary"] == first
    assert all(op["summary"] for _, _, op in operations(doc))


# -- validity ----------------------------------------------------------------------------------

def test_the_document_is_valid_openapi_3_0(doc) -> None:  # type: ignore[no-untyped-def]
    assert doc["openapi"].startswith("3.0.")
    errors = [e.message for e in OpenAPIV30SpecValidator(doc).iter_errors()]
    assert errors == []
    ids = [op["operationId"] for _, _, op in operations(doc)]
    assert len(ids) == len(set(ids))


def test_the_validity_check_can_fail(doc) -> None:  # type: ignore[no-untyped-def]
    broken = copy.deepcopy(doc)
    del broken["paths"]["/healthz"]["get"]["responses"]
    broken["paths"]["/readyz"]["get"]["parameters"] = [{"in": "body", "name": "x"}]
    assert list(OpenAPIV30SpecValidator(broken).iter_errors())


def test_served_without_a_token_and_stable(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    first, second = client.get("/openapi.json"), client.get("/openapi.json")
    assert first.status_code == 200 and first.mimetype == "application/json"
    assert first.get_json() == second.get_json()
    assert first.get_json()["info"]["title"] == "Referral Sync Hub"


# -- security and errors -------------------------------------------------------------------------

def concrete(path: str, op: dict[str, Any]) -> str:
    for param in op["parameters"]:
        if param["in"] == "path":
            value = "1" if param["schema"]["type"] == "integer" else param["schema"].get("enum", ["x@example.com"])[0]
            path = path.replace("{" + param["name"] + "}", value)
    return path


def test_documented_roles_are_the_roles_the_routes_demand(app, doc) -> None:  # type: ignore[no-untyped-def]
    """Without a token every bearer route answers 401; with a token of another role, 403."""
    client = app.test_client()
    checked = 0
    for path, method, op in operations(doc):
        role = op.get("x-hub-role")
        if role is None:
            continue
        assert op["security"] == [{f"{role}Token": []}]
        url = concrete(path, op)
        bare = client.open(url, method=method.upper())
        assert bare.status_code == 401, f"{method} {path}"
        assert bare.get_json()["error"]["code"] == "unauthorized"
        wrong = client.open(url, method=method.upper(), headers={"Authorization": f"Bearer {OTHER_ROLE[role]}"})
        assert wrong.status_code == 403, f"{method} {path}"
        checked += 1
    assert checked > 20


def test_public_routes_need_no_token(app, doc) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    public = [(p, m) for p, m, op in operations(doc) if op["security"] == []]
    assert sorted(public) == [("/healthz", "get"), ("/metrics", "get"), ("/openapi.json", "get"), ("/readyz", "get")]
    for path, method in public:
        assert client.open(path, method=method.upper()).status_code == 200


def test_event_and_webhook_auth(app, doc) -> None:  # type: ignore[no-untyped-def]
    events = doc["paths"]["/v1/events"]["post"]
    assert events["security"] == [{"standardWebhooks": []}, {"ingestToken": []}]
    assert app.test_client().post("/v1/events", json=story()[0]).status_code == 401
    schemes = doc["components"]["securitySchemes"]
    assert schemes["standardWebhooks"]["name"] == "webhook-signature"
    webhook = doc["paths"]["/v1/webhooks/{source}"]["post"]
    assert webhook["security"] == [{f"webhook_{name}": []} for name in SOURCES]
    assert schemes["webhook_growsurf"]["name"] == "GrowSurf-Signature"
    source = next(p for p in webhook["parameters"] if p["name"] == "source")
    assert sorted(source["schema"]["enum"]) == sorted(SOURCES)
    assert {"200", "202", "401", "404"} <= set(webhook["responses"])


def test_every_error_answer_has_the_one_error_shape(doc) -> None:  # type: ignore[no-untyped-def]
    error = doc["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert set(doc["components"]["schemas"]["ErrorBody"]["properties"]) == {"code", "message", "details"}
    for path, method, op in operations(doc):
        for status, answer in op["responses"].items():
            if int(status) < 400:
                continue
            schema = answer["content"]["application/json"]["schema"]
            refs = [schema] + schema.get("allOf", [])
            assert {"$ref": "#/components/schemas/Error"} in refs, f"{method} {path} {status}"


def test_a_real_error_answer_matches_the_documented_shape(app, doc) -> None:  # type: ignore[no-untyped-def]
    answer = app.test_client().post("/v1/events", json={"events": [{"type": "friend.converted"}]},
                                    headers={"Authorization": "Bearer ingest-token"})
    assert answer.status_code == 422
    schema = doc["paths"]["/v1/events"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
    validator(doc, schema).validate(answer.get_json())
    with pytest.raises(Exception):
        validator(doc, schema).validate({"error": {"code": "x", "message": "y", "details": ["not a problem"]}})


# -- the canonical event -------------------------------------------------------------------------

def test_the_demo_story_matches_the_event_schema(doc) -> None:  # type: ignore[no-untyped-def]
    check = event_validator(doc)
    for event in story():
        check.validate(event)
    body = doc["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    validator(doc, body).validate({"events": story()})
    validator(doc, body).validate(story()[0])
    assert load_events(story())[1] == []


def without(event: dict[str, Any], *path: str) -> dict[str, Any]:
    event = copy.deepcopy(event)
    target = event
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return event


def changed(event: dict[str, Any], **parts: Any) -> dict[str, Any]:
    return {**copy.deepcopy(event), **parts}


EVENTS = {e["id"]: e for e in story()}
INVALID = {
    "no id": without(EVENTS["evt_001"], "id"),
    "empty id": changed(EVENTS["evt_001"], id=""),
    "unknown type": changed(EVENTS["evt_001"], type="friend.waved"),
    "no occurred_at": without(EVENTS["evt_001"], "occurred_at"),
    "conversion without friend": without(EVENTS["evt_008"], "friend"),
    "null referrer on enrolment": changed(EVENTS["evt_001"], referrer=None),
    "referrer without email": changed(EVENTS["evt_001"], referrer={"first_name": "Anna"}),
    "order without currency": without(EVENTS["evt_008"], "order", "currency"),
    "lower-case currency": changed(EVENTS["evt_008"], order={"id": "o", "total": "1.00", "currency": "gbp"}),
    "reward for an absent friend": changed(EVENTS["evt_011"], reward={"recipient": "friend"}),
    "not an email": changed(EVENTS["evt_001"], referrer={"email": "anna"}),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_the_event_schema_rejects_what_the_hub_rejects(doc, case: str) -> None:  # type: ignore[no-untyped-def]
    event = INVALID[case]
    assert load_events([event])[1], "the hub accepts it, so the document must too"
    assert list(event_validator(doc).iter_errors(event)), f"the document accepts: {case}"


def test_an_event_without_id_is_rejected_for_its_id(doc) -> None:  # type: ignore[no-untyped-def]
    errors = list(event_validator(doc).iter_errors(INVALID["no id"]))
    assert [e.message for e in errors] == ["'id' is a required property"]
    batch = doc["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert list(validator(doc, batch).iter_errors({"events": [EVENTS["evt_001"], INVALID["no id"]]}))
    assert list(validator(doc, batch).iter_errors({"events": []}))


def test_optional_parts_may_be_null_or_absent(doc) -> None:  # type: ignore[no-untyped-def]
    event = changed(EVENTS["evt_008"], programme=None, reward=None, contact=None)
    event["friend"] = {**event["friend"], "first_name": None}
    assert load_events([event])[1] == []
    event_validator(doc).validate(event)
    event_validator(doc).validate(without(EVENTS["evt_008"], "order"))
