"""Signed events in, Klaviyo state out: the hub, a worker and the sandbox as real processes."""
from __future__ import annotations

import time

import pytest

from tests.story import KLAVIYO, event, messy, story

pytestmark = pytest.mark.e2e


def matches(stack, expected) -> bool:  # type: ignore[no-untyped-def]
    for email, want in expected.items():
        held = stack.holds("klaviyo", email)
        if held is None or {k: held[k] for k in ("fields", "lists", "marketing_consent")} != want:
            return False
    return True


def test_story_lands_exactly_with_duplicates_and_reordering(stack_factory) -> None:  # type: ignore[no-untyped-def]
    stack = stack_factory()
    events = messy(story())
    for start in range(0, len(events), 4):
        response = stack.post(events[start:start + 4], msg_id=f"batch-{start}")
        assert response.status_code == 202, response.text
    again = stack.post(events[:4], msg_id="replay")
    assert again.json() == {"accepted": 0, "duplicates": 4}
    stack.wait_for(lambda: matches(stack, KLAVIYO), what="Klaviyo to hold the story")
    for email, want in KLAVIYO.items():
        held = stack.holds("klaviyo", email)
        assert {k: held[k] for k in ("fields", "lists", "marketing_consent")} == want, email

    # Erasure: the person goes at Klaviyo and nothing later brings them back.
    assert stack.post([event(40, "contact.erased", contact={"email": "dan@example.com"})], "erase").status_code == 202
    stack.wait_for(lambda: stack.holds("klaviyo", "dan@example.com")["deleted"], what="dan deleted")
    stack.post([event(41, "friend.registered", referrer={"email": "anna@example.com"},
                      friend={"email": "dan@example.com", "first_name": "Dan"}),
                event(42, "referral.invited", referrer={"email": "anna@example.com"})], "after-erase")
    stack.wait_for(lambda: stack.holds("klaviyo", "anna@example.com")["fields"]["referral_friends_invited"] == 3,
                   what="anna's next invite")
    assert stack.holds("klaviyo", "dan@example.com") == {
        "email": "dan@example.com", "fields": {}, "lists": [], "marketing_consent": None, "deleted": True}
    assert stack.holds("klaviyo", "anna@example.com")["fields"]["referral_friends_signed_up"] == 2


def test_worker_killed_mid_flush_loses_nothing(stack_factory) -> None:  # type: ignore[no-untyped-def]
    stack = stack_factory(latency=1.0)
    assert stack.post(story(), "story").status_code == 202
    stack.wait_for(lambda: stack.stats().get("klaviyo total", 0) >= 1, what="the first vendor call")
    stack.kill_worker()
    time.sleep(1.5)
    assert not matches(stack, KLAVIYO), "the kill landed mid-flush"
    stack.start_worker()
    stack.wait_for(lambda: matches(stack, KLAVIYO), timeout=90, what="the state to land after the restart")
