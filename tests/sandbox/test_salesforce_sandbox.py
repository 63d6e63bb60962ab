"""The Salesforce connector against the Salesforce sandbox over real HTTP."""
from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
import requests

from connectors.base import MARKETING, TRANSACTIONAL, ContactUpdate
from connectors.errors import AuthError, FatalVendorError, RateLimited
from connectors.ratelimit import RateLimiter
from connectors.salesforce import PLACEHOLDER_LAST_NAME, SalesforceConnector
from sandbox import salesforce as emulation
from tests.conftest import LiveServer

MKT, TXN = "701Rf000000Mkt1AAA", "701Rf000000Txn1AAA"
EXT = "Referral_Hub_Email__c"


def make(server: LiveServer, redis_client: Any, **settings: str) -> SalesforceConnector:
    base = {"client_id": emulation.CLIENT_ID, "client_secret": emulation.CLIENT_SECRET,
            "refresh_token": emulation.REFRESH_TOKEN}
    return SalesforceConnector({**base, **settings, "base_url": f"{server.url}/salesforce"},
                               limiter=RateLimiter(redis_client, "sandbox-test"))


@pytest.fixture
def connector(server: LiveServer, redis_client: Any) -> SalesforceConnector:
    return make(server, redis_client)


def held(server: LiveServer, email: str) -> dict[str, Any]:
    response = requests.get(f"{server.url}/_sandbox/salesforce/contacts/{email}", timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def contact(email: str, **kw: Any) -> ContactUpdate:
    return ContactUpdate(email=email, identity={EXT: email}, **kw)


def batch() -> list[ContactUpdate]:
    return [
        contact("anna@example.com", fields={"Email": "anna@example.com", "FirstName": "Anna", "LastName": "Smith",
                                            "Referral_Friends_Invited__c": 2, "Referral_Friends_Converted__c": 1,
                                            "Referral_Turnover__c": Decimal("59.90")}),
        contact("bob@example.com", fields={"Email": "bob@example.com", "Referral_Promo_Code__c": "ANNA-20"},
                lists={MKT: MARKETING}, marketing_consent=True),
        contact("cat@example.com", fields={"Email": "cat@example.com", "LastName": "Jones"},
                lists={TXN: TRANSACTIONAL}, marketing_consent=False),
    ]


def test_push_withdraw_and_erase_round_trip(server: LiveServer, connector: SalesforceConnector) -> None:
    assert connector.push(batch()).failed == {}

    anna = held(server, "anna@example.com")
    assert anna["fields"] == {"Email": "anna@example.com", "FirstName": "Anna", "LastName": "Smith",
                              "Referral_Friends_Invited__c": 2, "Referral_Friends_Converted__c": 1,
                              "Referral_Turnover__c": 59.9, EXT: "anna@example.com"}
    assert anna["lists"] == [] and anna["marketing_consent"] is None and anna["deleted"] is False
    bob = held(server, "bob@example.com")
    assert bob["fields"]["LastName"] == PLACEHOLDER_LAST_NAME and bob["fields"]["HasOptedOutOfEmail"] is False
    assert bob["lists"] == [MKT] and bob["marketing_consent"] is True
    cat = held(server, "cat@example.com")
    assert "HasOptedOutOfEmail" not in cat["fields"] and cat["lists"] == [TXN] and cat["marketing_consent"] is None

    # Pushing again (e.g. a retried job) is harmless: upsert updates, membership DUPLICATE_VALUE is success.
    assert connector.push(batch()).failed == {}
    withdrawn = contact("bob@example.com", marketing_consent=False, lists={},
                        previous_lists={MKT: MARKETING}, previous_consent=True)
    assert connector.push([withdrawn]).failed == {}
    bob = held(server, "bob@example.com")
    assert bob["fields"]["HasOptedOutOfEmail"] is True and bob["marketing_consent"] is False

    assert connector.erase(["anna@example.com", "bob@example.com", "nobody@example.com"]).failed == {}
    assert held(server, "anna@example.com")["deleted"] is True and held(server, "bob@example.com")["deleted"] is True
    assert held(server, "cat@example.com")["deleted"] is False


def test_invalid_email_fails_alone(server: LiveServer, connector: SalesforceConnector) -> None:
    reject = contact("reject-dan@example.com", fields={"Email": "reject-dan@example.com"},
                     lists={MKT: MARKETING}, marketing_consent=True)
    result = connector.push([*batch()[:2], reject])
    assert set(result.failed) == {"reject-dan@example.com"}
    assert result.failed["reject-dan@example.com"].code == "INVALID_EMAIL_ADDRESS"
    assert held(server, "bob@example.com")["lists"] == [MKT]


def test_unknown_field_and_oversized_batch_are_refused(connector: SalesforceConnector) -> None:
    with pytest.raises(FatalVendorError) as raised:
        connector.push([contact("anna@example.com", fields={"Nope__c": 1})])
    assert raised.value.code == "INVALID_FIELD" and raised.value.status == 400
    too_many = {"allOrNone": False, "records": [{"attributes": {"type": "Contact"}, EXT: f"p{i}@example.com",
                                                 "LastName": "X"} for i in range(201)]}
    with pytest.raises(FatalVendorError) as raised:
        connector.send("PATCH", f"{connector.api}/composite/sobjects/Contact/{EXT}", too_many)
    assert raised.value.code == "EXCEEDED_ID_LIMIT" and raised.value.status == 400


def test_expired_session_is_renewed_once(server: LiveServer, connector: SalesforceConnector) -> None:
    assert connector.check()["instance_url"] == f"{server.url}/salesforce"
    server.app.extensions["sandbox"].jobs["salesforce:sessions"].clear()       # every session expires
    assert connector.push(batch()[:1]).failed == {}
    assert server.app.extensions["sandbox"].stats["salesforce POST oauth2/token"] == 2


def test_jwt_and_client_credentials_grants(server: LiveServer, redis_client: Any) -> None:
    jwt_connector = make(server, redis_client, grant="jwt", username=emulation.USERNAME,
                         private_key=emulation.DEMO_PRIVATE_KEY)
    assert jwt_connector.check()["ok"] is True
    assert make(server, redis_client, grant="client_credentials").push(batch()[:1]).failed == {}
    with pytest.raises(AuthError) as raised:
        make(server, redis_client, grant="jwt", username="someone@else.example",
             private_key=emulation.DEMO_PRIVATE_KEY).check()
    assert raised.value.code == "invalid_grant"


def test_wrong_client_secret_is_refused(server: LiveServer, redis_client: Any) -> None:
    with pytest.raises(AuthError) as raised:
        make(server, redis_client, client_secret="not-it").check()
    assert raised.value.code == "invalid_client" and "not-it" not in str(raised.value)


def test_spent_allocation_is_rate_limited_for_long(server: LiveServer, connector: SalesforceConnector) -> None:
    assert connector.check()["daily_api_requests"]["max"] == emulation.DAILY_REQUESTS
    assert connector.usage is not None and connector.usage[1] == emulation.DAILY_REQUESTS
    windows = server.app.extensions["sandbox"].windows
    spent = (int(time.time() // 86400), emulation.DAILY_REQUESTS)
    windows[f"salesforce:daily:{emulation.DAILY_REQUESTS}/86400.0"] = spent
    with pytest.raises(RateLimited) as raised:
        connector.push(batch()[:1])
    assert raised.value.code == "REQUEST_LIMIT_EXCEEDED" and raised.value.retry_after == 3600.0


def test_fields_come_from_describe(connector: SalesforceConnector) -> None:
    fields = {f["name"]: f["type"] for f in connector.fields()}
    assert fields["Referral_Friends_Invited__c"] == "double" and fields[EXT] == "email"
    assert "LastName" not in fields


def raw(connector: SalesforceConnector, method: str, path: str, **kw: Any) -> requests.Response:
    """A call past the connector's own request(), to see the sandbox's answer as it is."""
    headers = {**connector.auth_headers(), "Content-Type": "application/json"}
    return requests.request(method, f"{connector.instance_url}{connector.api}{path}", headers=headers,
                            timeout=5, **kw)


def test_a_record_without_attributes_type_is_refused_whole(connector: SalesforceConnector) -> None:
    connector.check()
    for path, record in ((f"/composite/sobjects/Contact/{EXT}", {EXT: "anna@example.com", "LastName": "S"}),
                         ("/composite/sobjects", {"CampaignId": MKT, "ContactId": "003Rf0000000001AAA"})):
        answer = raw(connector, "PATCH" if "Contact/" in path else "POST", path,
                     json={"allOrNone": False, "records": [record]})
        assert answer.status_code == 400 and answer.json()[0]["errorCode"] == "INVALID_TYPE", answer.text
    wrong = raw(connector, "PATCH", f"/composite/sobjects/Contact/{EXT}", json={"allOrNone": False, "records": [
        {"attributes": {"type": "CampaignMember"}, EXT: "anna@example.com", "LastName": "S"}]})
    assert wrong.status_code == 400 and wrong.json()[0]["errorCode"] == "INVALID_TYPE"


def test_campaign_members_are_inserted_queried_and_deleted_with_salesforce_shapes(
        server: LiveServer, connector: SalesforceConnector) -> None:
    assert connector.push(batch()).failed == {}
    bob = raw(connector, "GET", "/query", params={"q": f"SELECT Id FROM Contact WHERE {EXT} IN ('bob@example.com')"})
    bob_id = bob.json()["records"][0]["Id"]
    unknown = raw(connector, "POST", "/composite/sobjects", json={"allOrNone": False, "records": [
        {"attributes": {"type": "CampaignMember"}, "CampaignId": TXN, "ContactId": bob_id, "Stage__c": "x"}]})
    assert unknown.status_code == 400 and unknown.json()[0]["errorCode"] == "INVALID_FIELD"
    soql = (f"SELECT Id, ContactId, CampaignId FROM CampaignMember WHERE ContactId IN ('{bob_id}') "
            f"AND CampaignId IN ('{MKT}','{TXN}')")
    found = raw(connector, "GET", "/query", params={"q": soql}).json()
    assert found["totalSize"] == 1 and found["done"] is True
    member = found["records"][0]
    assert member["attributes"]["type"] == "CampaignMember" and (member["ContactId"], member["CampaignId"]) == (bob_id, MKT)
    deleted = raw(connector, "DELETE", "/composite/sobjects", params={"ids": member["Id"], "allOrNone": "false"})
    assert deleted.json() == [{"id": member["Id"], "success": True, "errors": []}]
    assert held(server, "bob@example.com")["lists"] == []
    assert raw(connector, "GET", "/query", params={"q": soql}).json()["totalSize"] == 0


def test_leaving_a_list_or_withdrawing_consent_removes_the_campaign_member(
        server: LiveServer, connector: SalesforceConnector) -> None:
    both = {MKT: MARKETING, TXN: TRANSACTIONAL}
    joined = contact("bob@example.com", fields={"LastName": "Jones"}, lists=both, marketing_consent=True)
    assert connector.push([joined]).failed == {}
    assert held(server, "bob@example.com")["lists"] == sorted(both)
    left = contact("bob@example.com", lists={MKT: MARKETING}, marketing_consent=True,
                   previous_lists=both, previous_consent=True)
    assert connector.push([left]).failed == {}
    assert held(server, "bob@example.com")["lists"] == [MKT]
    withdrawn = contact("bob@example.com", lists={}, marketing_consent=False,
                        previous_lists={MKT: MARKETING}, previous_consent=True)
    assert connector.push([withdrawn]).failed == {}
    bob = held(server, "bob@example.com")
    assert bob["lists"] == [] and bob["marketing_consent"] is False
    # Leaving again (a retried job) finds no member and deletes nothing.
    assert connector.push([withdrawn]).failed == {}


def test_an_opt_out_made_in_salesforce_survives_stats_and_list_changes(
        server: LiveServer, connector: SalesforceConnector) -> None:
    friend = contact("bob@example.com", fields={"LastName": "Jones"}, lists={MKT: MARKETING}, marketing_consent=True)
    assert connector.push([friend]).failed == {}
    bob_id = raw(connector, "GET", "/query", params={
        "q": f"SELECT Id FROM Contact WHERE {EXT} IN ('bob@example.com')"}).json()["records"][0]["Id"]
    # Bob opts out inside Salesforce; the hub still holds his consent as given.
    answer = raw(connector, "PATCH", f"/composite/sobjects/Contact/{EXT}", json={"allOrNone": False, "records": [
        {"attributes": {"type": "Contact"}, EXT: "bob@example.com", "HasOptedOutOfEmail": True}]})
    assert answer.json()[0]["id"] == bob_id
    later = contact("bob@example.com", fields={"Referral_Promo_Code__c": "BOB-5"},
                    lists={MKT: MARKETING, TXN: TRANSACTIONAL}, marketing_consent=True,
                    previous_lists={MKT: MARKETING}, previous_consent=True)
    assert connector.push([later]).failed == {}
    bob = held(server, "bob@example.com")
    assert bob["fields"]["HasOptedOutOfEmail"] is True and bob["marketing_consent"] is False
    assert bob["lists"] == [MKT, TXN] and bob["fields"]["Referral_Promo_Code__c"] == "BOB-5"


def test_deleting_a_contact_deletes_its_campaign_members(server: LiveServer, connector: SalesforceConnector) -> None:
    assert connector.push(batch()).failed == {}
    soql = f"SELECT Id, ContactId, CampaignId FROM CampaignMember WHERE CampaignId IN ('{MKT}')"
    assert raw(connector, "GET", "/query", params={"q": soql}).json()["totalSize"] == 1
    assert connector.erase(["bob@example.com"]).failed == {}
    assert raw(connector, "GET", "/query", params={"q": soql}).json()["totalSize"] == 0


def test_check_asks_salesforce_for_the_scope_and_object_permissions(connector: SalesforceConnector) -> None:
    report = connector.check()
    assert report["ok"] is True and report["missing"] == []
    assert set(report["permissions"]) == {
        "OAuth scope api", "Contact: read", "Contact: create", "Contact: edit", "Contact: delete",
        f"Contact.{EXT}: external id", "Contact.HasOptedOutOfEmail: edit", "CampaignMember: read",
        "CampaignMember: create", "CampaignMember: delete"}


def test_campaign_membership_changes_are_in_the_write_log(server: LiveServer, connector: SalesforceConnector) -> None:
    joined = contact("bob@example.com", fields={"LastName": "Jones"}, lists={TXN: TRANSACTIONAL})
    assert connector.push([joined]).failed == {}
    left = contact("bob@example.com", lists={}, previous_lists={TXN: TRANSACTIONAL})
    assert connector.push([left]).failed == {}
    writes = requests.get(f"{server.url}/_sandbox/salesforce/writes/bob@example.com", timeout=5).json()["writes"]
    assert [w["state"]["lists"] for w in writes] == [[], [TXN], []]
