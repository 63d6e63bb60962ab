"""Talon.One: a static header credential, notifications (X-UUID), coupons and the hub template."""
from __future__ import annotations

import pytest

from sources import PayloadError, SOURCES, SignatureError

from .helpers import NOW, NOW_ISO, published, published_json, run

ADAPTER = SOURCES["talon_one"]
TOKEN = "Basic dGFsb246b25l"
SETTINGS = ADAPTER.settings_from_env({"HUB_SOURCE_TALON_ONE_HEADER_NAME": "Authorization",
                                      "HUB_SOURCE_TALON_ONE_HEADER_VALUE": TOKEN,
                                      "HUB_SOURCE_TALON_ONE_CURRENCY": "EUR",
                                      "HUB_SOURCE_TALON_ONE_LOYALTY_PROGRAMS": "5, 9"})


# --- settings and credential -------------------------------------------------------------------

def test_settings() -> None:
    assert SETTINGS["loyalty_programs"] == {"5", "9"} and ADAPTER.configured(SETTINGS)
    assert not ADAPTER.configured(ADAPTER.settings_from_env({"HUB_SOURCE_TALON_ONE_HEADER_NAME": "Authorization"}))
    assert ADAPTER.settings_from_env({})["loyalty_programs"] == set()


def test_good_credential() -> None:
    ADAPTER.verify({"authorization": TOKEN}, b"{}", SETTINGS, NOW)
    ADAPTER.verify({"AUTHORIZATION": f" {TOKEN} "}, b"{}", SETTINGS, NOW)


@pytest.mark.parametrize("headers, reason", [
    ({}, "missing"),
    ({"Authorization": "Basic wrong"}, "does not match"),
    ({"Authorization": ""}, "does not match"),
    ({"Authorization": TOKEN + "x"}, "does not match"),
    ({"Authorization": "é\udcff"}, "does not match"),
])
def test_bad_or_malformed_credential(headers, reason) -> None:
    with pytest.raises(SignatureError, match=reason) as caught:
        ADAPTER.verify(headers, b"{}", SETTINGS, NOW)
    assert TOKEN not in str(caught.value)


def test_unconfigured_refuses() -> None:
    with pytest.raises(SignatureError):
        ADAPTER.verify({"Authorization": TOKEN}, b"{}", ADAPTER.settings_from_env({}), NOW)


# --- published examples -----------------------------------------------------------------------

def test_points_deducted_is_acknowledged_not_mapped(shared_dir) -> None:
    body = published(shared_dir, "talon_one", "LoyaltyPointsAdded-or-Deducted.notification.json")
    result = run("talon_one", body, SETTINGS, {"X-UUID": "m-1"})
    assert result.events == [] and result.ignored == ["LoyaltyPointsDeducted"]


def test_points_added_in_a_referral_programme_is_reward_granted(shared_dir) -> None:
    body = published_json(shared_dir, "talon_one", "LoyaltyPointsAdded-or-Deducted.notification.json")
    body["NotificationType"] = "LoyaltyPointsAdded"
    result = run("talon_one", body, SETTINGS, {"X-UUID": "m-2"})
    assert result.events == [{"id": "talon_one:m-2", "type": "reward.granted", "occurred_at": NOW_ISO,
                              "source": "talon_one",
                              "referrer": {"source_id": "URNGV8294NV", "referrer_id": "URNGV8294NV"},
                              "reward": {"recipient": "referrer", "kind": "points"}}]
    other_programme = {**body, "LoyaltyProgramID": 6}
    assert run("talon_one", other_programme, SETTINGS).ignored == ["LoyaltyPointsAdded"]
    contradiction = {**body, "Operation": "deduction"}
    assert run("talon_one", contradiction, SETTINGS).ignored == ["LoyaltyPointsAdded"]
    without_uuid = run("talon_one", body, SETTINGS).events[0]["id"]
    assert without_uuid == "talon_one:1a6a7599-2622-4489-9034-5a62da3944e0"  # TransactionUUID


def test_coupons_without_referral_are_acknowledged(shared_dir) -> None:
    data = published_json(shared_dir, "talon_one", "createCouponData.data-array.json")
    for body in (data, {"NotificationType": "CouponsCreated", "data": data}):
        result = run("talon_one", body, SETTINGS, {"X-UUID": "m-3"})
        assert result.events == [] and len(result.ignored) == 2


@pytest.mark.parametrize("name", ["referral-effects.props-examples.json",
                                  "updateCustomerSession.request.with-referralCode.json"])
def test_integration_api_bodies_are_not_webhooks(shared_dir, name) -> None:
    result = run("talon_one", published(shared_dir, "talon_one", name), SETTINGS)
    assert result.events == [] and result.ignored == ["unknown"]


# --- our own fixtures -------------------------------------------------------------------------

