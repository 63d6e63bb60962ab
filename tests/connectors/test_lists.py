"""The account's lists, for the mapping editor: the exact call each vendor gets and how its answer
becomes [{"id", "name"}]; vendors without a list call say so."""
from __future__ import annotations

import pytest
import responses
from responses import matchers

from connectors import CONNECTORS
from connectors.emarsys import EmarsysConnector
from connectors.errors import AuthError
from connectors.klaviyo import KlaviyoConnector
from connectors.splio import SplioConnector


@responses.activate
def test_klaviyo_lists_follow_the_next_link() -> None:
    headers = {"Authorization": "Klaviyo-API-Key pk_test", "revision": "2026-07-15"}
    first = responses.get("https://a.klaviyo.com/api/lists", match=[matchers.header_matcher(headers),
                                                                    matchers.query_param_matcher({})],
                          json={"data": [{"type": "list", "id": "RfMkt1", "attributes": {"name": "Marketing"}}],
                                "links": {"next": "https://a.klaviyo.com/api/lists?page%5Bcursor%5D=abc"}})
    second = responses.get("https://a.klaviyo.com/api/lists", match=[matchers.query_param_matcher({"page[cursor]": "abc"})],
                           json={"data": [{"type": "list", "id": "RfTxn1", "attributes": {"name": "Customers"}}],
                                 "links": {"next": None}})
    assert KlaviyoConnector({"api_key": "pk_test"}).lists() == [{"id": "RfMkt1", "name": "Marketing"},
                                                                 {"id": "RfTxn1", "name": "Customers"}]
    assert first.call_count == 1 and second.call_count == 1


@responses.activate
def test_klaviyo_lists_without_the_scope_is_an_auth_error() -> None:
    responses.get("https://a.klaviyo.com/api/lists", status=403, json={"errors": [
        {"id": "e", "status": 403, "code": "permission_denied", "title": "Forbidden", "detail": "lists:read"}]})
    with pytest.raises(AuthError):
        KlaviyoConnector({"api_key": "pk_test"}).lists()


@responses.activate
def test_emarsys_contactlist_ids_become_strings() -> None:
    call = responses.get("https://api.emarsys.net/api/v2/contactlist", json={"replyCode": 0, "replyText": "OK", "data": [
        {"id": 740001, "name": "Referral friends - marketing", "created": "2026-01-05 09:00:00", "type": 0}]})
    emarsys = EmarsysConnector({"username": "acme001", "secret": "s3cr3t-emarsys-value"})
    assert emarsys.lists() == [{"id": "740001", "name": "Referral friends - marketing"}]
    assert call.calls[0].request.headers["X-WSSE"].startswith('UsernameToken Username="acme001"')


@responses.activate
def test_splio_lists_page_through_count_element() -> None:
    responses.post("https://api.splio.com/authenticate", json={"token": "jwt-1"})
    pages = [responses.get("https://api.splio.com/data/v1/lists",
                           match=[matchers.query_param_matcher({"per_page": "100", "page_number": str(n)}),
                                  matchers.header_matcher({"Authorization": "Bearer jwt-1"})],
                           json={"count_element": 101, "elements": [{"id": 24 + n, "name": f"list {n}"}]})
             for n in (1, 2)]
    assert SplioConnector({"api_key": "sk"}).lists() == [{"id": "25", "name": "list 1"}, {"id": "26", "name": "list 2"}]
    assert [p.call_count for p in pages] == [1, 1]


def test_ometria_and_salesforce_have_no_list_call_the_hub_uses() -> None:
    for name, settings in (("ometria", {"api_key": "k"}),
                           ("salesforce", {"client_id": "i", "client_secret": "s", "refresh_token": "r"})):
        with pytest.raises(NotImplementedError):
            CONNECTORS[name](settings).lists()
