"""The Klaviyo sandbox refuses what Klaviyo refuses, and the connector against it over real HTTP."""
from __future__ import annotations

from typing import Any

import pytest
import requests

from connectors.base import MARKETING, TRANSACTIONAL, ContactUpdate
from connectors.errors import FatalVendorError
from connectors.klaviyo import REVISION, KlaviyoConnector
from connectors.ratelimit import RateLimiter
from sandbox import klaviyo as emulation
from tests.conftest import LiveServer

HEADERS = {"Authorization": f"Klaviyo-API-Key {emulation.API_KEY}", "revision": REVISION,
           "Content-Type": "application/vnd.api+json", "Accept": "application/vnd.api+json"}


@pytest.fixture
def connector(server: LiveServer, redis_client) -> KlaviyoConnector:  # type: ignore[no-untyped-def]
    return KlaviyoConnector({"api_key": emulation.API_KEY, "base_url": f"{server.url}/klaviyo"},
                            limiter=RateLimiter(redis_client, "sandbox-test"))


def call(server: LiveServer, method: str, path: str, body: Any = None, key: str = emulation.API_KEY,
         **kw: Any) -> requests.Response:
    headers = {**HEADERS, "Authorization": f"Klaviyo-API-Key {key}"}
    return requests.request(method, f"{server.url}/klaviyo{path}", json=body, headers=headers, timeout=5, **kw)


def control(server: LiveServer, path: str, body: Any) -> None:
    response = requests.post(f"{server.url}/_sandbox/klaviyo/{path}", json=body, timeout=5)
    assert response.ok, response.text


def held(server: LiveServer, email: str) -> dict[str, Any] | None:
    response = requests.get(f"{server.url}/_sandbox/klaviyo/contacts/{email}", timeout=5)
    return response.json() if response.ok else None


def refused(response: requests.Response, detail: str, pointer: str) -> None:
    """Klaviyo's 400: one JSON:API error naming the field and where it is."""
    assert response.status_code == 400, response.text
    error = response.json()["errors"][0]
    assert {k: error[k] for k in ("status", "code", "title", "detail")} == {
        "status": 400, "code": "invalid", "title": "Invalid input.", "detail": detail}
    assert error["source"] == {"pointer": pointer} and error["id"]


def profile_body(**attributes: Any) -> dict[str, Any]:
    return {"data": {"type": "profile", "attributes": {"email": "cleo@example.com", **attributes}}}


def subscribe_body(subscriptions: Any, **attributes: Any) -> dict[str, Any]:
    return {"data": {"type": "profile-subscription-bulk-create-job", "attributes": {"profiles": {"data": [
        {"type": "profile", "attributes": {"email": "cleo@example.com", "subscriptions": subscriptions, **attributes}}]}},
        "relationships": {"list": {"data": {"type": "list", "id": "RfMkt1"}}}}}


SUBSCRIBED = {"email": {"marketing": {"consent": "SUBSCRIBED"}}}


# -- refusals -------------------------------------------------------------------------------------
def test_an_unknown_attribute_is_refused_and_nothing_is_stored(server: LiveServer) -> None:
    refused(call(server, "POST", "/api/profile-import", profile_body(referral_promo_code="ANNA-20")),
            "'referral_promo_code' is not a valid field for the resource 'profile'.", "/data/attributes/referral_promo_code")
    assert held(server, "cleo@example.com") is None
    accepted = call(server, "POST", "/api/profile-import", profile_body(properties={"referral_promo_code": "ANNA-20"}))
    assert accepted.status_code == 201
    assert held(server, "cleo@example.com")["fields"] == {"referral_promo_code": "ANNA-20"}  # type: ignore[index]


def test_an_unknown_attribute_in_a_bulk_import_is_refused_with_its_place(server: LiveServer) -> None:
    body = {"data": {"type": "profile-bulk-import-job", "attributes": {"profiles": {"data": [
        {"type": "profile", "attributes": {"email": "a@example.com"}},
        {"type": "profile", "attributes": {"email": "b@example.com", "referral_turnover": 59.9}}]}}}}
    refused(call(server, "POST", "/api/profile-bulk-import-jobs", body),
            "'referral_turnover' is not a valid field for the resource 'profile'.",
            "/data/attributes/profiles/data/1/attributes/referral_turnover")
    assert held(server, "a@example.com") is None


def test_a_subscription_job_takes_no_profile_attributes(server: LiveServer) -> None:
    # verbb/formie#1986: Klaviyo refused `last_name` in a subscription job in just these words.
    refused(call(server, "POST", "/api/profile-subscription-bulk-create-jobs", subscribe_body(SUBSCRIBED, last_name="Lee")),
            "'last_name' is not a valid field for the resource 'profile'.",
            "/data/attributes/profiles/data/0/attributes/last_name")


