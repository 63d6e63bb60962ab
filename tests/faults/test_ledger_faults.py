"""A batch is all or nothing in the ledger too: the Lua step checks every bound before its first
write, so a refusal leaves Redis exactly as it was and a retry applies the batch whole."""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from tests.story import event

pytestmark = pytest.mark.faults

BEARER = {"Authorization": "Bearer ingest-token"}
ANNA, CLEO = "anna@example.com", "cleo@example.com"
INT64_MAX = 2**63 - 1
KLAVIYO = {"KLAVIYO_API_KEY": "pk_test", "KLAVIYO_BASE_URL": "http://127.0.0.1:9/klaviyo"}  # never called here


def post(client: Any, events: list[dict[str, Any]]) -> Any:
    return client.post("/v1/events", json={"events": events}, headers=BEARER)


def snapshot(redis: Any) -> dict[bytes, bytes]:
    """Every key's serialized value, metrics aside (a refusal is counted there on purpose)."""
    return {k: redis.dump(k) for k in sorted(redis.scan_iter()) if not k.startswith(b"hub:m:")}


def conversion(n: int, order_id: str, total: str, friend: str = CLEO) -> dict[str, Any]:
    return event(n, "friend.converted", referrer={"email": ANNA}, friend={"email": friend},
                 order={"id": order_id, "total": total, "currency": "GBP"})


def batch() -> list[dict[str, Any]]:
    return [event(1, "friend.registered", referrer={"email": ANNA}, friend={"email": CLEO}),
            conversion(2, "ord_1", "59.90"),
            event(3, "referral.invited", referrer={"email": ANNA})]


def state(app: Any, email: str) -> dict[str, Any] | None:
    with app.app_context():
        from hub.core.ledger import get_ledger

        return get_ledger().state(email)


def test_an_amount_over_the_cap_is_a_422_naming_the_field_and_nothing_is_written(make_app, redis_client) -> None:
    client = make_app().test_client()
    events = batch()
    events[1]["order"]["total"] = "1e20"
    before = snapshot(redis_client)
    response = post(client, events)
    assert response.status_code == 422
    assert {"index": 1, "field": "order.total"} in [{k: d[k] for k in ("index", "field")}
                                                    for d in response.json["error"]["details"]]
    assert snapshot(redis_client) == before


def test_a_total_that_would_overflow_refuses_the_whole_batch_and_a_retry_applies_it_whole(
        make_app, redis_client) -> None:
    app = make_app(**KLAVIYO)  # one enabled connector, so touched contacts are marked dirty
    client = app.test_client()
    # Anna's stored turnover sits just under the 64-bit limit: crediting Cleo's order would pass it.
    redis_client.hset(f"hub:c:{ANNA}", mapping={"email": ANNA, "is_referrer": "1",
                                                 "turnover:GBP": str(INT64_MAX - 100)})
    before = snapshot(redis_client)
    response = post(client, batch())
    assert response.status_code == 422, response.json
    assert response.json["error"]["details"] == [
        {"index": 1, "field": "order.total",
         "message": "the referrer's turnover:GBP would pass the ledger's 64-bit limit; nothing was applied"}]
    assert snapshot(redis_client) == before  # no event id seen, no contact touched, nothing logged
    assert post(client, batch()).status_code == 422  # a plain retry is refused again, never "duplicates"

    redis_client.hset(f"hub:c:{ANNA}", "turnover:GBP", "0")  # the bad total repaired, the sender retries
    retry = post(client, batch())
    assert retry.status_code == 202 and retry.json == {"accepted": 3, "duplicates": 0}
    anna, cleo = state(app, ANNA), state(app, CLEO)
    assert anna and cleo
    assert anna["turnover"] == {"GBP": Decimal("59.90")}
    assert (anna["friends_registered"], anna["friends_converted"], anna["invites_sent"]) == (1, 1, 1)
    assert cleo["referred_by"] == ANNA and cleo["first_order_total"] == Decimal("59.90")
    dirty = {m.decode() for m in redis_client.zrange("hub:dirty:klaviyo", 0, -1)}
    assert dirty == {ANNA, CLEO}
    assert redis_client.xlen("hub:events") == 3


