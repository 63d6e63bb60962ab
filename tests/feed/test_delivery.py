"""Delivery by the feed's dispatcher, run step by step in this process against real receivers:
signatures checked with `standardwebhooks`, answers chosen by the test."""
from __future__ import annotations

import json
import threading
from collections import Counter

from hub.core.ledger import contact_id
from tests.feed.conftest import ADMIN, create, post_story, story_messages
from tests.story import event, story


def test_every_message_is_signed_and_carries_the_contacts_state(client, receivers, driver) -> None:  # type: ignore[no-untyped-def]
    receiver = receivers()
    made = create(client, receiver.url)
    receiver.secrets = [made["secret"]]
    post_story(client)
    def stats() -> dict:  # type: ignore[type-arg]
        return client.get(f"/v1/endpoints/{made['id']}", headers=ADMIN).get_json()["stats"]  # type: ignore[no-any-return]

    # the receiver holds a message before the dispatcher has recorded its answer: wait for both
    driver.until(lambda: len(receiver.accepted()) >= story_messages() and stats()["sent"] >= story_messages(),
                 what="the story's messages, sent and recorded")
    messages = receiver.accepted()
    assert all(r["verified"] == [0] for r in receiver.requests)
    assert len(messages) == story_messages() and len({r["id"] for r in receiver.requests}) == story_messages()
    kinds = Counter(m["type"] for m in messages)
    assert kinds["referrer.totals_changed"] == 9 and kinds["list.membership_changed"] == 3
    assert kinds["friend.converted"] == 2 and kinds["reward.granted"] == 1
    reward = next(m for m in messages if m["type"] == "reward.granted")
    anna = reward["data"]["contacts"]["referrer"]
    assert reward["data"]["event"]["id"] == "evt_011"
    assert (anna["email"], anna["invites_sent"], anna["friends_converted"], anna["rewards_earned"]) == \
        ("anna@example.com", 2, 1, 1)
    assert anna["turnover"] == {"GBP": "59.90"}
    consent = [m for m in messages if m["type"] == "list.membership_changed"]
    assert {m["data"]["contacts"]["friend"]["email"]: m["data"]["contacts"]["friend"]["marketing_opt_in"]
            for m in consent} == {"cleo@example.com": True, "dan@example.com": False, "eve@example.com": True}
    shown = stats()
    assert shown["sent"] == story_messages() and shown["pending"] == 0 and shown["failed"] == 0
    text = client.get("/metrics").get_data(as_text=True)
    assert f'hub_feed_messages_total{{endpoint="{made["id"]}",outcome="sent"}} {story_messages()}.0' in text
    assert f'hub_feed_disabled{{endpoint="{made["id"]}"}} 0.0' in text
    assert f'hub_feed_pending{{endpoint="{made["id"]}"}} 0.0' in text


def test_only_the_types_an_endpoint_wants(client, receivers, driver) -> None:  # type: ignore[no-untyped-def]
    receiver = receivers()
    create(client, receiver.url, event_types=["friend.converted"])
    post_story(client)
    post_story(client)          # duplicates: the ledger accepts nothing, the feed sends nothing more
    driver.until(lambda: len(receiver.accepted()) >= 2, what="two conversions")
    for _ in range(20):
        driver.until(lambda: True)
    assert sorted(m["data"]["event"]["id"] for m in receiver.accepted()) == ["evt_008", "evt_010"]
    assert len(receiver.requests) == 2


def test_retries_keep_the_webhook_id_and_honour_retry_after(client, receivers, driver, redis_client) -> None:  # type: ignore[no-untyped-def]
    receiver = receivers()
    made = create(client, receiver.url, event_types=["friend.converted"], max_in_flight=1)
    receiver.secrets = [made["secret"]]
    receiver.answer = 500
    post_story(client)
    driver.until(lambda: len(receiver.requests) >= 3, what="three failed attempts")
    receiver.answer = (429, {"Retry-After": "3600"})
    count = len(receiver.requests)
    driver.until(lambda: len(receiver.requests) > count, what="a 429")
    attempts = client.get(f"/v1/endpoints/{made['id']}/attempts", headers=ADMIN).get_json()["attempts"]
    assert attempts[0]["status"] == 429 and attempts[0]["retry_in"] == 3600
    stats = client.get(f"/v1/endpoints/{made['id']}", headers=ADMIN).get_json()["stats"]
    assert stats["retry_at"] and stats["failing_since"] and stats["pending"] == 2
    # The lane waits as told; the test moves the pause to now instead of waiting an hour.
    count = len(receiver.requests)
    for _ in range(20):
        driver.until(lambda: True)
    assert len(receiver.requests) == count
    receiver.answer = 200
    redis_client.hset(f"hub:feed:state:{made['id']}", "blocked_until", 0)
    driver.until(lambda: len(receiver.accepted()) == 2, what="both conversions")
    failed_ids = {r["id"] for r in receiver.requests if r["status"] != 200}
    delivered_ids = {r["id"] for r in receiver.requests if r["status"] == 200}
    assert failed_ids <= delivered_ids and len(delivered_ids) == 2
    assert all(r["verified"] == [0] for r in receiver.requests)
    assert client.get(f"/v1/endpoints/{made['id']}", headers=ADMIN).get_json()["stats"]["failing_since"] is None


