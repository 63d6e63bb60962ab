"""Emarsys connector: the exact requests it sends (WSSE or OAuth), and how it reads every answer."""
from __future__ import annotations

import base64
import hashlib
import json
import re
from decimal import Decimal

import pytest
import responses
from responses import matchers

from connectors.base import MARKETING, TRANSACTIONAL, ContactUpdate
from connectors.emarsys import AUTH_URL, EmarsysConnector
from connectors.errors import AuthError, FatalVendorError, RateLimited, RetriableVendorError

BASE = "https://api.emarsys.net"
UPSERT = f"{BASE}/api/v2/contact/?create_if_not_exists=1"
SECRET = "s3cr3t-emarsys-value"
NOW = 1_790_000_000.0                      # 2026-09-21T14:13:20Z
CREATED = "2026-09-21T14:13:20Z"
OK = {"replyCode": 0, "replyText": "OK", "data": {"ids": [101, 102, 103]}}
JSON = {"Content-Type": "application/json"}


def connector(waits: list[float] | None = None, **settings: str) -> EmarsysConnector:
    sink = waits if waits is not None else []
    c = EmarsysConnector(settings or {"username": "acme001", "secret": SECRET}, sleep=sink.append)
    c.clock = lambda: NOW
    return c


def referrer() -> ContactUpdate:
    return ContactUpdate(email="anna@example.com", identity={"3": "anna@example.com"},
                         fields={"1": "Anna", "12001": 2, "12005": Decimal("59.90")})


def friend(email: str = "bob@example.com", **kw) -> ContactUpdate:  # type: ignore[no-untyped-def]
    return ContactUpdate(email=email, identity={"3": email}, fields={"12008": "ANNA-20"},
                         lists={"740001": MARKETING}, marketing_consent=True, **kw)


def customer() -> ContactUpdate:
    return ContactUpdate(email="cat@example.com", identity={"3": "cat@example.com"}, fields={"12007": "ref-anna"},
                         lists={"740002": TRANSACTIONAL}, marketing_consent=False)


def wsse(request) -> dict[str, str]:  # type: ignore[no-untyped-def]
    header = request.headers["X-WSSE"]
    assert header.startswith("UsernameToken ")
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


@responses.activate
def test_push_upserts_then_adds_new_memberships_with_exact_bodies() -> None:
    upsert = responses.put(UPSERT, json=OK, match=[matchers.header_matcher(JSON)])
    marketing = responses.post(f"{BASE}/api/v2/contactlist/740001/add",
                               json={"replyCode": 0, "replyText": "OK", "data": {"inserted_contacts": 1}})
    customers = responses.post(f"{BASE}/api/v2/contactlist/740002/add",
                               json={"replyCode": 0, "replyText": "OK", "data": {"inserted_contacts": 1}})
    result = connector().push([referrer(), friend(), customer()])
    assert result.failed == {} and result.calls == 3
    assert json.loads(upsert.calls[0].request.body) == {"key_id": "3", "contacts": [
        {"1": "Anna", "12001": 2, "12005": "59.90", "3": "anna@example.com"},
        {"12008": "ANNA-20", "3": "bob@example.com", "31": 1},
        {"12007": "ref-anna", "3": "cat@example.com"}]}
    assert json.loads(marketing.calls[0].request.body) == {"key_id": "3", "external_ids": ["bob@example.com"]}
    assert json.loads(customers.calls[0].request.body) == {"key_id": "3", "external_ids": ["cat@example.com"]}


@responses.activate
def test_known_memberships_and_consent_are_not_sent_again() -> None:
    upsert = responses.put(UPSERT, json=OK)
    again = friend(previous_lists={"740001": MARKETING}, previous_consent=True)
    assert connector().push([again]).failed == {}
    assert len(responses.calls) == 1
    assert json.loads(upsert.calls[0].request.body)["contacts"] == [{"12008": "ANNA-20", "3": "bob@example.com"}]


