"""Salesforce connector: the token flows, the exact collection calls, and how it reads every answer."""
from __future__ import annotations

import base64
import json
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
import responses
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from responses import matchers

from connectors.base import MARKETING, TRANSACTIONAL, ContactUpdate
from connectors.errors import AuthError, FatalVendorError, RateLimited, RetriableVendorError
from connectors.salesforce import JWT_GRANT, PLACEHOLDER_LAST_NAME, SalesforceConnector

LOGIN = "https://login.salesforce.com/services/oauth2/token"
INSTANCE = "https://acme.my.salesforce.com"
API = f"{INSTANCE}/services/data/v62.0"
UPSERT = f"{API}/composite/sobjects/Contact/Referral_Hub_Email__c"
COLLECTION = f"{API}/composite/sobjects"
SECRET = "cs-very-secret"
REFRESH = "rt-very-secret"
NOW = 1_790_000_000.0
SETTINGS = {"client_id": "cid", "client_secret": SECRET, "refresh_token": REFRESH}
MKT, TXN = "701Rf000000Mkt1AAA", "701Rf000000Txn1AAA"


def token_answer(token: str = "00D!tok-1") -> dict[str, str]:
    return {"access_token": token, "instance_url": INSTANCE, "token_type": "Bearer",
            "id": "https://login.salesforce.com/id/00D/005", "issued_at": "1790000000000", "signature": "x"}


def connector(waits: list[float] | None = None, **settings: str) -> SalesforceConnector:
    sink = waits if waits is not None else []
    c = SalesforceConnector({**SETTINGS, **settings}, sleep=sink.append)
    c.clock = lambda: NOW
    return c


def login(token: str = "00D!tok-1") -> responses.BaseResponse:
    return responses.post(LOGIN, json=token_answer(token))


def referrer() -> ContactUpdate:
    return ContactUpdate(email="anna@example.com", identity={"Referral_Hub_Email__c": "anna@example.com"},
                         fields={"Email": "anna@example.com", "LastName": "Smith",
                                 "Referral_Friends_Invited__c": 2, "Referral_Turnover__c": Decimal("59.90")})


def friend(email: str = "bob@example.com", lists: dict[str, str] | None = None, **kw) -> ContactUpdate:  # type: ignore[no-untyped-def]
    return ContactUpdate(email=email, identity={"Referral_Hub_Email__c": email},
                         fields={"Email": email, "LastName": None, "Referral_Promo_Code__c": "ANNA-20"},
                         lists=lists if lists is not None else {MKT: MARKETING, TXN: TRANSACTIONAL},
                         marketing_consent=True, **kw)


def describes(member: dict | None = None) -> None:
    """Contact and CampaignMember describes of a user with every permission the hub needs."""
    access = {"queryable": True, "createable": True, "updateable": True, "deletable": True}
    responses.get(f"{API}/sobjects/Contact/describe", json={"name": "Contact", **access, "fields": [
        {"name": "Referral_Hub_Email__c", "type": "email", "externalId": True, "updateable": True},
        {"name": "HasOptedOutOfEmail", "type": "boolean", "updateable": True}]})
    responses.get(f"{API}/sobjects/CampaignMember/describe", json={"name": "CampaignMember", **access,
                                                                     **(member or {}), "fields": []})


def ok(*ids: str) -> list[dict]:
    return [{"id": i, "success": True, "errors": [], "created": True} for i in ids]


def failed(code: str, message: str) -> dict:
    return {"success": False, "errors": [{"statusCode": code, "message": message, "fields": []}]}


