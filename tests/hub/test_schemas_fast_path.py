"""The ingest fast path (hub.schemas.fast_load) returns exactly what marshmallow returns, and
hands anything unusual to marshmallow so a 422 reads the same as before."""
from __future__ import annotations

import copy

import pytest

from benchmarks import workload
from hub.schemas import EVENT, fast_load, load_events

BASE = {"id": "evt_1", "type": "friend.converted", "occurred_at": "2026-11-21T10:00:00Z", "programme": "uk",
        "referrer": {"email": " Anna@Example.COM ", "first_name": "Anna", "referrer_id": "r1",
                     "share_url": "https://shop.example/r/anna", "extra": "ignored"},
        "friend": {"email": "cleo@example.com", "marketing_opt_in": True, "promo_code": "ANNA-20", "last_name": None},
        "order": {"id": "ord_1", "total": "59.90", "currency": "GBP", "coupon_code": "ANNA-20"},
        "unknown_top": 1}


def test_same_result_as_marshmallow_on_the_workload() -> None:
    for event in workload.build(100, seed=5).stream:
        assert fast_load(event) == EVENT.load(event)


@pytest.mark.parametrize("change", [
    {}, {"occurred_at": "2026-11-21T10:00:00.123+02:00"}, {"occurred_at": "2026-11-21T10:00:00"},
    {"programme": None}, {"referrer": None}, {"order": {"id": "o", "total": "0.0001", "currency": "EUR"}},
    {"type": "reward.granted", "reward": {"recipient": "referrer", "value": "10.00", "currency": "GBP", "code": "T"}},
    {"type": "contact.updated", "contact": {"email": "x@y.co", "marketing_opt_in": False}},
    {"order": {"id": "o", "total": "100000000000", "currency": "EUR"}}, {"occurred_at": "1970-01-01T00:00:00Z"},
    {"occurred_at": "9999-12-31T22:59:59-01:00"}, {"referrer": {"email": "a" * 64 + "@" + ("b" * 63 + ".") * 2 + "b" * 57 + ".com"}},
])
def test_same_result_for_valid_variants(change: dict) -> None:
    event = {**copy.deepcopy(BASE), **change}
    assert fast_load(event) == EVENT.load(event)


@pytest.mark.parametrize("change", [
    {"occurred_at": "21/11/2026"}, {"occurred_at": 5}, {"id": ""}, {"id": 7}, {"type": "nope"},
    {"referrer": {"email": "not-an-email"}}, {"referrer": {"email": "a@b.co", "share_url": "nope"}},
    {"friend": {"email": "a@b.co", "marketing_opt_in": "yes"}}, {"order": {"id": "o", "total": "-1", "currency": "GBP"}},
    {"order": {"id": "o", "total": 5, "currency": "GBP"}}, {"order": {"id": "o", "total": "1.00001", "currency": "GBP"}},
    {"order": {"id": "o", "total": "1", "currency": "gbp"}}, {"friend": None},
    {"referrer": {"email": "a@b.co", "first_name": "x" * 256}},
    {"type": "reward.granted", "reward": {"recipient": "friend", "value": "1"}},
    {"occurred_at": "2026-02-30T10:00:00Z"}, {"occurred_at": "0001-01-01T00:00:00+01:00"},
    {"occurred_at": "9999-12-31T23:59:59-01:00"}, {"occurred_at": "1969-12-31T23:59:59Z"},
    {"order": {"id": "o", "total": "100000000000.0001", "currency": "GBP"}},
    {"type": "reward.granted", "reward": {"recipient": "friend", "value": "1e12", "currency": "GBP"}},
    {"referrer": {"email": "a" * 64 + "@" + ("b" * 63 + ".") * 2 + "b" * 58 + ".com"}}, {"friend": {"email": "cleo@localhost"}},
])
def test_anything_unusual_goes_to_marshmallow(change: dict) -> None:
    event = {**copy.deepcopy(BASE), **change}
    assert fast_load(event) is None
    events, errors = load_events([event])
    try:
        want = [EVENT.load(event)]
    except Exception:  # noqa: BLE001 - marshmallow refuses: so must load_events
        assert errors and not events
    else:
        assert events == want and not errors


def test_a_lone_surrogate_in_a_stored_field_is_refused_by_either_path() -> None:
    """Callers that parse no JSON themselves (feeds, the CLI) still never hand Lua a non-text string.
    The second event takes marshmallow's path (a number for a total)."""
    friend = {"email": "cleo@example.com", "first_name": "Cl\ud800o"}
    fast = {**copy.deepcopy(BASE), "friend": friend}
    slow = {**fast, "order": {"id": "o", "total": 5, "currency": "GBP"}}
    assert fast_load(fast) is not None and fast_load(slow) is None
    for item in (fast, slow):
        events, errors = load_events([item])
        assert not events and errors == [{"index": 0, "field": "friend.first_name",
                                          "message": "holds a lone UTF-16 surrogate such as \\ud800, which is not text"}]
    events, errors = load_events([{**copy.deepcopy(BASE), "unknown_top": "\ud800"}])  # ignored keys are not stored
    assert events and not errors