@pytest.mark.parametrize(("subscriptions", "detail", "where"), [
    ({"email": {"consent": "SUBSCRIBED"}}, "'consent' is not a valid field for the resource 'email'.", "/email/consent"),
    ({"marketing": {"consent": "SUBSCRIBED"}}, "'marketing' is not a valid field for the resource 'subscriptions'.",
     "/marketing"),
    ({"email": {"marketing": {"status": "SUBSCRIBED"}}}, "'status' is not a valid field for the resource 'marketing'.",
     "/email/marketing/status"),
    ({"email": {"marketing": {}}}, "'consent' is a required field for the resource 'marketing'.",
     "/email/marketing/consent"),
    ({"email": {"marketing": {"consent": "UNSUBSCRIBED"}}},
     "'UNSUBSCRIBED' is not a valid choice for 'consent'; expected one of ['SUBSCRIBED'].", "/email/marketing/consent"),
])
def test_consent_nested_in_the_wrong_place_is_refused(server: LiveServer, subscriptions: Any, detail: str,
                                                      where: str) -> None:
    refused(call(server, "POST", "/api/profile-subscription-bulk-create-jobs", subscribe_body(subscriptions)),
            detail, "/data/attributes/profiles/data/0/attributes/subscriptions" + where)
    assert held(server, "cleo@example.com") is None


def test_consent_on_the_profile_itself_is_refused(server: LiveServer) -> None:
    refused(call(server, "POST", "/api/profile-import", profile_body(subscriptions=SUBSCRIBED)),
            "'subscriptions' is not a valid field for the resource 'profile'.", "/data/attributes/subscriptions")


@pytest.mark.parametrize(("path", "body", "detail", "pointer"), [
    ("/api/profile-import", profile_body(first_name=7), "'first_name' must be of type string.",
     "/data/attributes/first_name"),
    ("/api/profile-import", profile_body(properties=["x"]), "'properties' must be of type object.",
     "/data/attributes/properties"),
    ("/api/profile-import", {"data": {"type": "profiles", "attributes": {"email": "c@example.com"}}},
     "'profiles' is not a valid choice for 'type'; expected one of ['profile'].", "/data/type"),
    ("/api/profile-import", {"data": {"type": "profile"}}, "'attributes' is a required field for the resource 'profile'.",
     "/data/attributes"),
    ("/api/lists/RfMkt1/relationships/profiles", {"data": [{"type": "profile", "id": 17}]},
     "'id' must be of type string and not null.", "/data/0/id"),
    ("/api/profile-subscription-bulk-create-jobs",
     {**subscribe_body(SUBSCRIBED), "data": {**subscribe_body(SUBSCRIBED)["data"], "attributes": {
         **subscribe_body(SUBSCRIBED)["data"]["attributes"], "historical_import": "yes"}}},
     "'historical_import' must be of type boolean.", "/data/attributes/historical_import"),
])
def test_a_wrong_value_type_is_refused(server: LiveServer, path: str, body: Any, detail: str, pointer: str) -> None:
    refused(call(server, "POST", path, body), detail, pointer)


def test_a_body_that_is_not_json_is_refused(server: LiveServer) -> None:
    response = requests.post(f"{server.url}/klaviyo/api/profile-import", data="{not json", headers=HEADERS, timeout=5)
    refused(response, "The payload provided in the request is invalid.", "/data")


def test_a_missing_scope_is_a_403_in_klaviyo_s_error_shape(server: LiveServer) -> None:
    control(server, "keys", {"key": "pk_readonly", "scopes": ["accounts:read", "lists:read", "profiles:read"]})
    assert call(server, "GET", "/api/accounts", key="pk_readonly").status_code == 200
    denied = call(server, "POST", "/api/profile-import", profile_body(), key="pk_readonly")
    assert denied.status_code == 403
    error = denied.json()["errors"][0]
    assert error["code"] == "permission_denied" and "profiles:write" in error["detail"]
    assert held(server, "cleo@example.com") is None
    assert call(server, "GET", "/api/accounts", key="pk_unknown").status_code == 401