@responses.activate
def test_push_logs_in_upserts_then_adds_campaign_members_with_exact_bodies() -> None:
    token = responses.post(LOGIN, json=token_answer(), match=[matchers.urlencoded_params_matcher({
        "grant_type": "refresh_token", "refresh_token": REFRESH, "client_id": "cid", "client_secret": SECRET})])
    bearer = matchers.header_matcher({"Authorization": "Bearer 00D!tok-1", "Content-Type": "application/json"})
    upsert = responses.patch(UPSERT, json=ok("003A", "003B"), match=[bearer])
    members = responses.post(COLLECTION, json=ok("00vA", "00vB"), match=[bearer])
    result = connector().push([referrer(), friend()])
    assert result.failed == {} and token.call_count == 1 and result.calls == 3
    assert json.loads(upsert.calls[0].request.body) == {"allOrNone": False, "records": [
        {"attributes": {"type": "Contact"}, "Email": "anna@example.com", "LastName": "Smith",
         "Referral_Friends_Invited__c": 2, "Referral_Turnover__c": 59.9, "Referral_Hub_Email__c": "anna@example.com"},
        {"attributes": {"type": "Contact"}, "Email": "bob@example.com", "LastName": PLACEHOLDER_LAST_NAME,
         "Referral_Promo_Code__c": "ANNA-20", "Referral_Hub_Email__c": "bob@example.com",
         "HasOptedOutOfEmail": False}]}
    assert json.loads(members.calls[0].request.body) == {"allOrNone": False, "records": [
        {"attributes": {"type": "CampaignMember"}, "CampaignId": MKT, "ContactId": "003B"},
        {"attributes": {"type": "CampaignMember"}, "CampaignId": TXN, "ContactId": "003B"}]}


def known(*ids: str) -> list[dict]:
    return [{"id": i, "success": True, "errors": [], "created": False} for i in ids]


def soql(call) -> str:  # type: ignore[no-untyped-def]
    return parse_qs(urlsplit(call.request.url).query)["q"][0]


@responses.activate
def test_withdrawn_consent_sets_has_opted_out_and_leaves_the_marketing_campaign() -> None:
    login()
    upsert = responses.patch(UPSERT, json=known("003B"))
    query = responses.get(f"{API}/query", json={"totalSize": 1, "done": True, "records": [
        {"attributes": {"type": "CampaignMember"}, "Id": "00vM", "ContactId": "003B", "CampaignId": MKT}]})
    delete = responses.delete(COLLECTION, json=[{"id": "00vM", "success": True, "errors": []}])
    gone = ContactUpdate(email="bob@example.com", identity={"Referral_Hub_Email__c": "bob@example.com"},
                         fields={"LastName": "Jones"}, marketing_consent=False,
                         previous_lists={MKT: MARKETING}, previous_consent=True)
    assert connector().push([gone]).failed == {}
    assert json.loads(upsert.calls[0].request.body)["records"][0]["HasOptedOutOfEmail"] is True
    assert soql(query.calls[0]) == ("SELECT Id, ContactId, CampaignId FROM CampaignMember "
                                    f"WHERE ContactId IN ('003B') AND CampaignId IN ('{MKT}')")
    assert parse_qs(urlsplit(delete.calls[0].request.url).query) == {"ids": ["00vM"], "allOrNone": ["false"]}
    assert len(responses.calls) == 4


@responses.activate
def test_leaving_a_list_deletes_only_members_salesforce_holds_200_at_a_time() -> None:
    login()
    emails = [f"f{i:03d}@example.com" for i in range(201)]
    responses.patch(UPSERT, json=known(*(f"003{i:015d}" for i in range(200))))
    responses.patch(UPSERT, json=known("003000000000000200"))
    # Salesforce holds a member for every contact but the last one (removed there by hand).
    rows = [{"Id": f"00v{i:015d}", "ContactId": f"003{i:015d}", "CampaignId": TXN} for i in range(200)]
    responses.get(f"{API}/query", json={"totalSize": 200, "done": True, "records": rows})
    responses.get(f"{API}/query", json={"totalSize": 0, "done": True, "records": []})
    delete = responses.delete(COLLECTION, json=[{"id": r["Id"], "success": True, "errors": []} for r in rows[:199]] +
                              [{"id": rows[199]["Id"], **failed("ENTITY_IS_DELETED", "entity is deleted")}])
    left = [ContactUpdate(email=e, identity={"Referral_Hub_Email__c": e}, fields={"LastName": "X"},
                          previous_lists={TXN: TRANSACTIONAL}) for e in emails]
    assert connector().push(left).failed == {}
    queries = [soql(c) for c in responses.calls if "/query" in c.request.url]
    assert len(queries) == 2 and all("AND CampaignId IN" in q for q in queries)
    assert "'003000000000000200'" in queries[1] and "'003000000000000200'" not in queries[0]
    # 200 ids in one query string pass the 4 KB request line servers commonly cap (414): the ids
    # go in as many requests as keep each line under it, every id once, in order
    assert delete.call_count == 2
    sent = [parse_qs(urlsplit(c.request.url).query)["ids"][0] for c in delete.calls]
    assert ",".join(sent) == ",".join(r["Id"] for r in rows)
    assert all(request_line(c) < 4094 for c in responses.calls)


