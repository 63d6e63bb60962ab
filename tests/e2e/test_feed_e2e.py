"""The event feed end to end: the real hub, worker pool (with its feed process) and sandbox, two
real receivers checking every signature with the `standardwebhooks` package."""
from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Iterator

import pytest
from cryptography.fernet import Fernet

from tests.feed.receiver import Receiver
from tests.story import event, story

FEED_ENV = {"HUB_SECRET_KEY": Fernet.generate_key().decode(), "HUB_FEED_ALLOW": "127.0.0.0/8",
            "HUB_FEED_RETRY_SCHEDULE": "0.2,0.5", "HUB_FEED_RETRY_JITTER": "0"}


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made = [Receiver(), Receiver()]
    yield made
    for receiver in made:
        receiver.stop()


def invites(start: int, count: int) -> list[dict[str, Any]]:
    """`count` invitations by distinct referrers: two messages each (the event, the new totals)."""
    return [event(n, "referral.invited", referrer={"email": f"r{n}@example.com"}) for n in range(start, start + count)]


def feed_ready(stack: Any, redis_client: Any) -> None:
    """The sync point: the pool's feed process has started and holds the feed lease."""
    stack.wait_for(lambda: redis_client.exists("hub:lease:feed"), 120, "the feed process")


def endpoint(stack: Any, receiver: Receiver, **fields: Any) -> dict[str, Any]:
    response = stack.api("POST", "/v1/endpoints", {"url": receiver.url, **fields})
    assert response.status_code == 201, response.text
    made = response.json()
    receiver.secrets = [made["secret"]]
    return made


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def lags(receiver: Receiver) -> list[float]:
    """Seconds from the hub accepting each event to the receiver getting its message."""
    return [r["at"] - datetime.fromisoformat(m["timestamp"].replace("Z", "+00:00")).timestamp()
            for r in receiver.requests if r["status"] == 200 for m in r["messages"]]


def test_a_failing_endpoint_never_holds_back_a_healthy_one(stack_factory, receivers, redis_client) -> None:  # type: ignore[no-untyped-def]
    healthy, failing = receivers
    stack = stack_factory(env={**FEED_ENV, "HUB_FEED_ATTEMPTS_KEEP": "1000"})
    feed_ready(stack, redis_client)
    refused = stack.api("POST", "/v1/endpoints", {"url": "http://10.0.0.1/hook"})
    assert refused.status_code == 422 and refused.json()["error"]["details"][0]["field"] == "url"
    good = endpoint(stack, healthy)
    bad = endpoint(stack, failing)
    failing.answer = 500
    events = story() + invites(100, 100)
    expected = 23 + 200
    assert stack.post(events).status_code == 202
    healthy.wait_for(lambda _: len(healthy.accepted()) >= expected, 300, "every message at the healthy receiver")
    assert not failing.accepted() and failing.requests, "the failing receiver was tried and answered 500"
    healthy_lags = lags(healthy)
    print(f"\nhealthy receiver while the other endpoint fails: {len(healthy_lags)} messages, "
          f"p95 lag {p95(healthy_lags):.3f} s, max {max(healthy_lags):.3f} s")

    failing.answer = (429, {"Retry-After": "1"})
    failing.wait_for(lambda rs: any(r["status"] == 429 for r in rs), 60, "a 429")
    failing.answer = 200
    failing.wait_for(lambda _: len(failing.accepted()) >= expected, 300, "every message after recovery")

    for receiver in (healthy, failing):
        assert all(r["verified"] == [0] for r in receiver.requests), "each request verifies with its secret"
        assert all(r["id"] == r["messages"][0]["id"] for r in receiver.requests), "webhook-id is the message id"
        assert len({m["id"] for m in receiver.accepted()}) == expected
    tried = {r["id"] for r in failing.requests if r["status"] != 200}
    assert tried and tried <= {m["id"] for m in failing.accepted()}
    assert sorted(m["id"] for m in healthy.accepted()) == sorted({m["id"] for m in failing.accepted()})
    for made in (good, bad):
        stats = stack.wait_for(lambda: (lambda s: s if s["pending"] == 0 else None)(
            stack.api("GET", f"/v1/endpoints/{made['id']}").json()["stats"]), what="an empty lane")
        assert stats["sent"] >= expected and stats["failing_since"] is None
    attempts = stack.api("GET", f"/v1/endpoints/{bad['id']}/attempts?limit=1000").json()["attempts"]
    assert {a["status"] for a in attempts} >= {500, 429, 200}


def test_batch_mode_and_throughput_to_one_healthy_receiver(stack_factory, receivers, redis_client) -> None:  # type: ignore[no-untyped-def]
    single, batched = receivers
    stack = stack_factory(env=FEED_ENV)
    feed_ready(stack, redis_client)
    figures = {}
    for mode, receiver, fields, start in (("single", single, {}, 1000),
                                          ("batch", batched, {"batch": {"max_events": 100, "max_seconds": 0.5}}, 2000)):
        made = endpoint(stack, receiver, **fields)
        count = 500
        assert stack.post(invites(start, count)).status_code == 202
        receiver.wait_for(lambda _: len(receiver.accepted()) >= 2 * count, 300, f"{mode} delivery")
        times = [r["at"] for r in receiver.requests]
        figures[mode] = (2 * count, len(receiver.requests), (2 * count) / max(max(times) - min(times), 1e-3))
        stack.api("POST", f"/v1/endpoints/{made['id']}/disable")
        assert all(r["verified"] == [0] for r in receiver.requests)
    assert figures["batch"][1] < figures["batch"][0] == figures["single"][1]
    for mode, (messages, requests_, rate) in figures.items():
        print(f"\n{mode}: {messages} messages in {requests_} requests, {rate:.0f} messages/s")


def test_replay_a_range_to_one_endpoint(stack_factory, receivers, redis_client) -> None:  # type: ignore[no-untyped-def]
    receiver, other = receivers
    stack = stack_factory(env=FEED_ENV)
    feed_ready(stack, redis_client)
    made = endpoint(stack, receiver, event_types=["friend.converted"])
    endpoint(stack, other, event_types=["friend.converted"])
    assert stack.post(story()).status_code == 202
    receiver.wait_for(lambda _: len(receiver.accepted()) == 2, 60, "the conversions")
    other.wait_for(lambda _: len(other.accepted()) == 2, 60, "the conversions")
    first = receiver.accepted()
    stamps = sorted(m["timestamp"] for m in first)
    answer = stack.api("POST", f"/v1/endpoints/{made['id']}/replay", {"since": stamps[0], "until": stamps[-1]})
    assert answer.status_code == 202 and sorted(answer.json()["message_ids"]) == sorted(m["id"] for m in first)
    receiver.wait_for(lambda _: len(receiver.accepted()) == 4, 60, "the replay")
    assert sorted(m["id"] for m in receiver.accepted()[2:]) == sorted(m["id"] for m in first)
    assert sorted(receiver.accepted()[2:], key=lambda m: m["id"]) == sorted(first, key=lambda m: m["id"])
    assert len(other.requests) == 2     # the other endpoint was not replayed to