# -- the reject- rule -------------------------------------------------------------------------------
def test_reject_addresses_are_invalid_alone(server: LiveServer, connector: KlaviyoConnector) -> None:
    refused(call(server, "POST", "/api/profile-import", profile_body(email="reject-me@example.com")),
            "Invalid email address.", "/data/attributes/email")
    batch = [ContactUpdate(email="anna@example.com", fields={"first_name": "Anna"}),
             ContactUpdate(email="reject-me@example.com", fields={"first_name": "Rex"})]
    result = connector.push(batch)
    assert list(result.failed) == ["reject-me@example.com"]
    assert result.failed["reject-me@example.com"].message == "Invalid input.: Invalid email address."
    assert held(server, "anna@example.com")["fields"] == {"first_name": "Anna"}  # type: ignore[index]
    assert held(server, "reject-me@example.com") is None
    with pytest.raises(FatalVendorError):
        connector.push([ContactUpdate(email="reject-me@example.com")])


# -- asynchronous import jobs -----------------------------------------------------------------------
def test_a_job_can_stay_processing_for_a_number_of_status_reads(server: LiveServer, connector: KlaviyoConnector) -> None:
    control(server, "jobs", {"processing_polls": 2})
    batch = [ContactUpdate(email="anna@example.com", fields={"first_name": "Anna"}),
             ContactUpdate(email="cleo@example.com", lists={"RfMkt1": MARKETING}, marketing_consent=True)]
    result = connector.push(batch)
    assert result.failed == {} and list(result.pending.values()) == [["anna@example.com", "cleo@example.com"]]
    [ref] = result.pending
    assert held(server, "anna@example.com") is None, "nothing lands before the job completes"
    assert connector.check_job(ref, ["anna@example.com", "cleo@example.com"]).done is False
    done = connector.check_job(ref, ["anna@example.com", "cleo@example.com"])
    assert done.done and done.failed == {}
    assert held(server, "anna@example.com")["fields"] == {"first_name": "Anna"}  # type: ignore[index]
    assert held(server, "cleo@example.com")["marketing_consent"] is None
    assert connector.finish([batch[1]]).failed == {}
    assert held(server, "cleo@example.com")["marketing_consent"] is True  # type: ignore[index]


def test_import_errors_come_in_pages_and_every_page_is_read(server: LiveServer, connector: KlaviyoConnector) -> None:
    bad = [f"reject-{i:03d}@example.com" for i in range(130)]     # more than one page of 100
    result = connector.push([ContactUpdate(email="anna@example.com")] + [ContactUpdate(email=e) for e in bad])
    assert sorted(result.failed) == bad
    job_id = next(r["path"] for r in requests.get(f"{server.url}/_sandbox/requests", timeout=5).json()["requests"]
                  if r["path"].endswith("/import-errors")).split("/")[-2]
    first = call(server, "GET", f"/api/profile-bulk-import-jobs/{job_id}/import-errors")
    assert len(first.json()["data"]) == 20 and first.json()["links"]["next"]
    pages, url = 0, f"/api/profile-bulk-import-jobs/{job_id}/import-errors?page[size]=50"
    seen: list[str] = []
    while url:
        body = call(server, "GET", url.removeprefix(f"{server.url}/klaviyo")).json()
        seen += [e["attributes"]["original_payload"]["email"] for e in body["data"]]
        url, pages = body["links"].get("next"), pages + 1
    assert pages == 3 and sorted(seen) == bad
    assert call(server, "GET", f"/api/profile-bulk-import-jobs/{job_id}/import-errors?page[size]=101").status_code == 400


# -- suppressions and consent -----------------------------------------------------------------------
def test_a_subscription_lifts_a_suppression_which_is_why_the_connector_checks_first(
        server: LiveServer, connector: KlaviyoConnector) -> None:
    call(server, "POST", "/api/profile-import", profile_body(email="unsub@example.com"))
    control(server, "suppressions", {"email": "unsub@example.com", "reason": "UNSUBSCRIBE"})
    control(server, "suppressions", {"email": "spam@example.com", "reason": "SPAM_COMPLAINT"})
    control(server, "suppressions", {"email": "held@example.com", "reason": "USER_SUPPRESSED"})
    looked = call(server, "GET", "/api/profiles", params={
        "filter": 'any(email,["unsub@example.com"])', "additional-fields[profile]": "subscriptions"}).json()
    marketing = looked["data"][0]["attributes"]["subscriptions"]["email"]["marketing"]
    assert marketing["consent"] == "UNSUBSCRIBED" and marketing["can_receive_email_marketing"] is False
    assert [s["reason"] for s in marketing["suppression"]] == ["UNSUBSCRIBE"]

    granted = [ContactUpdate(email=e, lists={"RfMkt1": MARKETING}, marketing_consent=True)
               for e in ("unsub@example.com", "spam@example.com", "held@example.com", "new@example.com")]
    assert connector.push(granted).failed == {}
    assert held(server, "new@example.com")["marketing_consent"] is True  # type: ignore[index]
    for email in ("unsub@example.com", "spam@example.com"):
        assert held(server, email)["marketing_consent"] is False, email  # type: ignore[index]
        assert held(server, email)["lists"] == []  # type: ignore[index]
    assert held(server, "held@example.com")["marketing_consent"] is None  # type: ignore[index]
    assert requests.get(f"{server.url}/_sandbox/klaviyo/suppressions/held@example.com", timeout=5).json()[
        "suppression"][0]["reason"] == "USER_SUPPRESSED"

    # What the connector avoided: Klaviyo's subscription lifts the suppression.
    assert call(server, "POST", "/api/profile-subscription-bulk-create-jobs",
                subscribe_body(SUBSCRIBED, email="unsub@example.com")).status_code == 202
    assert held(server, "unsub@example.com")["marketing_consent"] is True  # type: ignore[index]
    assert requests.get(f"{server.url}/_sandbox/klaviyo/suppressions/unsub@example.com", timeout=5).json()[
        "suppression"] == []


