"""Bad input is a 4xx naming the problem, never a 5xx, on every route that takes a body; a webhook
source is answered the way its platform needs (2xx, the delivery kept in the rejected list)."""
from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from openapi_schema_validator import OAS30Validator

from tests.hub.test_webhooks import GOOD, jwks_of, sign, source_env
from tests.story import event

INGEST = {"Authorization": "Bearer ingest-token"}
ADMIN = {"Authorization": "Bearer admin-token", "If-Match": "*"}
OPS = {"Authorization": "Bearer ops-token"}
KLAVIYO = {"KLAVIYO_API_KEY": "pk_test", "KLAVIYO_BASE_URL": "http://127.0.0.1:9/klaviyo"}  # never called here
ANNA = "anna@example.com"
# Every route that reads a JSON body, but the webhooks (below), with the token it needs.
ROUTES = {
    ("post", "/v1/events"): INGEST,
    ("put", "/v1/mappings/{connector}"): ADMIN,
    ("post", "/v1/mappings/{connector}/validate"): ADMIN,
    ("post", "/v1/mappings/{connector}/preview"): ADMIN,
    ("post", "/v1/mappings/{connector}/rollback"): ADMIN,
    ("post", "/v1/mappings/import"): ADMIN,
    ("post", "/v1/failed/retry"): OPS,
    ("post", "/v1/failed/discard"): OPS,
    ("post", "/v1/connectors/{name}/pause"): OPS,
    ("post", "/v1/connectors/{name}/audit"): OPS,
    ("post", "/v1/contacts/{email}/resync"): OPS,
    ("post", "/v1/endpoints"): ADMIN,
    ("patch", "/v1/endpoints/{endpoint_id}"): ADMIN,
    ("post", "/v1/endpoints/{endpoint_id}/rotate-secret"): ADMIN,
    ("post", "/v1/endpoints/{endpoint_id}/disable"): ADMIN,
    ("post", "/v1/endpoints/{endpoint_id}/replay"): ADMIN,
    ("post", "/v1/jobs"): OPS,
}
VALUES = {"{connector}": "klaviyo", "{name}": "klaviyo", "{email}": ANNA, "{endpoint_id}": "ep_0"}
DEEP = 100_000
BODIES = {
    "array nested 100,000 deep": (b"[" * DEEP + b"]" * DEEP, "nests too deeply"),
    "object nested 100,000 deep": (b'{"a":' * DEEP + b"1" + b"}" * DEEP, "nests too deeply"),
    "nested 40 deep": (b'{"events":' + b"[" * 40 + b"]" * 40 + b"}", "nests deeper than 32 levels"),
    "a lone surrogate in a value": (b'{"events": [{"id": "e1", "friend": {"first_name": "Cl\\ud800o"}}]}',
                                    "lone UTF-16 surrogate"),
    "a lone low surrogate in a key": (b'{"x\\udc00": 1}', "lone UTF-16 surrogate"),
}


def url(path: str) -> str:
    for name, value in VALUES.items():
        path = path.replace(name, value)
    return path


@pytest.fixture
def client(make_app) -> Any:  # type: ignore[no-untyped-def]
    return make_app(**KLAVIYO).test_client()


def test_the_list_of_body_routes_is_every_route_that_takes_a_body(client) -> None:
    document = client.get("/openapi.json").json
    with_body = {(method, path) for path, item in document["paths"].items() for method, spec in item.items()
                 if "requestBody" in spec and not path.startswith("/v1/webhooks/")}
    assert with_body == set(ROUTES)


@pytest.mark.parametrize("name", BODIES)
@pytest.mark.parametrize("route", sorted(ROUTES))
def test_unusable_json_is_a_400_naming_the_problem(client, route: tuple[str, str], name: str) -> None:
    body, reason = BODIES[name]
    method, path = route
    response = client.open(url(path), method=method.upper(), data=body,
                           headers={**ROUTES[route], "Content-Type": "application/json"})
    assert response.status_code == 400, (route, name, response.json)
    assert response.json["error"]["code"] == "invalid_json"
    assert reason in response.json["error"]["message"]


def post_events(client: Any, events: list[dict[str, Any]]) -> Any:
    return client.post("/v1/events", json={"events": events}, headers=INGEST)


def fields_of(response: Any) -> list[tuple[Any, str]]:
    return [(d["index"], d["field"]) for d in response.json["error"]["details"]]


