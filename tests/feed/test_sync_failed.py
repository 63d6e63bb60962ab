"""A push that failed for good reaches the feed as `sync.failed`, once, with the contacts' state."""
from __future__ import annotations

from hub.core import sync
from tests.feed.conftest import FAST, Driver, create
from tests.hub.test_ops import fault, no_inline_backoff, ops_app, post_story  # noqa: F401 - fixtures

__all__ = ["no_inline_backoff", "ops_app"]


def test_a_failed_sync_is_sent_once(ops_app, sandbox_server, receivers) -> None:  # type: ignore[no-untyped-def]
    app = ops_app(**FAST, FEED_FAILED_SCAN=0.01)
    client = app.test_client()
    receiver = receivers()
    made = create(client, receiver.url, event_types=["sync.failed"])
    receiver.secrets = [made["secret"]]
    post_story(app)
    fault(sandbox_server, "ometria", 400, body={"message": "Payload invalid"})
    with app.app_context():
        assert sync.flush("ometria")["fatal"]["status"] == 400
    driver = Driver(app)
    try:
        driver.until(lambda: receiver.accepted(), what="a sync.failed message")
        for _ in range(20):
            driver.until(lambda: True)
    finally:
        driver.close()
    [message] = receiver.accepted()
    assert receiver.requests[0]["verified"] == [0]
    failure = message["data"]["failed_sync"]
    assert (message["type"], failure["connector"], failure["status"], failure["message"]) == \
        ("sync.failed", "ometria", 400, "Payload invalid")
    assert sorted(message["data"]["contacts"]) == sorted(failure["contacts"]) and failure["contacts"]
    anna = message["data"]["contacts"]["anna@example.com"]
    assert anna["friends_converted"] == 1
    app.extensions["redis"].connection_pool.disconnect()