@responses.activate
def test_withdrawn_consent_sets_31_to_2_and_leaves_the_marketing_list() -> None:
    upsert = responses.put(UPSERT, json=OK)
    leave = responses.post(f"{BASE}/api/v2/contactlist/740001/delete", json={
        "replyCode": 0, "replyText": "OK", "data": {"deleted_contacts": 1, "errors": {}}})
    gone = ContactUpdate(email="bob@example.com", identity={"3": "bob@example.com"}, marketing_consent=False,
                         previous_lists={"740001": MARKETING}, previous_consent=True)
    assert connector().push([gone]).failed == {}
    assert json.loads(upsert.calls[0].request.body)["contacts"] == [{"3": "bob@example.com", "31": 2}]
    assert json.loads(leave.calls[0].request.body) == {"key_id": "3", "external_ids": ["bob@example.com"]}


@responses.activate
def test_wsse_header_is_fresh_per_request_and_its_digest_checks_out() -> None:
    responses.put(UPSERT, json=OK)
    responses.post(f"{BASE}/api/v2/contactlist/740001/add", json={"replyCode": 0, "replyText": "OK", "data": {}})
    connector().push([friend()])
    seen = [wsse(call.request) for call in responses.calls]
    for params in seen:
        assert params["Username"] == "acme001" and params["Created"] == CREATED
        assert re.fullmatch(r"[0-9a-f]{32}", params["Nonce"])
        hexdigest = hashlib.sha1((params["Nonce"] + CREATED + SECRET).encode()).hexdigest()
        assert params["PasswordDigest"] == base64.b64encode(hexdigest.encode()).decode()
    assert seen[0]["Nonce"] != seen[1]["Nonce"]
    assert "Authorization" not in responses.calls[0].request.headers


@responses.activate
def test_oauth_token_with_basic_auth_then_bearer_on_v3_refreshed_once_on_401() -> None:
    token = responses.post(AUTH_URL, match=[
        matchers.urlencoded_params_matcher({"grant_type": "client_credentials"}),
        matchers.header_matcher({"Authorization": "Basic " + base64.b64encode(b"cid:csecret").decode()})],
        json={"access_token": "tok-1", "token_type": "bearer", "expires_in": 3600})
    responses.post(AUTH_URL, json={"access_token": "tok-2", "token_type": "bearer", "expires_in": 3600})
    v3 = f"{BASE}/api/v3/contact/?create_if_not_exists=1"
    first = responses.put(v3, status=401, json={"replyCode": 1, "replyText": "Unauthorized", "data": ""},
                          match=[matchers.header_matcher({"Authorization": "Bearer tok-1"})])
    second = responses.put(v3, json=OK, match=[matchers.header_matcher({"Authorization": "Bearer tok-2"})])
    c = connector(client_id="cid", client_secret="csecret")
    assert c.push([referrer()]).failed == {}
    assert token.call_count == 1 and first.call_count == 1 and second.call_count == 1
    assert "X-WSSE" not in second.calls[0].request.headers


@responses.activate
def test_429_waits_until_x_ratelimit_reset_then_succeeds() -> None:
    responses.put(UPSERT, status=429, json={"replyCode": 429, "replyText": "Too Many Requests", "data": ""},
                  headers={"X-RateLimit-Limit": "1000", "X-Ratelimit-Remaining": "0",
                           "X-RateLimit-Reset": str(int(NOW) + 3)})
    responses.put(UPSERT, json=OK)
    waits: list[float] = []
    assert connector(waits).push([referrer()]).failed == {}
    assert waits == [3.0] and len(responses.calls) == 2


@responses.activate
def test_429_with_a_far_reset_goes_back_to_the_queue() -> None:
    responses.put(UPSERT, status=429, json={"replyCode": 429, "replyText": "Too Many Requests", "data": ""},
                  headers={"X-RateLimit-Reset": str(int(NOW) + 45)})
    waits: list[float] = []
    with pytest.raises(RateLimited) as raised:
        connector(waits).push([referrer()])
    assert raised.value.retry_after == 45.0 and waits == [] and len(responses.calls) == 1


