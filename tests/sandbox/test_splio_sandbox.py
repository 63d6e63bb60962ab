"""The Splio connector against the Splio sandbox over real HTTP."""
from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
import requests

from connectors.base import MARKETING, TRANSACTIONAL, ContactUpdate
from connectors.errors import AuthError
from connectors.ratelimit import RateLimiter
from connectors.splio import SplioConnector
from sandbox import splio as emulation
from tests.conftest import LiveServer


@pytest.fixture
def connector(server: LiveServer, redis_client) -> SplioConnector:  # type: ignore[no-untyped-def]
    return SplioConnector({"api_key": emulation.API_KEY, "base_url": f"{server.url}/splio"},
                          limiter=RateLimiter(redis_client, "sandbox-test"))


def held(server: LiveServer, email: str) -> dict[str, Any]:
    response = requests.get(f"{server.url}/_sandbox/splio/contacts/{email}", timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def referrer(invites: int, previous: dict | None = None) -> ContactUpdate:
    return ContactUpdate(email="anna@example.com", identity={"email": "anna@example.com"}, previous_lists=previous,
                         fields={"firstname": "Anna", "referral_nb_potential_referred": invites,
                                 "referral_nb_converted_customers": 1, "referral_turnover_generated": 59.9,
                                 "referral_referrer_id": "ref-anna"})


def friends() -> list[ContactUpdate]:
    return [
        ContactUpdate(email="bob@example.com", identity={"email": "bob@example.com"},
                      fields={"referral_referred_by": "ref-anna"}, lists={"25": MARKETING}, marketing_consent=True),
        ContactUpdate(email="cat@example.com", identity={"email": "cat@example.com"},
                      fields={"referral_promocode": "ANNA-20"}, lists={"26": TRANSACTIONAL}, marketing_consent=False),
    ]


def test_push_update_and_erase_round_trip(server: LiveServer, connector: SplioConnector) -> None:
    assert connector.push([referrer(2), *friends()]).failed == {}

    anna = held(server, "anna@example.com")
    assert anna["fields"] == {"firstname": "Anna", "referral_nb_potential_referred": 2,
                              "referral_nb_converted_customers": 1, "referral_turnover_generated": 59.9,
                              "referral_referrer_id": "ref-anna"}
    assert anna["lists"] == [] and anna["marketing_consent"] is None
    bob = held(server, "bob@example.com")
    assert bob["lists"] == ["25"] and bob["marketing_consent"] is True
    cat = held(server, "cat@example.com")
    assert cat["lists"] == ["26"] and cat["fields"]["referral_promocode"] == "ANNA-20"

    # Pushed before: a PATCH that must leave the memberships alone.
    bob_again = ContactUpdate(email="bob@example.com", fields={"firstname": "Bob"}, lists={"25": MARKETING},
                              marketing_consent=True, previous_lists={"25": MARKETING}, previous_consent=True)
    assert connector.push([referrer(3, previous={}), bob_again]).failed == {}
    assert held(server, "anna@example.com")["fields"]["referral_nb_potential_referred"] == 3
    assert held(server, "bob@example.com")["lists"] == ["25"]

    withdrawn = ContactUpdate(email="bob@example.com", marketing_consent=False,
                              previous_lists={"25": MARKETING}, previous_consent=True)
    assert connector.push([withdrawn]).failed == {}
    bob = held(server, "bob@example.com")
    assert bob["lists"] == [] and bob["marketing_consent"] is False

    assert connector.erase(["anna@example.com", "bob@example.com", "nobody@example.com"]).failed == {}
    assert held(server, "anna@example.com")["deleted"] is True
    assert held(server, "bob@example.com")["deleted"] is True
    assert held(server, "cat@example.com")["deleted"] is False


def test_contact_created_outside_the_hub_is_patched(server: LiveServer, connector: SplioConnector) -> None:
    connector.push([referrer(1)])
    # previous_lists None: the hub thinks it never pushed, Splio says "already exists" -> PATCH.
    assert connector.push([referrer(5)]).failed == {}
    assert held(server, "anna@example.com")["fields"]["referral_nb_potential_referred"] == 5


def test_item_errors_fail_only_their_contacts(server: LiveServer, connector: SplioConnector) -> None:
    bad_email = ContactUpdate(email="reject-me@example.com", identity={"email": "reject-me@example.com"})
    unknown_field = ContactUpdate(email="dan@example.com", fields={"favourite_colour": "blue"})
    result = connector.push([*friends(), bad_email, unknown_field])
    assert sorted(result.failed) == ["dan@example.com", "reject-me@example.com"]
    assert result.failed["dan@example.com"].message == "Custom field favourite_colour does not exist."
    assert held(server, "bob@example.com")["lists"] == ["25"]


def test_expired_jwt_is_renewed_and_wrong_key_refused(server: LiveServer, connector: SplioConnector) -> None:
    expired = jwt.encode({"exp": int(time.time()) - 10}, emulation.JWT_SECRET, algorithm="HS256")
    connector._token, connector._token_expires = expired, time.monotonic() + 3600
    assert connector.push([referrer(1)]).failed == {}
    assert connector._token != expired and jwt.decode(connector._token, emulation.JWT_SECRET, algorithms=["HS256"])

    wrong = SplioConnector({"api_key": "not-the-key", "base_url": f"{server.url}/splio"})
    with pytest.raises(AuthError) as info:
        wrong.check()
    assert info.value.status == 401 and "not-the-key" not in str(info.value)


def test_check_and_fields(server: LiveServer, connector: SplioConnector) -> None:
    report = connector.check()
    assert report["ok"] is True and report["missing"] == [] and report["custom_fields"] == len(emulation.FIELDS)
    assert set(report["permissions"]) == {"GET /data/fields/contacts", "POST /data/contacts/bulk",
                                          "PATCH /data/contacts/{key}", "POST /data/contacts/{key}/lists/subscribe",
                                          "POST /data/contacts/{key}/lists/unsubscribe", "DELETE /data/contacts/bulk"}
    # A key Splio forbids to delete: the check names what is missing, and the probes wrote nothing.
    requests.post(f"{server.url}/_sandbox/faults", json={"vendor": "splio", "status": 403, "path": "/splio/data/contacts/bulk",
                                                         "body": {"status": 403, "errors": []}}, timeout=5)
    report = connector.check()
    assert report["ok"] is False
    assert report["missing"] == ["DELETE /data/contacts/bulk", "POST /data/contacts/bulk"]
    assert requests.get(f"{server.url}/_sandbox/splio/contacts", timeout=5).json() == {}
    names = {f["name"]: f["type"] for f in connector.fields()}
    assert names["referral_nb_converted_customers"] == "int"
    assert names["referral_turnover_generated"] == "double"
    assert "ext_id" not in names


def test_sandbox_limits_batch_size_and_rate(server: LiveServer) -> None:
    http = requests.Session()
    auth = http.post(f"{server.url}/splio/authenticate", json={"api_key": emulation.API_KEY}, timeout=5)
    http.headers["Authorization"] = f"Bearer {auth.json()['token']}"
    contacts = [{"email": f"p{i}@example.com"} for i in range(1001)]
    too_many = http.post(f"{server.url}/splio/data/contacts/bulk", json={"contacts": contacts}, timeout=5)
    assert too_many.status_code == 400
    # 10/s in fixed windows: 31 calls inside three windows must meet at least one 429.
    answers = [http.get(f"{server.url}/splio/data/fields/contacts", timeout=5) for _ in range(31)]
    http.close()
    refused = [a for a in answers if a.status_code == 429]
    assert refused and all("Retry-After" not in a.headers for a in refused)
    assert refused[0].json() == {"message": "API rate limit exceeded"}
    assert int(refused[0].headers["RateLimit-Reset"]) >= 1 and refused[0].headers["RateLimit-Remaining"] == "0"


def raw(connector: SplioConnector, method: str, path: str, body: Any) -> requests.Response:
    """A call past the connector, to see the sandbox's own answer."""
    connector.authenticate()
    return requests.request(method, f"{connector.base_url}{path}", json=body, timeout=5,
                            headers=connector.auth_headers())


def test_custom_field_values_must_be_strings_and_unknown_keys_are_refused(connector: SplioConnector) -> None:
    number = raw(connector, "POST", "/data/contacts", {"email": "anna@example.com", "custom_fields": [
        {"name": "referral_nb_potential_referred", "value": 12}]})
    assert number.status_code == 400
    assert number.json()["errors"][0] == {"error_key": "custom_fields.referral_nb_potential_referred",
                                          "error": "wrong_value", "error_description": "Value 12 must be a string."}
    unknown = raw(connector, "POST", "/data/contacts", {"email": "anna@example.com", "marketing_optin": True})
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["error_key"] == "marketing_optin"
    not_int = raw(connector, "POST", "/data/contacts", {"email": "anna@example.com", "custom_fields": [
        {"name": "referral_nb_potential_referred", "value": "twelve"}]})
    assert not_int.status_code == 400
    ok = raw(connector, "POST", "/data/contacts", {"email": "anna@example.com", "custom_fields": [
        {"name": "referral_nb_potential_referred", "value": "12"}]})
    assert ok.status_code == 201, ok.text
    patched = raw(connector, "PATCH", "/data/contacts/anna@example.com", {"custom_fields": [
        {"id": 4, "value": 59.9}]})
    assert patched.status_code == 400


def test_reject_rule_fails_only_that_contact(server: LiveServer, connector: SplioConnector) -> None:
    reject = ContactUpdate(email="reject-zed@example.com", fields={"referral_promocode": "Z"},
                           lists={"25": MARKETING}, marketing_consent=True)
    result = connector.push([reject, *friends()])
    assert set(result.failed) == {"reject-zed@example.com"} and result.failed["reject-zed@example.com"].status == 400
    assert held(server, "bob@example.com")["lists"] == ["25"]


def test_an_unsubscribe_made_in_splio_survives_a_new_marketing_list(server: LiveServer,
                                                                    connector: SplioConnector) -> None:
    assert connector.push(friends()[:1]).failed == {}
    # Bob unsubscribes from the newsletter inside Splio.
    assert raw(connector, "POST", "/data/contacts/bob@example.com/lists/unsubscribe", {"list_ids": [25]}).ok
    remapped = ContactUpdate(email="bob@example.com", fields={"referral_referred_by": "ref-anna"},
                             lists={"25": MARKETING, "26": MARKETING}, marketing_consent=True,
                             previous_lists={"25": MARKETING}, previous_consent=True)
    assert connector.push([remapped]).failed == {}
    bob = held(server, "bob@example.com")
    assert bob["lists"] == [] and bob["marketing_consent"] is False
