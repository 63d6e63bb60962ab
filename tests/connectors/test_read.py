"""Reading contacts back for the anti-entropy audit: the exact requests each connector sends and
how it reads each vendor's answer into one ContactView shape. Ometria has no read the hub uses."""
from __future__ import annotations

import pytest
import responses
from responses import matchers

from connectors import CONNECTORS
from connectors.base import TRANSACTIONAL, ContactUpdate, ContactView
from connectors.emarsys import EmarsysConnector
from connectors.errors import AuthError, FatalVendorError
from connectors.klaviyo import KlaviyoConnector
from connectors.salesforce import SalesforceConnector
from connectors.splio import SplioConnector

NOW = 1_790_000_000.0


def test_which_vendors_can_be_read_back() -> None:
    assert {name for name, cls in CONNECTORS.items() if cls.readable()} == {"klaviyo", "emarsys", "salesforce", "splio"}
    with pytest.raises(NotImplementedError):
        CONNECTORS["ometria"]({"api_key": "k"}).read([ContactUpdate(email="a@example.com")])


# -- Klaviyo ---------------------------------------------------------------------------------
KLAVIYO = "https://a.klaviyo.com/api"


def klaviyo_profile(profile_id: str, email: str, consent: str, **properties: object) -> dict:
    return {"type": "profile", "id": profile_id, "attributes": {
        "email": email, "first_name": "Anna", "last_name": None, "organization": None,
        "properties": properties,
        "subscriptions": {"email": {"marketing": {"can_receive_email_marketing": consent == "SUBSCRIBED",
                                                  "consent": consent}}}}}


@responses.activate
def test_klaviyo_reads_profiles_with_consent_then_each_ones_lists() -> None:
    headers = {"Authorization": "Klaviyo-API-Key pk_test", "revision": "2026-07-15", "Accept": "application/vnd.api+json"}
    profiles = responses.get(f"{KLAVIYO}/profiles", match=[
        matchers.header_matcher(headers),
        matchers.query_param_matcher({"filter": 'any(email,["anna@example.com","gone@example.com"])',
                                      "additional-fields[profile]": "subscriptions", "page[size]": "100"})],
        json={"data": [klaviyo_profile("01ANNA", "Anna@Example.com", "UNSUBSCRIBED", referral_turnover=59.9)],
              "links": {"self": "x"}})
    lists = responses.get(f"{KLAVIYO}/profiles/01ANNA/relationships/lists", match=[matchers.header_matcher(headers)],
                          json={"data": [{"type": "list", "id": "RfTxn1"}], "links": {"self": "x"}})
    views = KlaviyoConnector({"api_key": "pk_test"}).read(
        [ContactUpdate(email="anna@example.com"), ContactUpdate(email="gone@example.com")])
    assert views == {"anna@example.com": ContactView(
        fields={"first_name": "Anna", "last_name": None, "organization": None, "referral_turnover": 59.9},
        lists={"RfTxn1"}, marketing_consent=False, consent_read=True), "gone@example.com": None}
    assert profiles.call_count == 1 and lists.call_count == 1


def test_klaviyo_consent_states() -> None:
    for consent, expected in (("SUBSCRIBED", True), ("UNSUBSCRIBED", False), ("NEVER_SUBSCRIBED", None)):
        assert KlaviyoConnector.view_of(klaviyo_profile("1", "a@example.com", consent), []).marketing_consent is expected


def test_klaviyo_list_reads_count_against_their_own_published_limit() -> None:
    bucket, limits = KlaviyoConnector({"api_key": "k"}).limits_for("GET", "/api/profiles/01ANNA/relationships/lists")
    assert (bucket, limits) == ("profile-lists", ((3, 1.0), (59, 60.0)))
    assert KlaviyoConnector({"api_key": "k"}).limits_for("GET", "/api/profiles")[0] == "profiles"


@responses.activate
def test_klaviyo_read_errors_are_the_usual_errors() -> None:
    responses.get(f"{KLAVIYO}/profiles", status=403, json={"errors": [
        {"id": "e", "status": 403, "code": "permission_denied", "title": "Forbidden", "detail": "profiles:read"}]})
    with pytest.raises(AuthError, match="profiles:read"):
        KlaviyoConnector({"api_key": "pk_test"}).read([ContactUpdate(email="anna@example.com")])


# -- Emarsys ---------------------------------------------------------------------------------
GETDATA = "https://api.emarsys.net/api/v2/contact/getdata"


