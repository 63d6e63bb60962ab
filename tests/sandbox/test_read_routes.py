"""The sandbox's read routes (the audit's reads) and its drift route, over real HTTP: each read
returns what a push wrote, refuses what the vendor refuses, and sees a drift made behind the
hub's back."""
from __future__ import annotations

import time
from typing import Any, Iterator

import pytest
import requests

from connectors.base import MARKETING, TRANSACTIONAL, Connector, ContactUpdate
from connectors.ratelimit import RateLimiter
from sandbox import DEMO_SETTINGS, create_sandbox
from tests.conftest import LiveServer

LISTS = {"klaviyo": ("RfMkt1", "RfTxn1"), "emarsys": ("740001", "740002"),
         "salesforce": ("701Rf000000Mkt1AAA", "701Rf000000Txn1AAA"), "splio": ("25", "26")}
# One number field per vendor, as its default mapping names it.
NUMBER = {"klaviyo": "referral_friends_converted", "emarsys": "12003",
          "salesforce": "Referral_Friends_Converted__c", "splio": "referral_nb_converted_customers"}
IDENTITY = {"klaviyo": "email", "emarsys": "3", "salesforce": "Referral_Hub_Email__c", "splio": "email"}


@pytest.fixture
def server() -> Iterator[LiveServer]:
    live = LiveServer(create_sandbox())
    yield live
    live.stop()


def client(server: LiveServer, redis_client: Any, vendor: str) -> Connector:
    from connectors import CONNECTORS

    return CONNECTORS[vendor]({**DEMO_SETTINGS[vendor], "base_url": f"{server.url}/{vendor}"},
                              limiter=RateLimiter(redis_client, "sandbox-test"), sleep=lambda s: None)


def friend(vendor: str, converted: int = 1) -> ContactUpdate:
    marketing, customers = LISTS[vendor]
    fields: dict[str, Any] = {NUMBER[vendor]: converted}
    if vendor == "salesforce":
        fields["LastName"] = "Lovelace"
    return ContactUpdate(email="cleo@example.com", identity={IDENTITY[vendor]: "cleo@example.com"}, fields=fields,
                         lists={marketing: MARKETING, customers: TRANSACTIONAL}, marketing_consent=True)


def drift(server: LiveServer, vendor: str, email: str, **change: Any) -> requests.Response:
    return requests.patch(f"{server.url}/_sandbox/{vendor}/contacts/{email}", json=change, timeout=5)


@pytest.mark.parametrize("vendor", sorted(LISTS))
def test_a_read_returns_what_the_push_wrote_and_sees_drift(server, redis_client, vendor: str) -> None:  # type: ignore[no-untyped-def]
    connector = client(server, redis_client, vendor)
    update = friend(vendor)
    assert connector.push([update]).failed == {}
    view = connector.read([update, ContactUpdate(email="nobody@example.com",
                                                 identity={IDENTITY[vendor]: "nobody@example.com"})])
    assert view["nobody@example.com"] is None
    held = view["cleo@example.com"]
    assert held is not None and float(held.fields[NUMBER[vendor]]) == 1.0
    marketing, customers = LISTS[vendor]
    if held.lists is not None:          # Emarsys does not say which lists a contact is in
        assert held.lists == {marketing, customers}
    if held.consent_read:
        assert held.marketing_consent in (True, None)    # Salesforce: only an opt-out is a fact

    assert drift(server, vendor, "cleo@example.com", fields={NUMBER[vendor]: 7}, lists=[marketing]).status_code == 200
    held = connector.read([update])["cleo@example.com"]
    assert held is not None and float(held.fields[NUMBER[vendor]]) == 7.0
    if held.lists is not None:
        assert held.lists == {marketing}


def test_read_routes_refuse_missing_credentials(server) -> None:  # type: ignore[no-untyped-def]
    base = server.url
    assert requests.get(f"{base}/klaviyo/api/profiles/KL1/relationships/lists",
                        headers={"revision": "2026-07-15"}, timeout=5).status_code == 401
    assert requests.post(f"{base}/emarsys/api/v2/contact/getdata", json={"keyId": "3", "keyValues": ["a@b.c"]},
                         timeout=5).status_code == 401
    assert requests.get(f"{base}/splio/data/contacts/a@example.com", timeout=5).json()["errors"][0]["error_key"] \
        == "authorization"
    answer = requests.get(f"{base}/salesforce/services/data/v62.0/query",
                          params={"q": "SELECT ContactId, CampaignId FROM CampaignMember WHERE ContactId IN ('x')"},
                          timeout=5)
    assert answer.status_code == 401 and answer.json()[0]["errorCode"] == "INVALID_SESSION_ID"


