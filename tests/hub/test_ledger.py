"""The ledger's numbers: duplicates, retries and reordering never change a count or a turnover."""
from __future__ import annotations

import itertools
import random
from decimal import Decimal

from tests.story import event, messy, story


def apply(app, events):  # type: ignore[no-untyped-def]
    with app.app_context():
        from hub.core.ledger import get_ledger
        from hub.core.schemas import load_events

        valid, errors = load_events(events)
        assert not errors
        return get_ledger().apply(valid, ["klaviyo"])


def states(app, *emails):  # type: ignore[no-untyped-def]
    with app.app_context():
        from hub.core.ledger import get_ledger

        return get_ledger().states(list(emails))


def referrer_numbers(state):  # type: ignore[no-untyped-def]
    return {k: state.get(k) for k in ("invites_sent", "friends_registered", "friends_converted", "turnover",
                                      "rewards_earned")}


def test_story_counts(make_app) -> None:
    app = make_app()
    assert apply(app, story()) == (11, 0)
    anna, ben, cleo = (states(app, "anna@example.com", "ben@example.com", "cleo@example.com")[e]
                       for e in ("anna@example.com", "ben@example.com", "cleo@example.com"))
    assert referrer_numbers(anna) == {"invites_sent": 2, "friends_registered": 2, "friends_converted": 1,
                                      "turnover": {"GBP": Decimal("59.90")}, "rewards_earned": 1}
    assert ben["turnover"] == {"EUR": Decimal("120.00")} and ben["turnover_currency"] == "EUR"
    assert cleo["referred_by"] == "anna@example.com" and cleo["marketing_opt_in"] is True
    assert cleo["first_order_id"] == "ord_1" and cleo["promo_code"] == "ANNA-20"


def test_duplicates_and_reorder_end_in_the_same_state(make_app, redis_client) -> None:
    app = make_app()
    apply(app, story())
    emails = ["anna@example.com", "ben@example.com", "cleo@example.com", "dan@example.com", "eve@example.com"]
    expected = states(app, *emails)
    latest = max(e["occurred_at"] for e in story() if (e.get("referrer") or {}).get("email") == "anna@example.com")
    assert expected["anna@example.com"]["last_activity_at"].startswith(latest.removesuffix("Z"))
    for seed in range(5):
        redis_client.flushdb()
        events = messy(story())
        random.Random(seed).shuffle(events)
        accepted, duplicates = apply(app, events)
        assert (accepted, duplicates) == (12, 1)
        got = states(app, *emails)
        for email in emails:
            assert got[email] == expected[email], (seed, email)


def test_conversion_without_referrer_is_credited_when_the_registration_arrives(make_app) -> None:
    app = make_app()
    apply(app, [event(1, "friend.converted", friend={"email": "f@example.com"},
                      order={"id": "o-9", "total": "10.05", "currency": "GBP"})])
    assert states(app, "r@example.com")["r@example.com"] is None
    apply(app, [event(0, "friend.registered", referrer={"email": "r@example.com"}, friend={"email": "f@example.com"})])
    r = states(app, "r@example.com")["r@example.com"]
    assert (r["friends_registered"], r["friends_converted"], r["turnover"]) == (1, 1, {"GBP": Decimal("10.05")})


def test_an_order_counts_once_and_currencies_never_mix(make_app) -> None:
    app = make_app()
    ref = {"email": "r@example.com"}
    events = [event(1, "friend.converted", referrer=ref, friend={"email": "a@example.com"},
                    order={"id": "o-1", "total": "0.1", "currency": "GBP"}),
              event(2, "friend.converted", referrer=ref, friend={"email": "a@example.com"},
                    order={"id": "o-1", "total": "0.1", "currency": "GBP"}),
              event(3, "friend.converted", referrer=ref, friend={"email": "b@example.com"},
                    order={"id": "o-2", "total": "0.2", "currency": "GBP"}),
              event(4, "friend.converted", referrer=ref, friend={"email": "b@example.com"},
                    order={"id": "o-3", "total": "5", "currency": "EUR"})]
    assert apply(app, events) == (4, 0)
    r = states(app, "r@example.com")["r@example.com"]
    assert r["turnover"] == {"GBP": Decimal("0.30"), "EUR": Decimal("5.00")}
    assert r["friends_converted"] == 2 and r["friends_registered"] == 2


def test_every_order_of_a_small_story_gives_the_same_numbers(make_app, redis_client) -> None:
    app = make_app()
    ref = {"email": "r@example.com"}
    events = [event(1, "friend.registered", referrer=ref, friend={"email": "a@example.com", "marketing_opt_in": True}),
              event(2, "friend.converted", friend={"email": "a@example.com"}, order={"id": "o", "total": "3.33", "currency": "GBP"}),
              event(3, "contact.updated", contact={"email": "a@example.com", "marketing_opt_in": False}),
              event(4, "referral.invited", referrer=ref)]
    seen = set()
    for order in itertools.permutations(events):
        redis_client.flushdb()
        apply(app, list(order))
        got = states(app, "r@example.com", "a@example.com")
        seen.add(repr((referrer_numbers(got["r@example.com"]), got["a@example.com"]["marketing_opt_in"])))
    assert seen == {repr(({"invites_sent": 1, "friends_registered": 1, "friends_converted": 1,
                           "turnover": {"GBP": Decimal("3.33")}, "rewards_earned": None}, False))}


def test_erasure_removes_state_and_later_events_do_not_recreate_it(make_app, redis_client) -> None:
    app = make_app()
    apply(app, story())
    apply(app, [event(50, "contact.erased", contact={"email": "cleo@example.com"})])
    assert states(app, "cleo@example.com")["cleo@example.com"] is None
    assert redis_client.zscore("hub:dirty:klaviyo", "cleo@example.com") is None
    assert redis_client.zscore("hub:erase:klaviyo", "cleo@example.com") is not None
    apply(app, [event(51, "friend.registered", referrer={"email": "anna@example.com"},
                      friend={"email": "cleo@example.com", "first_name": "Cleo"})])
    assert states(app, "cleo@example.com")["cleo@example.com"] is None
    anna = states(app, "anna@example.com")["anna@example.com"]
    assert anna["friends_converted"] == 1 and anna["friends_registered"] == 2
    assert b"cleo@example.com" not in b"".join(redis_client.hkeys("hub:c:anna@example.com:n"))