def request_line(call) -> int:  # type: ignore[no-untyped-def]
    """The bytes of an HTTP/1.1 request line for this call."""
    parts = urlsplit(call.request.url)
    return len(f"{call.request.method} {parts.path}?{parts.query} HTTP/1.1")


@responses.activate
def test_lookups_of_many_long_addresses_stay_under_a_4_kb_request_line() -> None:
    """Erasing 200 contacts with long addresses: each SOQL lookup keeps its request line under the
    4 KB servers commonly cap, and every address is looked up once."""
    login()
    emails = [f"a-rather-long-mailbox-name-{i:03d}@subdomain.example-company.com" for i in range(200)]
    responses.get(f"{API}/query", json={"totalSize": 0, "done": True, "records": []})
    assert connector().erase(emails).failed == {}
    looked_up = [e for c in responses.calls if "/query" in c.request.url
                 for e in emails if f"'{e}'" in soql(c)]
    assert sorted(looked_up) == sorted(emails)
    assert len([c for c in responses.calls if "/query" in c.request.url]) > 1
    assert all(request_line(c) < 4094 for c in responses.calls)


@responses.activate
def test_jwt_bearer_assertion_is_rs256_with_the_right_claims() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    token = login()
    responses.get(f"{API}/limits", json={"DailyApiRequests": {"Max": 15000, "Remaining": 14990}})
    describes()
    c = connector(grant="jwt", username="int@acme.example", private_key=pem.replace("\n", "\\n"))
    assert c.check()["daily_api_requests"] == {"max": 15000, "remaining": 14990}
    form = parse_qs(token.calls[0].request.body)
    assert form["grant_type"] == [JWT_GRANT] and "client_secret" not in form
    assert jwt.get_unverified_header(form["assertion"][0])["alg"] == "RS256"
    claims = jwt.decode(form["assertion"][0], key.public_key(), algorithms=["RS256"],
                        audience="https://login.salesforce.com", options={"verify_exp": False})
    assert claims == {"iss": "cid", "sub": "int@acme.example", "aud": "https://login.salesforce.com",
                      "exp": int(NOW) + 180}


@responses.activate
def test_client_credentials_posts_basic_auth_to_my_domain() -> None:
    basic = "Basic " + base64.b64encode(f"cid:{SECRET}".encode()).decode()
    token = responses.post("https://acme.my.salesforce.com/services/oauth2/token", json=token_answer(), match=[
        matchers.urlencoded_params_matcher({"grant_type": "client_credentials"}),
        matchers.header_matcher({"Authorization": basic})])
    responses.get(f"{API}/limits", json={})
    describes()
    connector(grant="client_credentials", login_url="https://acme.my.salesforce.com").check()
    assert token.call_count == 1