@responses.activate
def test_emarsys_getdata_by_the_key_field_with_the_mapped_fields_and_opt_in() -> None:
    call = responses.post(GETDATA, match=[matchers.json_params_matcher(
        {"keyId": "3", "keyValues": ["anna@example.com", "gone@example.com"], "fields": [1, 12001, 12005, 3, 31]})],
        json={"replyCode": 0, "replyText": "OK", "data": {
            "errors": [{"key": "gone@example.com", "errorCode": "2008",
                        "errorMsg": "No contact found with the external id: 3"}],
            "result": [{"1": "Anna", "3": "Anna@Example.com", "12001": "2", "12005": "59.90", "31": "1",
                        "id": "23897", "uid": "A1BBbBCcC1"}]}})
    emarsys = EmarsysConnector({"username": "acme001", "secret": "s3cr3t-emarsys-value"})
    emarsys.clock = lambda: NOW
    fields = {"1": "Anna", "12001": 2, "12005": 59.9}
    views = emarsys.read([ContactUpdate(email="anna@example.com", identity={"3": "anna@example.com"}, fields=fields),
                          ContactUpdate(email="gone@example.com", identity={"3": "gone@example.com"}, fields=fields)])
    assert views == {"anna@example.com": ContactView(
        fields={"1": "Anna", "3": "Anna@Example.com", "12001": "2", "12005": "59.90", "31": "1"},
        lists=None, marketing_consent=True, consent_read=True), "gone@example.com": None}
    assert call.calls[0].request.headers["X-WSSE"].startswith('UsernameToken Username="acme001"')


@responses.activate
def test_emarsys_none_found_is_result_false() -> None:
    responses.post(GETDATA, json={"replyCode": 0, "replyText": "OK", "data": {"errors": [
        {"key": "gone@example.com", "errorCode": "2008", "errorMsg": "No contact found"}], "result": False}})
    views = EmarsysConnector({"username": "u", "secret": "s"}).read([ContactUpdate(email="gone@example.com")])
    assert views == {"gone@example.com": None}


@responses.activate
def test_emarsys_refused_read_is_fatal_with_its_reply_code() -> None:
    responses.post(GETDATA, status=400, json={"replyCode": 10001, "replyText": "Max. number of contacts: 1000"})
    with pytest.raises(FatalVendorError, match="Max. number"):
        EmarsysConnector({"username": "u", "secret": "s"}).read([ContactUpdate(email="a@example.com")])


# -- Salesforce ------------------------------------------------------------------------------
INSTANCE = "https://acme.my.salesforce.com"
QUERY = f"{INSTANCE}/services/data/v62.0/query"
MKT, TXN = "701Rf000000Mkt1AAA", "701Rf000000Txn1AAA"


def soql(query: str, records: list[dict], **extra: object) -> responses.BaseResponse:
    return responses.get(QUERY, match=[matchers.query_param_matcher({"q": query}),
                                       matchers.header_matcher({"Authorization": "Bearer 00D!tok"})],
                         json={"totalSize": len(records), "done": True, "records": records, **extra})


@responses.activate
def test_salesforce_reads_contact_fields_then_campaign_members_by_soql() -> None:
    responses.post("https://login.salesforce.com/services/oauth2/token",
                   json={"access_token": "00D!tok", "instance_url": INSTANCE, "token_type": "Bearer"})
    contacts = soql("SELECT Id, Referral_Hub_Email__c, HasOptedOutOfEmail, Email, Referral_Turnover__c FROM Contact "
                    "WHERE Referral_Hub_Email__c IN ('anna@example.com','o\\'neil@example.com','gone@example.com')", [
                        {"attributes": {"type": "Contact"}, "Id": "003Rf0000000001AAA",
                         "Referral_Hub_Email__c": "anna@example.com", "HasOptedOutOfEmail": True,
                         "Email": "anna@example.com", "Referral_Turnover__c": 59.9},
                        {"attributes": {"type": "Contact"}, "Id": "003Rf0000000002AAA",
                         "Referral_Hub_Email__c": "o'neil@example.com", "HasOptedOutOfEmail": False,
                         "Email": None, "Referral_Turnover__c": None}])
    members = soql("SELECT ContactId, CampaignId FROM CampaignMember WHERE ContactId IN "
                   "('003Rf0000000001AAA','003Rf0000000002AAA')", [
                       {"attributes": {"type": "CampaignMember"}, "ContactId": "003Rf0000000001AAA", "CampaignId": TXN},
                       {"attributes": {"type": "CampaignMember"}, "ContactId": "003Rf0000000001AAA", "CampaignId": MKT}])

    def update(email: str) -> ContactUpdate:
        return ContactUpdate(email=email, identity={"Referral_Hub_Email__c": email},
                             fields={"Email": email, "Referral_Turnover__c": 59.9}, lists={TXN: TRANSACTIONAL})
    client = SalesforceConnector({"client_id": "cid", "client_secret": "s", "refresh_token": "r"})
    views = client.read([update("anna@example.com"), update("o'neil@example.com"), update("gone@example.com")])
    assert views == {
        "anna@example.com": ContactView(fields={"Email": "anna@example.com", "Referral_Turnover__c": 59.9},
                                        lists={TXN, MKT}, marketing_consent=False, consent_read=True),
        "o'neil@example.com": ContactView(fields={"Email": None, "Referral_Turnover__c": None}, lists=set(),
                                          marketing_consent=None, consent_read=True),
        "gone@example.com": None}
    assert contacts.call_count == 1 and members.call_count == 1