@responses.activate
def test_batch_over_the_limit_is_fatal_with_the_reply_code() -> None:
    responses.put(UPSERT, status=400, json={"replyCode": 1000, "replyText": "Too many contacts", "data": ""})
    with pytest.raises(FatalVendorError) as raised:
        connector().push([referrer()])
    assert raised.value.code == "1000" and raised.value.status == 400 and not raised.value.retriable
    assert raised.value.message == "Too many contacts" and len(responses.calls) == 1


@responses.activate
def test_401_is_an_auth_error_without_the_secret() -> None:
    responses.put(UPSERT, status=401, json={"replyCode": 1, "replyText": "Unauthorized", "data": ""})
    c = connector()
    with pytest.raises(AuthError) as raised:
        c.push([referrer()])
    assert raised.value.status == 401 and SECRET not in str(raised.value) and SECRET not in repr(c.wsse)
    assert len(responses.calls) == 1


@responses.activate
def test_5xx_is_retried_then_raised_as_retriable() -> None:
    responses.put(UPSERT, status=503, body="Service Unavailable")
    waits: list[float] = []
    with pytest.raises(RetriableVendorError) as raised:
        connector(waits).push([referrer()])
    assert raised.value.status == 503 and len(responses.calls) == 3 and waits == [0.5, 1.0]


@responses.activate
def test_http_200_with_data_errors_fails_only_those_contacts() -> None:
    responses.put(UPSERT, json={"replyCode": 0, "replyText": "OK", "data": {
        "ids": [102], "errors": {"reject-dan@example.com": {"2005": "Invalid key field value: invalid email"}}}})
    add = responses.post(f"{BASE}/api/v2/contactlist/740001/add", json={"replyCode": 0, "replyText": "OK", "data": {
        "inserted_contacts": 0, "errors": {"bob@example.com": {"2008": "No contact found with the external ID: 3"}}}})
    result = connector().push([friend(), friend("reject-dan@example.com")])
    assert set(result.failed) == {"reject-dan@example.com", "bob@example.com"}
    assert result.failed["reject-dan@example.com"].code == "2005"
    assert not result.failed["reject-dan@example.com"].retriable
    assert result.failed["bob@example.com"].code == "2008"
    assert json.loads(add.calls[0].request.body) == {"key_id": "3", "external_ids": ["bob@example.com"]}


@responses.activate
def test_erase_deletes_by_email_and_not_found_counts_as_erased() -> None:
    delete = responses.post(f"{BASE}/api/v2/contact/delete", json={"replyCode": 0, "replyText": "OK", "data": {
        "deleted_contacts": 1, "errors": {"ghost@example.com": {"2008": "No contact found with the external ID: 3"}}}})
    result = connector().erase(["anna@example.com", "ghost@example.com"])
    assert result.failed == {}
    assert json.loads(delete.calls[0].request.body) == {"key_id": "3", "3": ["anna@example.com", "ghost@example.com"]}


@responses.activate
def test_erase_of_nobody_known_is_not_an_error() -> None:
    responses.post(f"{BASE}/api/v2/contact/delete", status=400,
                   json={"replyCode": 2008, "replyText": "No contact found with the external ID: 3", "data": ""})
    assert connector().erase(["ghost@example.com"]).failed == {}