def test_two_orders_that_overflow_only_together_name_the_second(make_app, redis_client) -> None:
    client = make_app().test_client()
    cap = "100000000000"  # schemas.MAX_AMOUNT: each order alone is valid
    # Room for one maximal order (10^15 ten-thousandths) under the step's limit, not for two.
    redis_client.hset(f"hub:c:{ANNA}", mapping={"email": ANNA, "turnover:GBP": str(9_200_000_000_000_000_000 - 1_500_000_000_000_000)})
    before = snapshot(redis_client)
    events = [event(1, "friend.registered", referrer={"email": ANNA}, friend={"email": CLEO}),
              conversion(2, "ord_1", cap), conversion(3, "ord_2", cap)]
    response = post(client, events)
    assert response.status_code == 422
    assert [(d["index"], d["field"]) for d in response.json["error"]["details"]] == [(2, "order.total")]
    assert snapshot(redis_client) == before
    ok = post(client, events[:2])
    assert ok.status_code == 202 and ok.json == {"accepted": 2, "duplicates": 0}
    total = int(redis_client.hget(f"hub:c:{ANNA}", "turnover:GBP"))
    assert total == 9_200_000_000_000_000_000 - 1_500_000_000_000_000 + 10**15


def test_a_refusal_late_in_a_large_batch_writes_none_of_the_earlier_events(make_app, redis_client) -> None:
    """More events than one script call used to take (100): the whole request is one step."""
    client = make_app().test_client()
    redis_client.hset(f"hub:c:{ANNA}", "turnover:GBP", str(INT64_MAX))
    events = [event(i, "referrer.enrolled", referrer={"email": f"r{i}@example.com"}) for i in range(1, 300)]
    events.append(event(300, "friend.registered", referrer={"email": ANNA}, friend={"email": CLEO}))
    events.append(conversion(301, "ord_1", "1.00"))
    before = snapshot(redis_client)
    response = post(client, events)
    assert response.status_code == 422
    assert response.json["error"]["details"][0]["index"] == 300
    assert snapshot(redis_client) == before


def test_the_step_fails_on_purpose_and_writes_nothing(make_app, redis_client) -> None:
    """The step itself, handed a malformed operation or a stored counter that is not an integer
    (both made on purpose), refuses before its first write; the same batch then applies whole."""
    app = make_app()
    with app.app_context():
        from hub.core.ledger import get_ledger, operation
        from hub.core.schemas import load_events

        ledger = get_ledger()
        events, errors = load_events(batch())
        assert not errors
        ops = [operation(e, ["klaviyo"], app.config["HUB"]) for e in events]
        for op in ops:
            op["log"] = json.dumps(op)
        meta = json.dumps({"metrics": "hub:m:events", "flags": [], "ttl": 60})
        before = snapshot(redis_client)

        bad = json.loads(json.dumps(ops))
        bad[2]["order"] = {"id": "ord_x", "amount": "12x", "currency": "GBP"}  # an argument no caller builds
        answer = ledger.script(args=[json.dumps(bad), ledger.prefix, meta])
        assert answer[2][0] == 3 and answer[2][1] == b"order.total"
        assert snapshot(redis_client) == before

        redis_client.hset(f"hub:c:{ANNA}", "friends_registered", "many")  # a counter HINCRBY cannot add to
        before = snapshot(redis_client)
        answer = ledger.script(args=[json.dumps(ops), ledger.prefix, meta])
        assert answer[2][0] == 1 and b"not an integer" in answer[2][2]
        assert snapshot(redis_client) == before

        redis_client.hset(f"hub:c:{ANNA}", "friends_registered", "0")
        done, _ = ledger.script(args=[json.dumps(ops), ledger.prefix, meta])
        assert done == [1, 1, 1]
    anna = state(app, ANNA)
    assert anna and anna["invites_sent"] == 1 and anna["turnover"] == {"GBP": Decimal("59.90")}