BAD_DATES = ["2026-02-30T10:00:00Z", "2026-02-30T10:00:00", "2026-13-01T00:00:00Z", "2025-02-29T12:00:00+01:00",
             "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "1969-12-31T23:59:59Z"]


@pytest.mark.parametrize("when", BAD_DATES)
def test_impossible_and_out_of_range_dates_are_a_422_naming_occurred_at(client, when: str) -> None:
    events = [event(1, "referrer.enrolled", referrer={"email": ANNA}),
              {**event(2, "referral.invited", referrer={"email": ANNA}), "occurred_at": when}]
    response = post_events(client, events)
    assert response.status_code == 422, response.json
    assert fields_of(response) == [(1, "occurred_at")]
    preview = client.post("/v1/mappings/klaviyo/preview", json={"event": events[1]}, headers=ADMIN)
    assert preview.status_code == 422 and [d["field"] for d in preview.json["error"]["details"]] == ["occurred_at"]


@pytest.mark.parametrize(("part", "value", "field"), [
    ("order", {"id": "o1", "total": "1e20", "currency": "GBP"}, "order.total"),
    ("order", {"id": "o1", "total": 1e20, "currency": "GBP"}, "order.total"),
    ("order", {"id": "o1", "total": "1E+999999999", "currency": "GBP"}, "order.total"),
    ("order", {"id": "o1", "total": "100000000000.0001", "currency": "GBP"}, "order.total"),
])
def test_an_amount_over_the_cap_is_a_422_naming_the_field(client, part: str, value: Any, field: str) -> None:
    events = [event(1, "friend.converted", referrer={"email": ANNA}, friend={"email": "cleo@example.com"},
                    **{part: value})]
    response = post_events(client, events)
    assert response.status_code == 422, response.json
    assert fields_of(response) == [(0, field)]
    assert "100,000,000,000" in response.json["error"]["details"][0]["message"]


def test_a_reward_over_the_cap_is_a_422_and_the_cap_itself_is_accepted(client) -> None:
    over = event(1, "reward.granted", referrer={"email": ANNA},
                 reward={"recipient": "referrer", "value": "100000000001", "currency": "GBP"})
    assert fields_of(post_events(client, [over])) == [(0, "reward.value")]
    at_cap = {**over, "reward": {**over["reward"], "value": "100000000000"}}
    assert post_events(client, [at_cap]).status_code == 202


@pytest.mark.parametrize(("address", "reason"), [
    ("a" * 277 + "@example.com", "at most 254 characters"),
    ("anna@localhost", "the domain needs a dot"),
])
def test_addresses_too_long_or_without_a_dotted_domain_are_refused(client, address: str, reason: str) -> None:
    assert len("a" * 277 + "@example.com") == 289
    response = post_events(client, [event(1, "referrer.enrolled", referrer={"email": address})])
    assert response.status_code == 422
    assert fields_of(response) == [(0, "referrer.email")]
    assert reason in response.json["error"]["details"][0]["message"]
    longest = "a" * 64 + "@" + ("b" * 63 + ".") * 2 + "c" * 57 + ".com"  # 254 characters: accepted
    assert len(longest) == 254
    assert post_events(client, [event(2, "referrer.enrolled", referrer={"email": longest})]).status_code == 202


# --- webhooks: the platform gets its 2xx, ops find the delivery in the rejected list ---------------

@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def hooks(make_app, key) -> Any:  # type: ignore[no-untyped-def]
    assert jwks_of(key)["keys"]
    return make_app(**KLAVIYO, **source_env(key)).test_client()


def carrying(source: str, extra: str) -> bytes:
    """The platform's own body (so SaaSquatch's tenant check passes) with one more member."""
    body = json.dumps(GOOD[source])
    assert body.endswith("}")
    return (body[:-1] + ', "extra": ' + extra + "}").encode()


WEBHOOK_BODIES = {
    "nested 40 deep": (lambda source: carrying(source, "[" * 40 + "]" * 40), "nests deeper than 32 levels"),
    "a lone surrogate": (lambda source: carrying(source, '"x\\ud800y"'), "lone UTF-16 surrogate"),
}


def deliver(hooks: Any, key: rsa.RSAPrivateKey, source: str, body: bytes) -> Any:
    return hooks.post(f"/v1/webhooks/{source}", data=body,
                      headers={"Content-Type": "application/json", "X-UUID": "msg-1", **sign(source, body, key)})


def rejected(hooks: Any, source: str) -> list[dict[str, Any]]:
    return hooks.get(f"/v1/webhooks/rejected?source={source}", headers=OPS).json["rejected"]


@pytest.mark.parametrize("name", WEBHOOK_BODIES)
@pytest.mark.parametrize("source", sorted(GOOD))
def test_a_webhook_with_unusable_json_is_acknowledged_and_kept_as_rejected(hooks, key, source: str, name: str) -> None:
    """A platform would send the same body again and again: it gets its 2xx, ops get the body."""
    build, reason = WEBHOOK_BODIES[name]
    response = deliver(hooks, key, source, build(source))
    assert response.status_code in (200, 202), (source, name, response.status_code)
    assert response.json["rejected"] == 1 and response.json["accepted"] == 0
    kept = rejected(hooks, source)
    assert len(kept) == 1 and reason in kept[0]["reasons"]


@pytest.mark.parametrize("source", sorted(GOOD))
def test_a_webhook_nested_100000_deep_is_refused_as_not_the_platform_shape(hooks, key, source: str) -> None:
    """No platform sends that: a 400 (Friendbuy, for which 400 cancels a reward, a 200), kept for ops.
    SaaSquatch's check reads the tenant from the body before the signature counts: unreadable, 401."""
    response = deliver(hooks, key, source, carrying(source, "[" * DEEP + "]" * DEEP))
    want = {"friendbuy": 200, "saasquatch": 401}.get(source, 400)
    assert response.status_code == want, response.json
    assert len(rejected(hooks, source)) == (0 if want == 401 else 1)


def test_a_webhook_event_with_an_out_of_range_date_is_acknowledged_and_rejected(hooks, key) -> None:
    body = json.dumps({**GOOD["talon_one"], "occurred_at": "0001-01-01T00:00:00+01:00"}).encode()
    response = deliver(hooks, key, "talon_one", body)
    assert response.status_code == 202 and response.json["rejected"] == 1
    assert len(rejected(hooks, "talon_one")) == 1


# --- the smaller things ---------------------------------------------------------------------------

def test_a_405_says_which_methods_the_route_has(client) -> None:
    response = client.get("/v1/events", headers=INGEST)
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"POST"}
    assert response.json["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("path", ["/v1/webhooks/parked", "/v1/webhooks/rejected", "/v1/mappings/klaviyo/history"])
@pytest.mark.parametrize("limit", ["0", "-1", "1001", "ten"])
def test_a_limit_outside_1_to_1000_is_a_422_naming_limit(client, path: str, limit: str) -> None:
    response = client.get(f"{path}?limit={limit}", headers={"Authorization": "Bearer admin-token"})
    assert response.status_code == 422
    assert response.json["error"]["details"] == [{"field": "limit", "message": "must be a whole number from 1 to 1000"}]
    assert client.get(f"{path}?limit=1000", headers={"Authorization": "Bearer admin-token"}).status_code == 200


def test_the_shipped_default_mapping_matches_its_schema_with_a_null_time(client) -> None:
    document = client.get("/openapi.json").json
    version = client.get("/v1/mappings/klaviyo", headers=ADMIN).json
    assert version["version"] == 0 and version["at"] is None
    OAS30Validator({"$ref": "#/components/schemas/MappingVersion", "components": document["components"]}).validate(version)


def test_a_malformed_job_id_gets_the_documented_422(client) -> None:
    document = client.get("/openapi.json").json
    for path, method in (("/v1/failed/{job_id}", "get"), ("/v1/failed/{job_id}/retry", "post"),
                         ("/v1/failed/{job_id}", "delete")):
        assert "422" in document["paths"][path][method]["responses"]
        response = client.open(path.replace("{job_id}", "not%20a%20job"), method=method.upper(), headers=OPS)
        assert response.status_code == 422, (path, method)


def test_a_webhook_event_the_ledger_refuses_is_rejected_and_the_rest_of_the_delivery_applied(
        hooks, key, redis_client) -> None:
    """Two rewards in one Friendbuy delivery; Ada's stored reward total sits at the 64-bit limit."""
    first = GOOD["friendbuy"]["data"][0]
    second = {**first, "rewardId": "rw-2", "emailAddress": "bea@example.com", "customerId": "c-bea",
              "couponCode": "BEA-20"}
    redis_client.hset("hub:c:ada@example.com", "reward_value:USD", str(2**63 - 1))
    body = json.dumps({**GOOD["friendbuy"], "data": [first, second]}).encode()
    response = deliver(hooks, key, "friendbuy", body)
    assert response.status_code in (200, 202)
    assert (response.json["accepted"], response.json["rejected"]) == (1, 1)
    kept = rejected(hooks, "friendbuy")
    assert len(kept) == 1 and "reward.value" in kept[0]["reasons"] and "64-bit" in kept[0]["reasons"]
    assert redis_client.hget("hub:c:bea@example.com", "reward_value:USD") == b"200000"
    assert redis_client.hget("hub:c:ada@example.com", "reward_value:USD") == str(2**63 - 1).encode()