@responses.activate
def test_fields_lists_ids_names_and_types_and_check_reads_settings() -> None:
    responses.get(f"{BASE}/api/v2/field/translate/en", json={"replyCode": 0, "replyText": "OK", "data": [
        {"id": 1, "name": "First Name", "application_type": "shorttext", "string_id": "first_name"},
        {"id": 12001, "name": "Referral invites sent", "application_type": "numeric", "string_id": "ri"}]})
    responses.get(f"{BASE}/api/v2/settings", json={"replyCode": 0, "replyText": "OK", "data": {
        "id": 1, "name": "Acme", "environment": "suite9.emarsys.net"}})
    put = responses.put(f"{BASE}/api/v2/contact/", json={"replyCode": 0, "replyText": "OK", "data": {
        "ids": [], "errors": {"permission-check@hub.invalid": {"2008": "No contact found with the external ID: 3"}}}})
    responses.post(f"{BASE}/api/v2/contactlist/0/add", status=400,
                   json={"replyCode": 2020, "replyText": "Invalid contact list id: 0", "data": ""})
    # A credential without the permission to remove from lists, nor to delete contacts.
    responses.post(f"{BASE}/api/v2/contactlist/0/delete", status=403,
                   json={"replyCode": 1, "replyText": "Forbidden", "data": ""})
    deleted = responses.post(f"{BASE}/api/v2/contact/delete", status=401,
                             json={"replyCode": 1, "replyText": "Unauthorized", "data": ""})
    c = connector()
    assert c.fields() == [{"name": "First Name", "id": "1", "type": "shorttext"},
                          {"name": "Referral invites sent", "id": "12001", "type": "numeric"}]
    assert c.check() == {"ok": False, "account": "Acme", "environment": "suite9.emarsys.net", "auth": "wsse",
                         "permissions": {"GET field/translate": "granted", "PUT contact": "granted",
                                         "POST contactlist/add": "granted", "POST contactlist/delete": "missing",
                                         "POST contact/delete": "missing"},
                         "missing": ["POST contact/delete", "POST contactlist/delete"]}
    # The probes write nothing: no creation, an address that cannot exist, empty id lists.
    assert put.calls[0].request.url == f"{BASE}/api/v2/contact/"
    assert json.loads(put.calls[0].request.body) == {"key_id": "3", "contacts": [{"3": "permission-check@hub.invalid"}]}
    assert json.loads(deleted.calls[0].request.body) == {"key_id": "3", "3": []}


@responses.activate
def test_with_both_credential_sets_oauth_is_used_and_wsse_never_sent() -> None:
    responses.post(AUTH_URL, json={"access_token": "tok-1", "token_type": "bearer", "expires_in": 3600})
    v3 = responses.put(f"{BASE}/api/v3/contact/?create_if_not_exists=1", json=OK)
    c = connector(username="acme001", secret=SECRET, client_id="cid", client_secret="csecret")
    assert c.push([referrer()]).failed == {}
    assert v3.call_count == 1 and "X-WSSE" not in v3.calls[0].request.headers
    assert v3.calls[0].request.headers["Authorization"] == "Bearer tok-1"


def test_wsse_credentials_warn_at_start_up_naming_the_retirement_date() -> None:
    wsse_only = EmarsysConnector.startup_warnings({"username": "acme001", "secret": SECRET})
    assert len(wsse_only) == 1 and "2026-12-31" in wsse_only[0] and "HUB_EMARSYS_CLIENT_ID" in wsse_only[0]
    both = EmarsysConnector.startup_warnings({"username": "acme001", "secret": SECRET, "client_id": "cid",
                                              "client_secret": "csecret"})
    assert len(both) == 1 and "unused" in both[0] and "2026-12-31" in both[0]
    assert EmarsysConnector.startup_warnings({"client_id": "cid", "client_secret": "csecret"}) == []
    assert all(SECRET not in m and "csecret" not in m for m in wsse_only + both)


@responses.activate
def test_a_mapped_opt_in_field_is_never_sent_only_a_consent_change_is() -> None:
    upsert = responses.put(UPSERT, json=OK)
    mapped = ContactUpdate(email="bob@example.com", identity={"3": "bob@example.com"}, fields={"31": 1, "1": "Bob"},
                           marketing_consent=True, previous_lists={}, previous_consent=True)
    withdrawn = ContactUpdate(email="cat@example.com", identity={"3": "cat@example.com"}, fields={"31": 1},
                              marketing_consent=False, previous_lists={}, previous_consent=True)
    assert connector().push([mapped, withdrawn]).failed == {}
    assert json.loads(upsert.calls[0].request.body)["contacts"] == [
        {"1": "Bob", "3": "bob@example.com"}, {"3": "cat@example.com", "31": 2}]