def test_emarsys_getdata_refuses_what_emarsys_refuses(server, redis_client) -> None:  # type: ignore[no-untyped-def]
    emarsys = client(server, redis_client, "emarsys")

    def getdata(body: dict[str, Any]) -> requests.Response:
        # The demo credentials are OAuth2's, so the connector speaks v3 with a bearer token.
        return emarsys.session.post(f"{server.url}/emarsys{emarsys.api}/contact/getdata", json=body,  # type: ignore[attr-defined]
                                    headers=emarsys.auth_headers(), timeout=5)
    missing = getdata({"keyId": "3"})
    assert (missing.status_code, missing.json()["replyCode"], missing.json()["replyText"]) == \
        (400, 10001, "Missing parameter: keyValues")
    assert getdata({"keyId": "3", "keyValues": "a@example.com"}).json()["replyText"] == "keyValues must be an array"
    assert getdata({"keyId": "3", "keyValues": [f"{i}@example.com" for i in range(1001)]}).status_code == 400
    assert getdata({"keyId": "3", "keyValues": ["a@example.com"], "fields": [99999]}).json()["replyCode"] == 2007
    none = getdata({"keyId": "3", "keyValues": ["Nobody@Example.com"], "fields": [1]}).json()
    assert none["data"] == {"result": False, "errors": [{"key": "Nobody@Example.com", "errorCode": "2008",
                                                         "errorMsg": "No contact found with the external id: 3"}]}


def test_klaviyo_subscriptions_only_when_asked_and_lists_of_unknown_profile(server, redis_client) -> None:  # type: ignore[no-untyped-def]
    klaviyo = client(server, redis_client, "klaviyo")
    klaviyo.push([friend("klaviyo")])
    plain = klaviyo.request("GET", "/api/profiles", params={"filter": 'any(email,["cleo@example.com"])'}).json()
    attributes = plain["data"][0]["attributes"]
    assert "subscriptions" not in attributes and attributes["properties"] == {"referral_friends_converted": 1}
    missing = requests.get(f"{server.url}/klaviyo/api/profiles/NOPE/relationships/lists",
                           headers=klaviyo.auth_headers(), timeout=5)
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "not_found"


def test_salesforce_campaign_member_query_checks_its_columns(server, redis_client) -> None:  # type: ignore[no-untyped-def]
    salesforce = client(server, redis_client, "salesforce")
    salesforce.access_token()    # type: ignore[attr-defined]
    answer = requests.get(f"{salesforce.instance_url}/services/data/v62.0/query",  # type: ignore[attr-defined]
                          params={"q": "SELECT Status FROM CampaignMember WHERE ContactId IN ('003')"},
                          headers=salesforce.auth_headers(), timeout=5)
    assert answer.status_code == 400 and answer.json()[0]["errorCode"] == "INVALID_FIELD"


def test_splio_unknown_contact_is_a_404_in_splio_shape(server, redis_client) -> None:  # type: ignore[no-untyped-def]
    splio = client(server, redis_client, "splio")
    splio.authenticate()    # type: ignore[attr-defined]
    answer = requests.get(f"{server.url}/splio/data/contacts/nobody@example.com", headers=splio.auth_headers(), timeout=5)
    assert answer.status_code == 404
    assert answer.json() == {"status": 404, "errors": [{"error_key": "id", "error": "wrong_value",
                                                        "error_description": "Contact not found for given identifier."}]}


def test_drift_route_changes_only_what_it_is_told(server, redis_client) -> None:  # type: ignore[no-untyped-def]
    client(server, redis_client, "splio").push([friend("splio")])
    assert drift(server, "nowhere", "cleo@example.com", fields={}).status_code == 400
    assert drift(server, "splio", "nobody@example.com", fields={}).status_code == 404
    assert requests.patch(f"{server.url}/_sandbox/splio/contacts/cleo@example.com", data="[]", timeout=5).status_code == 400
    view = drift(server, "splio", "Cleo@Example.com", fields={"referral_nb_converted_customers": None,
                                                              "firstname": "Kleo"}, marketing_consent=False).json()
    assert view == {"email": "cleo@example.com", "fields": {"firstname": "Kleo"}, "lists": ["25", "26"],
                    "marketing_consent": False, "deleted": False}


def test_changes_record_when_each_vendor_last_changed_a_contact(server, redis_client) -> None:  # type: ignore[no-untyped-def]
    """The benchmark's drain is read from here: a write that changes a contact moves the time, one
    that leaves every contact as it was does not; vendors never written to are absent."""
    connector = client(server, redis_client, "splio")
    started = time.time()
    assert connector.push([friend("splio")]).failed == {}
    first = requests.get(f"{server.url}/_sandbox/changes", timeout=5).json()
    assert set(first) == {"splio"}
    assert first["splio"]["writes"] == 1 and started <= first["splio"]["at"] <= time.time()
    assert connector.push([friend("splio")]).failed == {}               # the same state again
    assert requests.get(f"{server.url}/_sandbox/changes", timeout=5).json() == first
    assert connector.push([friend("splio", converted=2)]).failed == {}
    later = requests.get(f"{server.url}/_sandbox/changes", timeout=5).json()["splio"]
    assert later["writes"] == 2 and later["at"] >= first["splio"]["at"]