@responses.activate
def test_check_reports_the_scope_and_object_permissions_salesforce_says_are_missing() -> None:
    responses.post(LOGIN, json={**token_answer(), "scope": "id refresh_token"})
    responses.get(f"{API}/limits", json={"DailyApiRequests": {"Max": 15000, "Remaining": 14990}})
    describes(member={"deletable": False})
    report = connector().check()
    assert report["ok"] is False
    assert report["missing"] == ["CampaignMember: delete", "OAuth scope api"]
    assert report["permissions"]["Contact: edit"] == "granted"
    assert report["permissions"]["Contact.Referral_Hub_Email__c: external id"] == "granted"
    responses.replace(responses.GET, f"{API}/sobjects/CampaignMember/describe", status=404,
                      json=[{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
    assert "CampaignMember: create" in connector().check()["missing"]


@responses.activate
def test_invalid_session_logs_in_again_once_and_retries() -> None:
    first, second = login("00D!old"), login("00D!new")
    expired = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    responses.patch(UPSERT, status=401, json=expired,
                    match=[matchers.header_matcher({"Authorization": "Bearer 00D!old"})])
    retried = responses.patch(UPSERT, json=ok("003A"),
                              match=[matchers.header_matcher({"Authorization": "Bearer 00D!new"})])
    assert connector().push([referrer()]).failed == {}
    assert first.call_count + second.call_count == 2 and retried.call_count == 1


@responses.activate
def test_request_limit_exceeded_goes_back_to_the_queue_for_long_then_succeeds() -> None:
    login()
    responses.patch(UPSERT, status=403, json=[{"message": "TotalRequests Limit exceeded.",
                                               "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    responses.patch(UPSERT, json=ok("003A"))
    waits: list[float] = []
    c = connector(waits)
    with pytest.raises(RateLimited) as raised:
        c.push([referrer()])
    assert raised.value.retry_after == 3600.0 and raised.value.code == "REQUEST_LIMIT_EXCEEDED" and waits == []
    assert c.push([referrer()]).failed == {}          # the hub's retry, after the wait
    assert len(responses.calls) == 3


@responses.activate
def test_sforce_limit_info_near_the_allocation_stops_before_calling() -> None:
    login()
    responses.patch(UPSERT, json=ok("003A"), headers={"Sforce-Limit-Info": "api-usage=4990/5000"})
    c = connector()
    c.push([referrer()])
    assert c.usage == (4990, 5000)
    with pytest.raises(RateLimited) as raised:
        c.push([referrer()])
    assert raised.value.retry_after == 3600.0 and len(responses.calls) == 2


@responses.activate
def test_fatal_4xx_reads_the_error_array() -> None:
    login()
    responses.patch(UPSERT, status=400, json=[{"message": "No such column 'Nope__c' on sobject of type Contact",
                                               "errorCode": "INVALID_FIELD"}])
    with pytest.raises(FatalVendorError) as raised:
        connector().push([referrer()])
    assert raised.value.code == "INVALID_FIELD" and raised.value.status == 400 and not raised.value.retriable
    assert "Nope__c" in raised.value.message and len(responses.calls) == 2


@responses.activate
def test_rejected_client_is_an_auth_error_without_secrets() -> None:
    responses.post(LOGIN, status=400,
                   json={"error": "invalid_client", "error_description": "invalid client credentials"})
    with pytest.raises(AuthError) as raised:
        connector().push([referrer()])
    assert raised.value.code == "invalid_client"
    assert SECRET not in str(raised.value) and REFRESH not in str(raised.value)


@responses.activate
def test_5xx_is_retried_then_raised_as_retriable() -> None:
    login()
    responses.patch(UPSERT, status=503, json=[{"message": "Server unavailable", "errorCode": "SERVER_UNAVAILABLE"}])
    waits: list[float] = []
    with pytest.raises(RetriableVendorError) as raised:
        connector(waits).push([referrer()])
    assert raised.value.code == "SERVER_UNAVAILABLE" and waits == [0.5, 1.0] and len(responses.calls) == 4


@responses.activate
def test_per_record_failures_fail_alone_and_members_are_looked_up_before_inserting() -> None:
    login()
    responses.patch(UPSERT, json=[
        failed("INVALID_EMAIL_ADDRESS", "Email: invalid email address: reject-dan@example.com"),
        *known("003B"),
        failed("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record"), *ok("003F")])
    query = responses.get(f"{API}/query", json={"totalSize": 1, "done": True, "records": [
        {"attributes": {"type": "CampaignMember"}, "Id": "00vM", "ContactId": "003B", "CampaignId": MKT}]})
    members = responses.post(COLLECTION, json=[*ok("00vT"), failed("INVALID_CROSS_REFERENCE_KEY", "bad id")])
    result = connector().push([friend("reject-dan@example.com"), friend(), friend("eve@example.com"),
                               friend("fay@example.com", lists={"701Rf00000Gone1AAA": TRANSACTIONAL})])
    assert set(result.failed) == {"reject-dan@example.com", "eve@example.com", "fay@example.com"}
    assert result.failed["reject-dan@example.com"].code == "INVALID_EMAIL_ADDRESS"
    assert not result.failed["reject-dan@example.com"].retriable and result.failed["eve@example.com"].retriable
    assert result.failed["fay@example.com"].code == "INVALID_CROSS_REFERENCE_KEY"
    # Only 003B existed before this push, so only its memberships are looked up (fay was just created).
    assert soql(query.calls[0]) == ("SELECT Id, ContactId, CampaignId FROM CampaignMember WHERE ContactId "
                                    f"IN ('003B') AND CampaignId IN ('{MKT}','{TXN}')")
    assert json.loads(members.calls[0].request.body)["records"] == [
        {"attributes": {"type": "CampaignMember"}, "CampaignId": TXN, "ContactId": "003B"},
        {"attributes": {"type": "CampaignMember"}, "CampaignId": "701Rf00000Gone1AAA", "ContactId": "003F"}]


@responses.activate
def test_a_campaign_id_that_is_not_a_salesforce_id_fails_the_contact_without_a_query() -> None:
    login()
    responses.patch(UPSERT, json=known("003B"))
    result = connector().push([friend(lists={"701') OR Id != ('": TRANSACTIONAL})])
    assert result.failed["bob@example.com"].code == "bad_mapping" and len(responses.calls) == 2


@responses.activate
def test_erase_finds_ids_by_external_id_then_deletes_them() -> None:
    login()
    query = responses.get(f"{API}/query", json={"totalSize": 1, "done": True, "records": [
        {"attributes": {"type": "Contact"}, "Id": "003A", "Referral_Hub_Email__c": "anna@example.com"}]})
    delete = responses.delete(COLLECTION, json=[{"id": "003A", "success": True, "errors": []}])
    assert connector().erase(["anna@example.com", "o'neil@example.com"]).failed == {}
    assert parse_qs(urlsplit(query.calls[0].request.url).query)["q"] == [
        "SELECT Id, Referral_Hub_Email__c FROM Contact WHERE Referral_Hub_Email__c "
        "IN ('anna@example.com','o\\'neil@example.com')"]
    assert parse_qs(urlsplit(delete.calls[0].request.url).query) == {"ids": ["003A"], "allOrNone": ["false"]}


@responses.activate
def test_fields_are_the_custom_ones_from_describe() -> None:
    login()
    responses.get(f"{API}/sobjects/Contact/describe", json={"name": "Contact", "fields": [
        {"name": "LastName", "type": "string"}, {"name": "Referral_Friends_Invited__c", "type": "double"}]})
    assert connector().fields() == [{"name": "Referral_Friends_Invited__c", "id": "Referral_Friends_Invited__c",
                                     "type": "double"}]


@responses.activate
def test_a_known_contact_never_gets_the_last_name_placeholder() -> None:
    login()
    upsert = responses.patch(UPSERT, json=ok("003B"))
    responses.post(COLLECTION, json=ok())
    pushed_before = friend(previous_lists={MKT: MARKETING, TXN: TRANSACTIONAL}, previous_consent=True)
    assert connector().push([pushed_before]).failed == {}
    record = json.loads(upsert.calls[0].request.body)["records"][0]
    assert "LastName" not in record, "a LastName typed into Salesforce must survive the hub's updates"
    assert record["Referral_Promo_Code__c"] == "ANNA-20"


@responses.activate
def test_a_known_contact_deleted_in_salesforce_is_recreated_with_the_placeholder() -> None:
    login()
    responses.patch(UPSERT, json=[failed("REQUIRED_FIELD_MISSING", "Required fields are missing: [LastName]")])
    responses.patch(UPSERT, json=ok("003C"))
    responses.post(COLLECTION, json=ok())
    gone = friend(previous_lists={MKT: MARKETING, TXN: TRANSACTIONAL}, previous_consent=True)
    assert connector().push([gone]).failed == {}
    first, second = (json.loads(c.request.body)["records"][0] for c in responses.calls if c.request.url == UPSERT)
    assert "LastName" not in first and second["LastName"] == PLACEHOLDER_LAST_NAME


@responses.activate
def test_a_mapped_opt_out_field_is_never_sent_only_a_consent_change_is() -> None:
    login()
    upsert = responses.patch(UPSERT, json=known("003B", "003C"))
    mapped = ContactUpdate(email="bob@example.com", identity={"Referral_Hub_Email__c": "bob@example.com"},
                           fields={"HasOptedOutOfEmail": False}, marketing_consent=True,
                           previous_lists={}, previous_consent=True)
    withdrawn = ContactUpdate(email="cat@example.com", identity={"Referral_Hub_Email__c": "cat@example.com"},
                              fields={"HasOptedOutOfEmail": False}, marketing_consent=False,
                              previous_lists={}, previous_consent=True)
    assert connector().push([mapped, withdrawn]).failed == {}
    records = json.loads(upsert.calls[0].request.body)["records"]
    assert "HasOptedOutOfEmail" not in records[0] and records[1]["HasOptedOutOfEmail"] is True