def test_plain_list_membership_leaves_consent_alone(server: LiveServer, connector: KlaviyoConnector) -> None:
    call(server, "POST", "/api/profile-import", profile_body())
    pid = call(server, "GET", "/api/profiles", params={"filter": 'any(email,["cleo@example.com"])'}).json()["data"][0]["id"]
    assert call(server, "POST", "/api/lists/RfMkt1/relationships/profiles",
                {"data": [{"type": "profile", "id": pid}]}).status_code == 204
    assert held(server, "cleo@example.com")["lists"] == ["RfMkt1"]  # type: ignore[index]
    assert held(server, "cleo@example.com")["marketing_consent"] is None  # type: ignore[index]


def test_unsubscribing_from_a_list_the_profile_is_not_in_is_global(server: LiveServer) -> None:
    body = {"data": {"type": "profile-subscription-bulk-delete-job", "attributes": {"profiles": {"data": [
        {"type": "profile", "attributes": {"email": "cleo@example.com", "subscriptions": {
            "email": {"marketing": {"consent": "UNSUBSCRIBED"}}}}}]}},
        "relationships": {"list": {"data": {"type": "list", "id": "RfMkt1"}}}}}
    assert call(server, "POST", "/api/profile-subscription-bulk-delete-jobs", body).status_code == 202
    assert held(server, "cleo@example.com")["marketing_consent"] is False  # type: ignore[index]


# -- the connector end to end against the sandbox ---------------------------------------------------
def test_push_move_withdraw_and_erase_round_trip(server: LiveServer, connector: KlaviyoConnector) -> None:
    batch = [ContactUpdate(email="anna@example.com", fields={"first_name": "Anna", "referral_friends_invited": 2}),
             ContactUpdate(email="cleo@example.com", fields={"referral_promo_code": "ANNA-20"},
                           lists={"RfMkt1": MARKETING, "RfTxn1": TRANSACTIONAL}, marketing_consent=True)]
    assert connector.push(batch).failed == {}
    assert held(server, "anna@example.com")["fields"] == {"first_name": "Anna", "referral_friends_invited": 2}  # type: ignore[index]
    cleo = held(server, "cleo@example.com")
    assert cleo["lists"] == ["RfMkt1", "RfTxn1"] and cleo["marketing_consent"] is True  # type: ignore[index]

    withdrawn = ContactUpdate(email="cleo@example.com", marketing_consent=False, lists={"RfTxn1": TRANSACTIONAL},
                              previous_lists={"RfMkt1": MARKETING, "RfTxn1": TRANSACTIONAL}, previous_consent=True)
    assert connector.push([withdrawn]).failed == {}
    assert held(server, "cleo@example.com")["lists"] == ["RfTxn1"]  # type: ignore[index]

    assert connector.erase(["anna@example.com"]).failed == {}
    assert held(server, "anna@example.com")["deleted"] is True  # type: ignore[index]


def test_check_against_a_key_with_limited_scopes(server: LiveServer, connector: KlaviyoConnector) -> None:
    assert connector.check()["ok"] is True
    control(server, "keys", {"key": "pk_no_subscriptions", "scopes": sorted(
        emulation.ALL_SCOPES - {"subscriptions:write", "lists:read"})})
    limited = KlaviyoConnector({"api_key": "pk_no_subscriptions", "base_url": f"{server.url}/klaviyo"})
    result = limited.check()
    assert result["ok"] is False and result["missing"] == ["lists:read", "subscriptions:write"]
