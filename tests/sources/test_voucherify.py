"""Voucherify: the published signature vectors, every published example, and our own fixtures."""
from __future__ import annotations

import copy
import hashlib
import hmac
import json

import pytest

from sources import PayloadError, SOURCES, SignatureError
from sources.voucherify import signed_bytes

from .helpers import NOW, dumps, published, published_json, run

ADAPTER = SOURCES["voucherify"]
SECRET = "vf-secret-for-tests"
SETTINGS = ADAPTER.settings_from_env({"HUB_SOURCE_VOUCHERIFY_SECRET": SECRET, "HUB_SOURCE_VOUCHERIFY_CURRENCY": "gbp"})


def sign(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Voucherify-Signature": hmac.new(secret.encode(), signed_bytes(body), hashlib.sha256).hexdigest()}


def envelope(kind: str, data: dict, event_id: str = "evcus_0001", created_at: str = "2026-02-03T04:05:06.000Z") -> dict:
    """The v2024-01-01 project webhook envelope around a data example (as in voucher.published.envelope.json)."""
    return {"id": "whs_0001", "project_id": "proj_T3st", "created_at": created_at, "type": kind, "data": data,
            "source": {"id": "wh_0001", "object": "webhook", "target_url": "https://hub.example/v1/webhooks"},
            "event": {"id": event_id, "type": kind, "created_at": created_at, "entity_id": "x", "group_id": "v-1",
                      "event_source": {"channel": "API"}}}


# --- settings and signatures -------------------------------------------------------------------

def test_settings_from_env_and_configured() -> None:
    assert SETTINGS["secret"] == SECRET and SETTINGS["currency"] == "gbp"
    assert ADAPTER.configured(SETTINGS)
    assert not ADAPTER.configured(ADAPTER.settings_from_env({"HUB_SOURCE_VOUCHERIFY_SECRET": SECRET}))
    assert not ADAPTER.configured(ADAPTER.settings_from_env({"HUB_SOURCE_VOUCHERIFY_CURRENCY": "EUR"}))
    assert ADAPTER.configured(ADAPTER.settings_from_env({
        "HUB_SOURCE_VOUCHERIFY_HEADER_NAME": "X-Hub-Token", "HUB_SOURCE_VOUCHERIFY_HEADER_VALUE": "t",
        "HUB_SOURCE_VOUCHERIFY_CURRENCY": "EUR"}))


def test_published_signature_vectors(shared_dir) -> None:
    vectors = published_json(shared_dir, "voucherify", "signature-test-vectors.json")
    settings = {**SETTINGS, "secret": vectors["secretKey"]}
    assert len(vectors["vectors"]) == 3
    for vector in vectors["vectors"]:
        body = vector["payload_as_received"].encode()
        assert signed_bytes(body) == vector["payload_signed"].encode()
        ADAPTER.verify({"x-voucherify-signature": vector["signature"]}, body, settings, NOW)
        with pytest.raises(SignatureError):
            ADAPTER.verify({"x-voucherify-signature": vector["signature"]}, body + b"x", settings, NOW)


def test_good_signature_on_pretty_printed_body() -> None:
    body = json.dumps({"type": "x", "note": "spaces  inside  strings stay", "n": [1, 2]}, indent=2).encode()
    headers = sign(body)
    assert b"  inside  " in signed_bytes(body) and b"\n" not in signed_bytes(body)
    ADAPTER.verify(headers, body, SETTINGS, NOW)
    ADAPTER.verify({"x-voucherify-signature": headers["X-Voucherify-Signature"].upper()}, body, SETTINGS, NOW)


@pytest.mark.parametrize("headers, reason", [
    ({}, "missing"),
    ({"X-Voucherify-Signature": "not-hex"}, "malformed"),
    ({"X-Voucherify-Signature": "ab" * 31}, "malformed"),
    ({"X-Voucherify-Signature": "é" * 64}, "malformed"),
    ({"X-Voucherify-Signature": "0" * 64}, "does not match"),
])
def test_bad_signatures(headers, reason) -> None:
    with pytest.raises(SignatureError, match=reason) as caught:
        ADAPTER.verify(headers, b'{"a":1}', SETTINGS, NOW)
    assert SECRET not in str(caught.value)


def test_signature_with_another_secret_fails() -> None:
    body = b'{"a": 1}'
    with pytest.raises(SignatureError):
        ADAPTER.verify(sign(body, "other"), body, SETTINGS, NOW)


def test_distribution_header_credential() -> None:
    settings = {**SETTINGS, "header_name": "X-Hub-Token", "header_value": "dist-token"}
    ADAPTER.verify({"x-hub-token": "dist-token"}, b"{}", settings, NOW)
    with pytest.raises(SignatureError):
        ADAPTER.verify({"x-hub-token": "dist-tokeN"}, b"{}", settings, NOW)
    with pytest.raises(SignatureError):  # a present but wrong HMAC never falls back to the header
        ADAPTER.verify({"x-hub-token": "dist-token", "x-voucherify-signature": "0" * 64}, b"{}", settings, NOW)


# --- published examples -----------------------------------------------------------------------

DELETED = {"type": "contact.erased", "occurred_at": "2024-02-01T11:16:40.934Z", "source": "voucherify",
           "contact": {"email": "lionel-johnson@lion.io", "source_id": "cust_7LvqCsUB9c8WyFP8JaLXchtF",
                       "customer_id": "lionel-johnson"}}
REFEREE = {"type": "friend.registered", "occurred_at": "2024-07-19T12:19:07.002Z", "source": "voucherify",
           "friend": {"source_id": "cust_3yngSdlObyvUtdDcnHiGu6Yx", "promo_code": "REFAPI-mk3"},
           "referrer": {"source_id": "cust_33924S073JcRVZJRfychtHhW", "referrer_id": "cust_33924S073JcRVZJRfychtHhW"}}


@pytest.mark.parametrize("name, natural_id, expected", [
    ("customer.deleted.data.json", "deleted:cust_7LvqCsUB9c8WyFP8JaLXchtF", DELETED),
    ("customer.holder.assignment.created.referee.data.json", "rh_0f147785a5c966e4b3", REFEREE),
])
def test_published_data_examples_map(shared_dir, name, natural_id, expected) -> None:
    """Data-only (distribution "Raw payload") and enveloped (project webhook) forms of each example."""
    raw = published(shared_dir, "voucherify", name)
    result = run("voucherify", raw, SETTINGS)
    assert result.events == [{"id": f"voucherify:{natural_id}", **expected}]
    assert result.ignored == [] and result.identities == []
    kind = name.split(".data.json")[0].replace(".referee", "")
    wrapped = run("voucherify", envelope(kind, json.loads(raw), event_id="evcus_0e2"), SETTINGS)
    assert wrapped.events == [{"id": "voucherify:evcus_0e2", **expected}]


@pytest.mark.parametrize("name, kind", [
    ("voucher.published.envelope.json", "voucher.published"),                   # not a referral campaign
    ("distribution.customer.publication.succeeded.envelope.json", "customer.publication.succeeded"),  # free template
    ("redemption.succeeded.data.json", "redemption.succeeded"),                 # not a referral code
    ("redemption.rollback.succeeded.referral-code.data.json", "redemption.rollback.succeeded"),  # reversal: decided
    ("customer.rewarded.data.json", "customer.rewarded"),                       # loyalty, not referral
    ("customer.rewarded.loyalty_points.data.json", "customer.rewarded.loyalty_points"),
])
def test_published_examples_acknowledged_but_not_mapped(shared_dir, name, kind) -> None:
    result = run("voucherify", published(shared_dir, "voucherify", name), SETTINGS)
    assert result.events == [] and result.ignored == [kind]


# --- our own fixtures -------------------------------------------------------------------------

def referral_redemption(shared_dir) -> dict:
    """The published redemption, made a referral-code redemption as a REFERRAL_PROGRAM sends it."""
    data = published_json(shared_dir, "voucherify", "redemption.succeeded.data.json")
    data["campaign"]["campaign_type"] = "REFERRAL_PROGRAM"
    data["voucher"].update(code="ANNA-20", is_referral_code=True, holder_id="cust_anna", referrer_id="cust_anna")
    data["order"]["source_id"] = "ord-9001"
    return data


def test_referral_redemption_is_friend_converted_in_major_units(shared_dir) -> None:
    result = run("voucherify", envelope("redemption.succeeded", referral_redemption(shared_dir)), SETTINGS)
    assert result.events == [{
        "id": "voucherify:evcus_0001", "type": "friend.converted", "occurred_at": "2024-01-15T12:20:38.635Z",
        "source": "voucherify",
        "friend": {"email": "jane@jane.io", "first_name": "Jane", "last_name": "Doe",
                   "customer_id": "test_customer_id_2",
                   "source_id": "cust_1g637SqVZnkdPNdAIZ7Ra879", "promo_code": "ANNA-20"},
        "referrer": {"source_id": "cust_anna", "referrer_id": "cust_anna"},
        "order": {"id": "ord-9001", "total": "60.00", "currency": "GBP", "coupon_code": "ANNA-20"}}]
    assert result.identities == [{"source_id": "cust_1g637SqVZnkdPNdAIZ7Ra879", "email": "jane@jane.io",
                                  "first_name": "Jane", "last_name": "Doe", "customer_id": "test_customer_id_2"}]


def test_minor_units_without_total_amount_use_amount(shared_dir) -> None:
    data = referral_redemption(shared_dir)
    del data["order"]["total_amount"]
    event = run("voucherify", envelope("redemption.succeeded", data), SETTINGS).events[0]
    assert event["order"]["total"] == "70.00"


def test_stacked_redemptions_are_distinct_events_for_one_order(shared_dir) -> None:
    """A stack sends one redemption.succeeded per redeemable plus one for the stack: the ledger
    counts the order once by its id; the stack's own event (no referral code) is ignored."""
    data = referral_redemption(shared_dir)
    one = run("voucherify", envelope("redemption.succeeded", data, event_id="evred_1"), SETTINGS)
    stack = copy.deepcopy(data)
    stack["voucher"] = None
    stack["campaign"] = None
    stack["redemption"]["voucher"] = None
    parent = run("voucherify", envelope("redemption.succeeded", stack, event_id="evred_2"), SETTINGS)
    assert one.events[0]["order"]["id"] == "ord-9001" and parent.events == []
    assert parent.ignored == ["redemption.succeeded"]


def test_duplicate_delivery_has_the_same_dedupe_id(shared_dir) -> None:
    body = dumps(envelope("redemption.succeeded", referral_redemption(shared_dir)))
    first, again = run("voucherify", body, SETTINGS), run("voucherify", body, SETTINGS)
    assert [e["id"] for e in first.events] == [e["id"] for e in again.events] == ["voucherify:evcus_0001"]
    raw = published(shared_dir, "voucherify", "customer.holder.assignment.created.referee.data.json")
    assert run("voucherify", raw, SETTINGS).events[0]["id"] == run("voucherify", raw, SETTINGS).events[0]["id"]


def test_referral_code_published_is_referrer_enrolled(shared_dir) -> None:
    body = published_json(shared_dir, "voucherify", "voucher.published.envelope.json")
    body["data"]["voucher"]["is_referral_code"] = True
    result = run("voucherify", body, SETTINGS)
    assert result.events == [{
        "id": "voucherify:evvou_ID", "type": "referrer.enrolled", "occurred_at": "2025-10-16T16:03:23.065Z",
        "source": "voucherify",
        "referrer": {"email": "alex.doe@doe.alex.io", "first_name": "Alex", "last_name": "Doe",
                     "customer_id": "4lx-d03",
                     "source_id": "cust_ID", "referrer_id": "cust_ID"}}]


def test_distribution_envelope_uses_event_type_and_template_data(shared_dir) -> None:
    body = published_json(shared_dir, "voucherify", "distribution.customer.publication.succeeded.envelope.json")
    body["type"] = "Referrer code sent"  # the user's free "Event name"
    body["data"] = {"customer": {"id": "cust_zoe", "email": " Zoe@Example.com ", "name": "Zoe"},
                    "voucher": {"code": "ZOE-10", "is_referral_code": True}}
    result = run("voucherify", body, SETTINGS)
    assert result.events == [{"id": "voucherify:evcus_000000000000000000", "type": "referrer.enrolled",
                              "occurred_at": "2000-01-01T00:00:00Z", "source": "voucherify",
                              "referrer": {"email": "zoe@example.com", "first_name": "Zoe", "source_id": "cust_zoe",
                                           "referrer_id": "cust_zoe"}}]
    assert result.identities == [{"source_id": "cust_zoe", "email": "zoe@example.com", "first_name": "Zoe"}]


def test_referral_reward_is_reward_granted(shared_dir) -> None:
    data = published_json(shared_dir, "voucherify", "customer.rewarded.data.json")
    data["campaign"]["campaign_type"] = "REFERRAL_PROGRAM"
    data["referral_tier"] = {"id": "rt_1"}
    data["reward"]["parameters"] = {"campaign": {"id": "camp_gift", "balance": 1500}}
    result = run("voucherify", data, SETTINGS)
    assert result.events == [{
        "id": "voucherify:rewa_XiIei2UpOYkLQxZ4J3U2pYlK:r_0e2907cc52498573ee", "type": "reward.granted",
        "occurred_at": "2024-01-18T15:27:56.234Z", "source": "voucherify",
        "referrer": {"first_name": "Jack", "last_name": "Webhook", "customer_id": "jck-wbhk",
                     "source_id": "cust_IdgAFZxYwwHctOk9pPuMu308", "referrer_id": "cust_IdgAFZxYwwHctOk9pPuMu308"},
        "reward": {"recipient": "referrer", "kind": "credit", "value": "15.00", "currency": "GBP"}}]


def test_loyalty_rewards_map_only_when_asked(shared_dir) -> None:
    raw = published(shared_dir, "voucherify", "customer.rewarded.loyalty_points.data.json")
    settings = {**SETTINGS, "rewards": "all"}
    event = run("voucherify", raw, settings).events[0]
    assert event["type"] == "reward.granted"
    assert event["reward"] == {"recipient": "referrer", "kind": "points"}
    assert "email" not in event["referrer"] and event["referrer"]["source_id"] == "cust_IdgAFZxYwwHctOk9pPuMu308"


def test_customer_created_teaches_identity_without_an_event() -> None:
    body = envelope("customer.created", {"customer": {"id": "cust_q", "email": "Q@Example.com", "source_id": "q-1"}})
    result = run("voucherify", body, SETTINGS)
    assert result.events == [] and result.ignored == ["customer.created"]
    assert result.identities == [{"source_id": "cust_q", "email": "q@example.com", "customer_id": "q-1"}]


def test_unknown_type_is_ignored() -> None:
    result = run("voucherify", envelope("campaign.referral_tier.created", {"anything": [1]}), SETTINGS)
    assert result.events == [] and result.ignored == ["campaign.referral_tier.created"]
    assert run("voucherify", {"weird": True}, SETTINGS).ignored == ["unknown"]


def test_missing_email_gives_a_party_with_source_id_only(shared_dir) -> None:
    data = referral_redemption(shared_dir)
    data["customer"] = {"id": "cust_noemail", "email": None}
    data["redemption"]["customer"] = None
    event = run("voucherify", envelope("redemption.succeeded", data), SETTINGS).events[0]
    assert event["friend"] == {"source_id": "cust_noemail", "promo_code": "ANNA-20"}


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"text"', b"[" * 100_000])
def test_not_voucherify_shape_is_payload_error(body) -> None:
    with pytest.raises(PayloadError):
        run("voucherify", body, SETTINGS)
