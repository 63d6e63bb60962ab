"""The event body's one validator (hub.core.schemas, msgspec structs): what it stores for a valid event,
and how a 422 reads for an invalid one (every problem, by dotted path, in the hub's words)."""
from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from benchmarks import workload
from hub.core.schemas import TYPES, load_events

BASE = {"id": "evt_1", "type": "friend.converted", "occurred_at": "2026-11-21T10:00:00Z", "programme": "uk",
        "referrer": {"email": " Anna@Example.COM ", "first_name": "Anna", "referrer_id": "r1",
                     "share_url": "https://shop.example/r/anna", "extra": "ignored"},
        "friend": {"email": "cleo@example.com", "marketing_opt_in": True, "promo_code": "ANNA-20", "last_name": None},
        "order": {"id": "ord_1", "total": "59.90", "currency": "GBP", "coupon_code": "ANNA-20"},
        "unknown_top": 1}


def with_(**change: Any) -> dict[str, Any]:
    return {**copy.deepcopy(BASE), **change}


def problems(event: dict[str, Any]) -> list[tuple[str, str]]:
    events, errors = load_events([event])
    assert not events
    return [(e["field"], e["message"]) for e in errors]


def test_a_valid_event_is_stored_normalised() -> None:
    (event,), errors = load_events([with_()])
    assert errors == []
    assert event == {
        "id": "evt_1", "type": "friend.converted", "occurred_at": "2026-11-21T10:00:00.000000Z", "programme": "uk",
        "referrer": {"email": "anna@example.com", "first_name": "Anna", "referrer_id": "r1",
                     "share_url": "https://shop.example/r/anna"},
        "friend": {"email": "cleo@example.com", "marketing_opt_in": True, "promo_code": "ANNA-20"},
        "order": {"id": "ord_1", "total": Decimal("59.90"), "currency": "GBP", "coupon_code": "ANNA-20"}}
    # plain types only: what reaches the ledger and its JSON encoding
    assert type(event["referrer"]["email"]) is str and type(event["order"]["total"]) is Decimal
    assert type(event["friend"]["marketing_opt_in"]) is bool


@pytest.mark.parametrize(("change", "field", "stored"), [
    ({"occurred_at": "2026-11-21T10:00:00.123+02:00"}, "occurred_at", "2026-11-21T08:00:00.123000Z"),
    ({"occurred_at": "2026-11-21T10:00:00"}, "occurred_at", "2026-11-21T10:00:00.000000Z"),
    ({"occurred_at": "9999-12-31T22:59:59-01:00"}, "occurred_at", "9999-12-31T23:59:59.000000Z"),
    ({"order": {"id": "o", "total": 5, "currency": "EUR"}}, "order", {"id": "o", "total": Decimal(5), "currency": "EUR"}),
    ({"order": {"id": "o", "total": "100000000000", "currency": "EUR"}}, "order",
     {"id": "o", "total": Decimal("100000000000"), "currency": "EUR"}),
    ({"friend": {"email": "c@d.co", "marketing_opt_in": "false"}}, "friend", {"email": "c@d.co", "marketing_opt_in": False}),
    ({"referrer": None}, "referrer", None),
])
def test_valid_variants(change: dict[str, Any], field: str, stored: Any) -> None:
    (event,), errors = load_events([with_(**change)])
    assert errors == [] and event.get(field) == stored


@pytest.mark.parametrize(("change", "expected"), [
    ({"id": ""}, [("id", "Length must be between 1 and 128.")]),
    ({"id": None}, [("id", "Field may not be null.")]),
    ({"type": "nope"}, [("type", "must be one of: " + ", ".join(TYPES))]),
    ({"occurred_at": "21/11/2026"}, [("occurred_at", "Not a valid datetime.")]),
    ({"occurred_at": "2026-02-30T10:00:00Z"}, [("occurred_at", "Not a valid datetime.")]),
    ({"occurred_at": "1969-12-31T23:59:59Z"}, [("occurred_at", "must be between 1970-01-01 and 9999-12-31 (UTC)")]),
    ({"friend": {"email": "a@b.co", "marketing_opt_in": "maybe"}}, [("friend.marketing_opt_in", "Not a valid boolean.")]),
    ({"friend": {"email": None}}, [("friend.email", "Field may not be null.")]),
    ({"friend": {}}, [("friend.email", "Missing data for required field.")]),
    ({"friend": 3}, [("friend", "Invalid input type.")]),
    ({"friend": None}, [("friend", "required for friend.converted events")]),
    ({"referrer": {"email": "a@b.co", "first_name": "x" * 256}}, [("referrer.first_name", "Longer than maximum length 255.")]),
    ({"referrer": {"email": "a@b.co", "share_url": "nope"}}, [("referrer.share_url", "Not a valid URL.")]),
    ({"order": {"id": "o", "total": "1.00001", "currency": "GBP"}}, [("order.total", "at most 4 decimal places")]),
    ({"order": {"id": "o", "total": True, "currency": "GBP"}}, [("order.total", 'must be a decimal amount such as "59.90"')]),
    ({"type": "reward.granted", "reward": {"recipient": "friend", "value": "1"}},
     [("reward.currency", "required when reward.value is given")]),
    ({"type": "reward.granted", "reward": {"recipient": "someone"}}, [("reward.recipient", "Must be one of: referrer, friend.")]),
    ({"type": "reward.granted", "reward": {"recipient": "friend"}, "friend": None},
     [("friend", "required when reward.recipient is friend")]),
])
def test_a_refusal_names_the_field_and_the_reason(change: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    assert problems(with_(**change)) == expected


def test_every_problem_of_an_event_is_named_at_once() -> None:
    event = with_(id=7, friend={"email": "not-an-email"}, order={"id": "o", "total": "-3", "currency": "pounds"})
    del event["occurred_at"]
    assert problems(event) == [("id", "Not a valid string."), ("occurred_at", "Missing data for required field."),
                               ("friend.email", "Not a valid email address."),
                               ("order.total", "must be a non-negative amount"),
                               ("order.currency", "must be an ISO 4217 code such as GBP")]


def test_errors_carry_the_index_of_each_event() -> None:
    events, errors = load_events([with_(), "nope", with_(id="")])
    assert len(events) == 1
    assert errors == [{"index": 1, "field": "$", "message": "an event is a JSON object"},
                      {"index": 2, "field": "id", "message": "Length must be between 1 and 128."}]


def test_the_workload_is_valid_and_kept_whole() -> None:
    stream = workload.build(100, seed=5).stream
    events, errors = load_events(stream)
    assert errors == [] and len(events) == len(stream)
    assert {e["type"] for e in events} <= set(TYPES)


def test_a_lone_surrogate_in_a_stored_field_is_refused() -> None:
    """Callers that parse no JSON themselves (feeds, the CLI) still never hand Lua a non-text string."""
    events, errors = load_events([with_(friend={"email": "cleo@example.com", "first_name": "Cl\ud800o"})])
    assert not events and errors == [{"index": 0, "field": "friend.first_name",
                                       "message": "holds a lone UTF-16 surrogate such as \\ud800, which is not text"}]
    events, errors = load_events([with_(unknown_top="\ud800")])  # ignored keys are not stored
    assert events and not errors