def test_gone_disables_the_endpoint(client, receivers, driver) -> None:  # type: ignore[no-untyped-def]
    receiver = receivers()
    made = create(client, receiver.url, event_types=["friend.converted"], max_in_flight=1)
    receiver.answer = 410
    post_story(client)
    shown = driver.until(lambda: (lambda e: e if e["disabled"] else None)(
        client.get(f"/v1/endpoints/{made['id']}", headers=ADMIN).get_json()), what="the endpoint disabled")
    assert shown["disabled_reason"] == "the receiver answered 410 Gone"
    for _ in range(10):
        driver.until(lambda: True)
    assert len(receiver.requests) == 1 and shown["stats"]["pending"] == 2


def test_auto_disable_after_continuous_failure_then_recovery(client, receivers, driver, redis_client, feed_app) -> None:  # type: ignore[no-untyped-def]
    feed_app.config["HUB"]["FEED_DISABLE_AFTER"] = 3600
    receiver = receivers()
    made = create(client, receiver.url, event_types=["friend.converted"], max_in_flight=1)
    path = f"/v1/endpoints/{made['id']}"
    receiver.answer = 503
    post_story(client)
    driver.until(lambda: len(receiver.requests) >= 3, what="failures")
    assert client.get(path, headers=ADMIN).get_json()["disabled"] is False      # not an hour yet
    # An hour of failure, without waiting one: the streak's start moves back.
    since = float(redis_client.hget(f"hub:feed:state:{made['id']}", "failing_since"))
    redis_client.hset(f"hub:feed:state:{made['id']}", "failing_since", since - 3601)
    shown = driver.until(lambda: (lambda e: e if e["disabled"] else None)(client.get(path, headers=ADMIN).get_json()),
                         what="auto-disable")
    assert shown["disabled_reason"].startswith("failing continuously since") and "503" in shown["disabled_reason"]
    assert client.get(f"{path}/attempts", headers=ADMIN).get_json()["attempts"][0]["note"].startswith("endpoint disabled")
    receiver.answer = 200
    client.post(f"{path}/enable", headers=ADMIN)
    driver.until(lambda: len(receiver.accepted()) == 2, what="delivery after re-enabling")
    notes = [a.get("note") for a in client.get(f"{path}/attempts", headers=ADMIN).get_json()["attempts"]]
    assert notes.count("endpoint recovered") == 1
    assert client.get(path, headers=ADMIN).get_json()["stats"]["recovered_at"]


def test_batch_mode_sends_the_same_messages_in_fewer_requests(client, receivers, driver) -> None:  # type: ignore[no-untyped-def]
    single, batched = receivers(), receivers()
    one = create(client, single.url)
    many = create(client, batched.url, batch={"max_events": 10, "max_seconds": 0})
    single.secrets, batched.secrets = [one["secret"]], [many["secret"]]
    post_story(client)
    driver.until(lambda: len(single.accepted()) == story_messages() and len(batched.accepted()) == story_messages(),
                 what="both endpoints")
    assert sorted(json.dumps(m, sort_keys=True) for m in single.accepted()) == \
        sorted(json.dumps(m, sort_keys=True) for m in batched.accepted())
    assert len(batched.requests) < len(single.requests) and all(len(r["messages"]) <= 10 for r in batched.requests)
    assert all(r["verified"] == [0] for r in batched.requests)


def test_replay_sends_exactly_the_chosen_messages_again(client, receivers, driver) -> None:  # type: ignore[no-untyped-def]
    receiver = receivers()
    made = create(client, receiver.url, event_types=["referral.invited", "friend.converted"])
    post_story(client)
    driver.until(lambda: len(receiver.accepted()) == 5, what="first delivery")
    first = {r["id"]: r["messages"][0] for r in receiver.requests}
    times = sorted(m["timestamp"] for m in first.values())
    conversions = [i for i, m in first.items() if m["type"] == "friend.converted"]
    replayed = client.post(f"/v1/endpoints/{made['id']}/replay", json={"message_ids": [conversions[0], "msg_nope"]},
                           headers=ADMIN).get_json()
    assert replayed["queued"] == 1 and replayed["not_found"] == ["msg_nope"]
    driver.until(lambda: len(receiver.requests) == 6, what="one replayed message")
    assert receiver.requests[-1]["id"] == conversions[0] and receiver.requests[-1]["messages"][0] == first[conversions[0]]
    ranged = client.post(f"/v1/endpoints/{made['id']}/replay", json={"since": times[0], "until": times[-1]},
                         headers=ADMIN).get_json()
    assert sorted(ranged["message_ids"]) == sorted(first)
    driver.until(lambda: len(receiver.requests) == 11, what="the range again")
    assert sorted(r["id"] for r in receiver.requests[6:]) == sorted(first)
    bad = client.post(f"/v1/endpoints/{made['id']}/replay", json={"since": "yesterday"}, headers=ADMIN)
    assert bad.status_code == 422 and bad.get_json()["error"]["details"][0]["field"] == "since"


