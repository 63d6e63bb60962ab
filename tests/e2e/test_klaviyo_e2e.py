"""Signed events in, Klaviyo state out: the hub, a worker and the sandbox as real processes."""
from __future__ import annotations

import pytest
import requests

from tests.story import KLAVIYO, event, messy, story

pytestmark = pytest.mark.e2e
OPS = {"Authorization": "Bearer ops-token"}
ADMIN = {"Authorization": "Bearer admin-token"}


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
    # short sweep settings: after a whole-tree kill, the dead worker's RQ scheduler lock outlives it
    # and the sweep is what moves the flush that waits on the dead flush's lease
    stack = stack_factory(latency=1.0, env={"HUB_SWEEP_INTERVAL": "2", "HUB_SWEEP_GRACE": "2"})
    assert stack.post(story(), "story").status_code == 202
    stack.wait_for(lambda: stack.stats().get("klaviyo total", 0) >= 1, what="the first vendor call")
    stack.kill_worker()
    stack.wait_for(lambda: requests.get(f"{stack.sandbox}/_sandbox/in-flight", timeout=5).json()["calls"] == 0,
                   what="the killed worker's calls to land at the sandbox")
    assert not matches(stack, KLAVIYO), "the kill landed mid-flush"
    stack.start_worker()
    stack.wait_for(lambda: matches(stack, KLAVIYO), timeout=90, what="the state to land after the restart")


def control(stack, path: str, body: dict) -> None:  # type: ignore[no-untyped-def, type-arg]
    requests.post(f"{stack.sandbox}/_sandbox/klaviyo/{path}", json=body, timeout=5).raise_for_status()


def failed_syncs(stack) -> list:  # type: ignore[no-untyped-def, type-arg]
    return requests.get(f"{stack.hub}/v1/failed", headers=OPS, timeout=10).json()["failed"]


def test_import_jobs_still_processing_are_seen_through(stack_factory) -> None:  # type: ignore[no-untyped-def]
    stack = stack_factory()
    control(stack, "jobs", {"processing_polls": 2})
    assert stack.post(story(), "story").status_code == 202
    stack.wait_for(lambda: matches(stack, KLAVIYO), timeout=90, what="the story, once the import jobs completed")
    stats = stack.stats()
    jobs = stats["klaviyo POST bulk-import"]
    # Each job was read until it completed: once at once, then by the scheduled checks.
    assert stats["klaviyo GET bulk-import"] >= 3 * jobs
    assert failed_syncs(stack) == []


def test_a_person_who_unsubscribed_in_klaviyo_is_never_subscribed_by_the_hub(stack_factory) -> None:  # type: ignore[no-untyped-def]
    stack = stack_factory()
    control(stack, "suppressions", {"email": "zoe@example.com", "reason": "UNSUBSCRIBE"})
    events = [event(n, "friend.registered", referrer={"email": "anna@example.com"},
                    friend={"email": email, "first_name": name, "marketing_opt_in": True})
              for n, email, name in ((60, "zoe@example.com", "Zoe"), (61, "yan@example.com", "Yan"))]
    assert stack.post(events, "opt-ins").status_code == 202
    stack.wait_for(lambda: (stack.holds("klaviyo", "yan@example.com") or {}).get("marketing_consent") is True
                   and (stack.holds("klaviyo", "zoe@example.com") or {}).get("fields", {}).get("first_name") == "Zoe",
                   what="both friends at Klaviyo")
    stack.wait_for(lambda: stack.stats().get("klaviyo total", 0) and not requests.get(
        f"{stack.hub}/v1/contacts/zoe@example.com", headers=OPS, timeout=10).json()["connectors"]["klaviyo"]["pending"],
        what="zoe's push to finish")
    zoe = stack.holds("klaviyo", "zoe@example.com")
    assert zoe["marketing_consent"] is False and "RfMkt1" not in zoe["lists"]
    assert requests.get(f"{stack.sandbox}/_sandbox/klaviyo/suppressions/zoe@example.com", timeout=5).json()[
        "suppression"][0]["reason"] == "UNSUBSCRIBE"


def test_a_marketing_list_added_to_the_mapping_is_membership_not_a_new_subscription(stack_factory) -> None:  # type: ignore[no-untyped-def]
    stack = stack_factory()
    assert stack.post(story(), "story").status_code == 202
    stack.wait_for(lambda: matches(stack, KLAVIYO), what="the story")
    # Cleo unsubscribes inside Klaviyo; the hub does not know.
    control(stack, "suppressions", {"email": "cleo@example.com", "reason": "UNSUBSCRIBE"})
    requests.delete(f"{stack.sandbox}/_sandbox/requests", timeout=5)
    current = requests.get(f"{stack.hub}/v1/mappings/klaviyo", headers=ADMIN, timeout=10)
    document = current.json()["document"]
    document["lists"].append({"id": "RfMkt2", "kind": "marketing", "when": "marketing_opt_in", "name": "Newsletter"})
    applied = requests.put(f"{stack.hub}/v1/mappings/klaviyo", json={"document": document},
                           headers={**ADMIN, "If-Match": current.headers["ETag"]}, timeout=30)
    assert applied.status_code == 200, applied.text
    stack.wait_for(lambda: all("RfMkt2" in (stack.holds("klaviyo", e) or {}).get("lists", [])
                               for e in ("cleo@example.com", "eve@example.com")), what="the new list's members")
    assert stack.holds("klaviyo", "cleo@example.com")["marketing_consent"] is False, "her unsubscribe stands"
    assert stack.holds("klaviyo", "eve@example.com")["marketing_consent"] is True
    sent = requests.get(f"{stack.sandbox}/_sandbox/requests", params={"vendor": "klaviyo"}, timeout=5).json()["requests"]
    assert not [r for r in sent if "subscription" in r["path"]], "no subscription job after a mapping change"