def referral_coupons(shared_dir) -> list[dict]:
    data = published_json(shared_dir, "talon_one", "createCouponData.data-array.json")
    data[0].update(referralId="ADV-1", recipientIntegrationId="ADV-1")       # the advocate's reward
    data[1].update(referralId="ADV-1", recipientIntegrationId="FRIEND-7")    # the friend's welcome coupon
    return data


def test_referral_coupons_are_rewards_to_each_side(shared_dir) -> None:
    result = run("talon_one", {"NotificationType": "CouponsCreated", "data": referral_coupons(shared_dir)},
                 SETTINGS, {"X-UUID": "m-4"})
    assert result.events == [
        {"id": "talon_one:m-4:0", "type": "reward.granted", "occurred_at": "2023-01-31T14:19:25.184Z",
         "source": "talon_one", "reward": {"recipient": "referrer", "kind": "coupon", "code": "73KXKKFP"},
         "referrer": {"source_id": "ADV-1", "referrer_id": "ADV-1"}},
        {"id": "talon_one:m-4:1", "type": "reward.granted", "occurred_at": "2023-01-31T14:19:25.184Z",
         "source": "talon_one", "reward": {"recipient": "friend", "kind": "coupon", "code": "BH3CXXLW"},
         "friend": {"source_id": "FRIEND-7"}, "referrer": {"source_id": "ADV-1", "referrer_id": "ADV-1"}}]


def test_integer_referral_id_is_not_taken_for_a_person(shared_dir) -> None:
    coupon = {**referral_coupons(shared_dir)[1], "referralId": 12}
    event = run("talon_one", [coupon], SETTINGS).events[0]
    assert event["id"] == "talon_one:coupon:2" and "referrer" not in event
    assert event["friend"] == {"source_id": "FRIEND-7"}


def template(**extra) -> dict:
    """The body the webhook template in docs/webhooks.md renders."""
    return {"type": "friend.converted", "occurred_at": "2026-01-05T10:00:00+01:00", "referral_code": "NT2K54D9",
            "advocate_integration_id": "ADV-1", "advocate_email": "Adv@Example.com",
            "friend_integration_id": "URNGV8294NV", "friend_email": "", "order_id": "sess-1",
            "order_total": 99.99, **extra}


def test_template_friend_converted(shared_dir) -> None:
    result = run("talon_one", template(), SETTINGS, {"X-UUID": "m-5"})
    assert result.events == [{
        "id": "talon_one:m-5", "type": "friend.converted", "occurred_at": "2026-01-05T09:00:00Z", "source": "talon_one",
        "referrer": {"email": "adv@example.com", "source_id": "ADV-1", "referrer_id": "ADV-1"},
        "friend": {"source_id": "URNGV8294NV", "promo_code": "NT2K54D9"},
        "order": {"id": "sess-1", "total": "99.99", "currency": "EUR", "coupon_code": "NT2K54D9"}}]
    assert result.identities == [{"source_id": "ADV-1", "email": "adv@example.com"}]


def test_template_reward() -> None:
    body = template(type="reward.granted", reward_recipient="referrer", reward_kind="credit", reward_value="10",
                    currency="gbp", reward_code="THANKS-10")
    event = run("talon_one", body, SETTINGS).events[0]
    assert event["reward"] == {"recipient": "referrer", "kind": "credit", "code": "THANKS-10", "value": "10.00",
                               "currency": "GBP"}


def test_duplicate_delivery_has_the_same_dedupe_id() -> None:
    assert (run("talon_one", template(), SETTINGS, {"x-uuid": "m-6"}).events[0]["id"]
            == run("talon_one", template(), SETTINGS, {"X-UUID": "m-6"}).events[0]["id"] == "talon_one:m-6")
    unnamed = [run("talon_one", template(), SETTINGS).events[0]["id"] for _ in range(2)]
    assert unnamed[0] == unnamed[1]


@pytest.mark.parametrize("body", [{"NotificationType": "TierUpgrade", "ProfileIntegrationID": "x"},
                                  {"type": "contact.erased"}, {"hello": "world"}])
def test_unknown_is_ignored(body) -> None:
    result = run("talon_one", body, SETTINGS)
    assert result.events == [] and len(result.ignored) == 1


def test_missing_email_gives_a_party_with_source_id_only() -> None:
    event = run("talon_one", template(type="friend.registered", advocate_email=None), SETTINGS).events[0]
    assert event["referrer"] == {"source_id": "ADV-1", "referrer_id": "ADV-1"}
    assert event["friend"] == {"source_id": "URNGV8294NV", "promo_code": "NT2K54D9"}


@pytest.mark.parametrize("body", [b"nope", b'"a string"', b"42"])
def test_not_talon_one_shape_is_payload_error(body) -> None:
    with pytest.raises(PayloadError):
        run("talon_one", body, SETTINGS)