def test_a_dead_endpoint_never_delays_another(client, receivers, driver) -> None:  # type: ignore[no-untyped-def]
    healthy, stuck = receivers(), receivers()
    release = threading.Event()
    inner = stuck.app

    def hang(environ, start_response):  # type: ignore[no-untyped-def]
        release.wait(120)
        return inner(environ, start_response)
    stuck.server.app = hang
    create(client, stuck.url, max_in_flight=2)
    create(client, healthy.url)
    post_story(client)
    driver.until(lambda: len(healthy.accepted()) == story_messages(), what="the healthy endpoint's messages")
    assert stuck.requests == []         # its two requests are still hanging, the rest wait in its lane
    release.set()
    driver.until(lambda: len(stuck.accepted()) == story_messages(), what="the slow endpoint catching up")


def test_dns_turning_private_is_refused_at_send_time(client, receivers, feed_app) -> None:  # type: ignore[no-untyped-def]
    from tests.feed.conftest import Driver

    answers = {"hooks.example": ["93.184.216.34"]}
    feed_app.extensions["services"].resolver = lambda host, port: answers[host]
    made = create(client, "http://hooks.example/in", event_types=["friend.converted"])
    answers["hooks.example"] = ["10.0.0.5"]
    post_story(client)
    driver = Driver(feed_app, feed_app.extensions["services"].resolver)
    try:
        attempts = driver.until(lambda: client.get(f"/v1/endpoints/{made['id']}/attempts", headers=ADMIN)
                                .get_json()["attempts"], what="an attempt")
    finally:
        driver.close()
    assert attempts[0]["status"] is None and attempts[0]["error"].startswith("refused: hooks.example resolves to a private")


def test_redirects_are_not_followed(client, receivers, driver) -> None:  # type: ignore[no-untyped-def]
    receiver, elsewhere = receivers(), receivers()
    made = create(client, receiver.url, event_types=["friend.converted"], max_in_flight=1)
    receiver.answer = (307, {"Location": elsewhere.url})
    post_story(client)
    attempts = driver.until(lambda: client.get(f"/v1/endpoints/{made['id']}/attempts", headers=ADMIN)
                            .get_json()["attempts"], what="an attempt")
    assert attempts[0]["status"] == 307 and attempts[0]["error"] == "redirects are not followed"
    assert elsewhere.requests == []


def test_erasure_removes_the_person_from_stored_messages(client, receivers, driver, redis_client) -> None:  # type: ignore[no-untyped-def]
    receiver = receivers()
    create(client, receiver.url)
    receiver.answer = 500       # keep messages queued too
    post_story(client)
    driver.until(lambda: redis_client.zcard("hub:feed:times") == story_messages(), what="messages stored")

    def mentions(text: str) -> list[bytes]:
        found = []
        for key in redis_client.scan_iter("hub:feed:*"):
            kind = redis_client.type(key)
            values = ([redis_client.get(key)] if kind == b"string" else redis_client.zrange(key, 0, -1) if kind == b"zset"
                      else redis_client.smembers(key) if kind == b"set" else redis_client.lrange(key, 0, -1)
                      if kind == b"list" else redis_client.hvals(key))
            found += [key for v in values if text.encode() in (v or b"")]
        return found
    assert mentions("cleo@example.com")
    assert client.post("/v1/contacts/cleo@example.com/erase", headers=ADMIN).status_code == 202
    driver.until(lambda: not mentions("cleo@example.com"), what="cleo gone from the feed's store")
    assert mentions("anna@example.com")         # the others stay
    cid = contact_id("cleo@example.com")
    receiver.answer = 200
    driver.until(lambda: any(m["type"] == "contact.erased" for m in receiver.accepted()), what="the erasure message")
    erased = next(m for m in receiver.accepted() if m["type"] == "contact.erased")
    assert erased["data"]["contacts"]["contact"] == {"contact_id": cid, "erased": True}
    driver.until(lambda: not mentions(cid), what="the erasure message dropped once delivered")


def test_a_new_event_after_an_endpoint_exists(client, receivers, driver) -> None:  # type: ignore[no-untyped-def]
    receiver = receivers()
    post_story(client)                          # before any endpoint: not part of its feed
    create(client, receiver.url)
    post_story(client, [event(50, "referral.invited", referrer={"email": "anna@example.com"})])
    driver.until(lambda: len(receiver.accepted()) == 2, what="the new event's two messages")
    assert {m["type"] for m in receiver.accepted()} == {"referral.invited", "referrer.totals_changed"}
    assert receiver.accepted()[0]["data"]["contacts"]["referrer"]["invites_sent"] == 3
    assert story()      # the story itself is untouched
