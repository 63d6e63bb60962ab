from __future__ import annotations

import time
from typing import Any, Callable, Iterator

import pytest
from cryptography.fernet import Fernet

from hub.core.delivery import Dispatcher
from tests.feed.receiver import Receiver
from tests.story import story

SECRET_KEY = Fernet.generate_key().decode()
ADMIN = {"Authorization": "Bearer admin-token"}
INGEST = {"Authorization": "Bearer ingest-token"}
FAST = {"SECRET_KEY": SECRET_KEY, "FEED_ALLOW": "127.0.0.0/8", "FEED_RETRY_SCHEDULE": "0.05",
        "FEED_RETRY_JITTER": 0.0}


@pytest.fixture
def feed_app(make_app):  # type: ignore[no-untyped-def]
    app = make_app(**FAST)
    yield app
    app.extensions["redis"].connection_pool.disconnect()


@pytest.fixture
def client(feed_app):  # type: ignore[no-untyped-def]
    return feed_app.test_client()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def build(secrets: list[str] | None = None) -> Receiver:
        made.append(Receiver(secrets))
        return made[-1]
    yield build
    for receiver in made:
        receiver.stop()


def create(client: Any, url: str, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/endpoints", json={"url": url, **fields}, headers=ADMIN)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def post_story(client: Any, events: list[dict[str, Any]] | None = None) -> None:
    response = client.post("/v1/events", json={"events": events or story()}, headers=INGEST)
    assert response.status_code == 202, response.get_json()


class Driver:
    """Runs the feed's dispatcher in this process, step by step, until a condition holds."""

    def __init__(self, app: Any, resolver: Any = None) -> None:
        self.app = app
        self.dispatcher = Dispatcher(app.extensions["redis"], app.config["HUB"], resolver)

    def until(self, check: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.app.app_context():
                self.dispatcher.step()
            result = check()
            if result:
                return result
            self.dispatcher.wait(0.02)
        raise AssertionError(f"timed out waiting for {what}")

    def close(self) -> None:
        self.dispatcher.close()


@pytest.fixture
def driver(feed_app) -> Iterator[Driver]:  # type: ignore[no-untyped-def]
    made = Driver(feed_app)
    yield made
    made.close()


def story_messages() -> int:
    """What the story becomes: 11 events, 9 of which change a referrer's totals, 3 carry consent."""
    return 11 + 9 + 3
