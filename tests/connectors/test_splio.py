"""Splio connector against mocked HTTP: JWT auth, bulk create vs PATCH, subscriptions, 207s."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest
import responses

from connectors.base import MARKETING, TRANSACTIONAL, ContactUpdate
from connectors.errors import AuthError, FatalVendorError, RetriableVendorError
from connectors.ratelimit import RateLimiter
from connectors.splio import SplioConnector

BASE = "https://api.splio.test"
KEY = "splio-secret-key-456"
JWT = "eyJ.header.sig"


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def connector(redis_client, waits) -> SplioConnector:  # type: ignore[no-untyped-def]
    return SplioConnector({"api_key": KEY, "base_url": BASE}, limiter=RateLimiter(redis_client, "test"),
                          sleep=waits.append)


def authenticates(token: str = JWT) -> None:
    responses.post(f"{BASE}/authenticate", json={"token": token})


def multi(*items: tuple[str, int, str]) -> dict:
    return {"time": 12, "errors": sum(1 for _, code, _ in items if code >= 300),
            "items": [{"contact_id": k, "code": c, "description": d} for k, c, d in items]}


def referrer(previous: dict | None = None) -> ContactUpdate:
    return ContactUpdate(email="anna@example.com", identity={"email": "anna@example.com"},
                         fields={"firstname": "Anna", "referral_nb_potential_referred": 12,
                                 "referral_turnover_generated": 349.9, "referral_referrer_id": "ref-1"},
                         previous_lists=previous)


def opted_in_friend() -> ContactUpdate:
    return ContactUpdate(email="bob@example.com", identity={"email": "bob@example.com"},
                         fields={"referral_promocode": "ANNA-20"}, lists={"25": MARKETING}, marketing_consent=True)


def customer_friend() -> ContactUpdate:
    return ContactUpdate(email="cat@example.com", identity={"email": "cat@example.com"},
                         lists={"26": TRANSACTIONAL}, marketing_consent=False)


def body(call) -> object:  # type: ignore[no-untyped-def]
    return json.loads(call.request.body)


@responses.activate
def test_push_bulk_creates_new_contacts_and_patches_the_rest(connector: SplioConnector) -> None:
    authenticates()
    responses.post(f"{BASE}/data/contacts/bulk", status=207, json=multi(
        ("bob@example.com", 201, ""),
        ("cat@example.com", 400, "Contact with unique key cat@example.com already exists")))
    responses.patch(f"{BASE}/data/contacts/anna@example.com", json={})
    responses.post(f"{BASE}/data/contacts/cat@example.com/lists/subscribe", json={})
    result = connector.push([referrer(previous={}), opted_in_friend(), customer_friend()])
    assert result.failed == {}
    calls = [(c.request.method, c.request.url.removeprefix(BASE)) for c in responses.calls]
    assert calls == [("POST", "/authenticate"), ("POST", "/data/contacts/bulk"),
                     ("PATCH", "/data/contacts/anna@example.com"),
                     ("POST", "/data/contacts/cat@example.com/lists/subscribe")]
    assert body(responses.calls[0]) == {"api_key": KEY}
    assert body(responses.calls[1]) == {"contacts": [
        {"custom_fields": [{"name": "referral_promocode", "value": "ANNA-20"}], "email": "bob@example.com",
         "lists": [{"id": 25}]},
        {"email": "cat@example.com", "lists": [{"id": 26}]}]}
    # PATCH never carries `lists`: it would replace every membership.
    assert body(responses.calls[2]) == {"firstname": "Anna", "custom_fields": [
        {"name": "referral_nb_potential_referred", "value": "12"},
        {"name": "referral_turnover_generated", "value": "349.9"},
        {"name": "referral_referrer_id", "value": "ref-1"}]}
    assert body(responses.calls[3]) == {"list_ids": [26]}


@responses.activate
def test_custom_field_values_are_strings_and_decimals_keep_their_places(connector: SplioConnector) -> None:
    authenticates()
    patch = responses.patch(f"{BASE}/data/contacts/anna@example.com", json={})
    update = ContactUpdate(email="anna@example.com", previous_lists={},
                           fields={"referral_turnover_generated": Decimal("59.90"), "4": 3, "language": "fr"})
    assert connector.push([update]).failed == {}
    assert body(patch.calls[0]) == {"custom_fields": [{"name": "referral_turnover_generated", "value": "59.90"},
                                                      {"id": 4, "value": "3"}], "language": "fr"}


@responses.activate
def test_a_marketing_list_added_to_the_mapping_does_not_subscribe_known_contacts(connector: SplioConnector) -> None:
    authenticates()
    subscribe = responses.post(f"{BASE}/data/contacts/bob@example.com/lists/subscribe", json={})
    # Bob consented long ago; the mapping now also names newsletter 27 and a customers list 26.
    bob = ContactUpdate(email="bob@example.com", lists={"25": MARKETING, "27": MARKETING, "26": TRANSACTIONAL},
                        marketing_consent=True, previous_lists={"25": MARKETING}, previous_consent=True)
    assert connector.push([bob]).failed == {}
    assert [body(c) for c in subscribe.calls] == [{"list_ids": [26]}]
    # Consent given now (no -> yes) subscribes every marketing list the mapping names.
    regained = ContactUpdate(email="bob@example.com", lists={"25": MARKETING, "27": MARKETING},
                             marketing_consent=True, previous_lists={}, previous_consent=False)
    assert connector.push([regained]).failed == {}
    assert body(subscribe.calls[1]) == {"list_ids": [25, 27]}


@responses.activate
def test_withdrawn_consent_unsubscribes_from_the_newsletter(connector: SplioConnector) -> None:
    authenticates()
    responses.post(f"{BASE}/data/contacts/bob@example.com/lists/unsubscribe", json={})
    update = ContactUpdate(email="bob@example.com", marketing_consent=False,
                           previous_lists={"25": MARKETING}, previous_consent=True)
    assert connector.push([update]).failed == {}
    assert [c.request.url.removeprefix(BASE) for c in responses.calls] == [
        "/authenticate", "/data/contacts/bob@example.com/lists/unsubscribe"]
    assert body(responses.calls[1]) == {"list_ids": [25]}


@responses.activate
def test_jwt_is_cached_and_sent_as_bearer(connector: SplioConnector) -> None:
    authenticates()
    responses.patch(f"{BASE}/data/contacts/anna@example.com", json={})
    connector.push([referrer(previous={})])
    connector.push([referrer(previous={})])
    assert [c.request.url.removeprefix(BASE) for c in responses.calls].count("/authenticate") == 1
    auth_call, *data_calls = responses.calls
    assert "Authorization" not in auth_call.request.headers
    assert auth_call.request.headers["Content-Type"] == "application/json"
    assert all(c.request.headers["Authorization"] == f"Bearer {JWT}" for c in data_calls)


@responses.activate
def test_401_reauthenticates_once_then_retries(connector: SplioConnector) -> None:
    authenticates("old.jwt")
    authenticates("new.jwt")
    responses.patch(f"{BASE}/data/contacts/anna@example.com", status=401, json={"status": 401, "errors": [
        {"error_key": "authorization", "error": "unauthorized", "error_description": "Token expired"}]})
    responses.patch(f"{BASE}/data/contacts/anna@example.com", json={})
    assert connector.push([referrer(previous={})]).failed == {}
    assert [c.request.headers.get("Authorization") for c in responses.calls] == [
        None, "Bearer old.jwt", None, "Bearer new.jwt"]


@responses.activate
def test_wrong_api_key_raises_auth_error_without_the_key(connector: SplioConnector) -> None:
    responses.post(f"{BASE}/authenticate", status=401, json={"status": 401, "errors": [
        {"error_key": "api_key", "error": "wrong_value", "error_description": "Authentication failed."}]})
    with pytest.raises(AuthError) as info:
        connector.check()
    assert info.value.status == 401 and KEY not in str(info.value)
    assert len(responses.calls) == 1


@responses.activate
def test_second_401_after_reauth_is_an_auth_error(connector: SplioConnector) -> None:
    authenticates()
    responses.patch(f"{BASE}/data/contacts/anna@example.com", status=401, json={"message": "Unauthorized"})
    with pytest.raises(AuthError):
        connector.push([referrer(previous={})])
    assert len(responses.calls) == 4


@responses.activate
def test_429_waits_ratelimit_reset_then_succeeds(connector: SplioConnector, waits: list[float]) -> None:
    authenticates()
    responses.post(f"{BASE}/data/contacts/bulk", status=429, json={"message": "API rate limit exceeded"},
                   headers={"RateLimit-Limit": "20", "RateLimit-Remaining": "0", "RateLimit-Reset": "2"})
    responses.post(f"{BASE}/data/contacts/bulk", status=207, json=multi(("bob@example.com", 201, "")))
    assert connector.push([opted_in_friend()]).failed == {}
    assert waits == [2.0]
    assert len(responses.calls) == 3


@responses.activate
def test_fatal_400_on_bulk_is_raised(connector: SplioConnector) -> None:
    authenticates()
    responses.post(f"{BASE}/data/contacts/bulk", status=400, json={"status": 400, "errors": [
        {"error_key": "contacts", "error": "wrong_value", "error_description": "Between 1 and 1000 contacts"}]})
    with pytest.raises(FatalVendorError) as info:
        connector.push([opted_in_friend()])
    assert info.value.code == "wrong_value"
    assert info.value.message == "contacts: Between 1 and 1000 contacts"


@responses.activate
def test_fatal_400_on_one_patch_fails_that_contact_only(connector: SplioConnector) -> None:
    authenticates()
    responses.patch(f"{BASE}/data/contacts/anna@example.com", status=400, json={"status": 400, "errors": [
        {"error_key": "custom_fields", "error": "wrong_value", "error_description": "Custom field x does not exist."}]})
    responses.patch(f"{BASE}/data/contacts/dan@example.com", json={})
    dan = ContactUpdate(email="dan@example.com", fields={"firstname": "Dan"}, previous_lists={})
    result = connector.push([referrer(previous={}), dan])
    assert list(result.failed) == ["anna@example.com"]
    assert result.failed["anna@example.com"].message == "custom_fields: Custom field x does not exist."


@responses.activate
def test_5xx_exhausts_retries(connector: SplioConnector, waits: list[float]) -> None:
    authenticates()
    responses.post(f"{BASE}/data/contacts/bulk", status=502, body="bad gateway")
    with pytest.raises(RetriableVendorError):
        connector.push([opted_in_friend()])
    assert len(responses.calls) == 4  # authenticate + 3 attempts
    assert waits == [0.5, 1.0]


@responses.activate
def test_207_item_errors_fail_those_contacts(connector: SplioConnector) -> None:
    authenticates()
    responses.post(f"{BASE}/data/contacts/bulk", status=207, json=multi(
        ("bob@example.com", 201, ""), ("cat@example.com", 400, "Invalid email address cat@example.com.")))
    result = connector.push([opted_in_friend(), customer_friend()])
    assert list(result.failed) == ["cat@example.com"]
    error = result.failed["cat@example.com"]
    assert isinstance(error, FatalVendorError) and error.status == 400
    assert error.message == "Invalid email address cat@example.com."


@responses.activate
def test_patch_404_falls_back_to_bulk_create(connector: SplioConnector) -> None:
    authenticates()
    responses.patch(f"{BASE}/data/contacts/anna@example.com", status=404, json={"status": 404, "errors": [
        {"error_key": "id", "error": "wrong_value", "error_description": "Contact not found"}]})
    responses.post(f"{BASE}/data/contacts/bulk", status=207, json=multi(("anna@example.com", 201, "")))
    assert connector.push([referrer(previous={})]).failed == {}
    assert body(responses.calls[2])["contacts"][0]["email"] == "anna@example.com"  # type: ignore[index]


@responses.activate
def test_erase_bulk_deletes_and_treats_not_found_as_gone(connector: SplioConnector) -> None:
    authenticates()
    responses.delete(f"{BASE}/data/contacts/bulk", status=207, json=multi(
        ("anna@example.com", 204, ""), ("bob@example.com", 404, "Contact not found for id bob@example.com."),
        ("cat@example.com", 500, "internal")))
    result = connector.erase(["anna@example.com", "bob@example.com", "cat@example.com"])
    assert body(responses.calls[1]) == {"contacts": ["anna@example.com", "bob@example.com", "cat@example.com"]}
    assert list(result.failed) == ["cat@example.com"] and result.failed["cat@example.com"].retriable


@responses.activate
def test_fields_lists_custom_fields_with_types(connector: SplioConnector) -> None:
    authenticates()
    responses.get(f"{BASE}/data/fields/contacts", json={"count_element": 2, "current_page": 1, "per_page": 100,
                                                        "elements": [
        {"id": 0, "name": "ext_id", "is_system": True},
        {"id": 3, "name": "referral_nb_converted_customers", "data_type": "int", "is_system": False}]})
    assert connector.fields() == [{"name": "referral_nb_converted_customers", "id": 3, "type": "int"}]
    assert responses.calls[1].request.url == f"{BASE}/data/fields/contacts?per_page=100&page_number=1"
    assert connector.limits_for("GET", "/data/fields/contacts") == ("default", ((10, 1.0),))
    assert connector.limits_for("PATCH", "/data/contacts/a@b.c") == ("contacts", ((20, 1.0),))