@responses.activate
def test_salesforce_follows_next_records_url() -> None:
    responses.post("https://login.salesforce.com/services/oauth2/token",
                   json={"access_token": "00D!tok", "instance_url": INSTANCE, "token_type": "Bearer"})
    responses.get(QUERY, json={"totalSize": 2, "done": False, "nextRecordsUrl": "/services/data/v62.0/query/01g-2000",
                               "records": [{"Id": "A"}]})
    responses.get(f"{INSTANCE}/services/data/v62.0/query/01g-2000", json={"totalSize": 2, "done": True,
                                                                         "records": [{"Id": "B"}]})
    client = SalesforceConnector({"client_id": "cid", "client_secret": "s", "refresh_token": "r"})
    assert client.query("SELECT Id FROM Contact") == [{"Id": "A"}, {"Id": "B"}]


def test_salesforce_refuses_a_field_name_that_is_not_an_identifier() -> None:
    client = SalesforceConnector({"client_id": "cid"})
    with pytest.raises(FatalVendorError, match="bad external id"):
        client.read([ContactUpdate(email="a@example.com", identity={"Email) OR (Id": "x"})])


# -- Splio -----------------------------------------------------------------------------------
SPLIO = "https://api.splio.com"


@responses.activate
def test_splio_gets_each_contact_by_its_key_and_404_means_not_held() -> None:
    responses.post(f"{SPLIO}/authenticate", match=[matchers.json_params_matcher({"api_key": "sk"})], json={"token": "jwt-1"})
    bearer = matchers.header_matcher({"Authorization": "Bearer jwt-1"})
    responses.get(f"{SPLIO}/data/contacts/anna@example.com", match=[bearer], json={
        "id": 1, "email": "anna@example.com", "firstname": "Anna", "lastname": "", "cellphone": "",
        "custom_fields": [{"id": 3, "name": "referral_nb_converted_customers", "value": "1", "data_type": "int"}],
        "lists": [{"id": 26, "name": "Referral friends - customers"}]})
    responses.get(f"{SPLIO}/data/contacts/gone@example.com", match=[bearer], status=404, json={
        "status": 404, "errors": [{"error_key": "id", "error": "wrong_value",
                                   "error_description": "Contact not found for given identifier."}]})
    views = SplioConnector({"api_key": "sk"}).read([ContactUpdate(email="anna@example.com"),
                                                   ContactUpdate(email="gone@example.com")])
    assert views == {"anna@example.com": ContactView(
        fields={"firstname": "Anna", "lastname": "", "cellphone": "", "referral_nb_converted_customers": "1", "3": "1"},
        lists={"26"}), "gone@example.com": None}


@responses.activate
def test_splio_read_other_errors_are_raised() -> None:
    responses.post(f"{SPLIO}/authenticate", json={"token": "jwt-1"})
    responses.get(f"{SPLIO}/data/contacts/anna@example.com", status=403, json={
        "status": 403, "errors": [{"error_key": "scope", "error": "forbidden", "error_description": "no access"}]})
    with pytest.raises(AuthError):
        SplioConnector({"api_key": "sk"}).read([ContactUpdate(email="anna@example.com")])
