"""Endpoints as data: the admin API, the secret shown once and stored encrypted, no way in."""
from __future__ import annotations

import json

import pytest
from standardwebhooks.webhooks import Webhook

from tests.feed.conftest import ADMIN, create


def test_create_shows_the_secret_once_and_stores_it_encrypted(client, redis_client) -> None:  # type: ignore[no-untyped-def]
    made = create(client, "http://127.0.0.1:9/hook", description="BI", event_types=["friend.converted"])
    secret = made["secret"]
    assert secret.startswith("whsec_")
    Webhook(secret)     # a valid Standard Webhooks secret
    assert made["event_types"] == ["friend.converted"] and made["disabled"] is False
    shown = client.get(f"/v1/endpoints/{made['id']}", headers=ADMIN).get_json()
    listed = client.get("/v1/endpoints", headers=ADMIN).get_json()["endpoints"]
    assert "secret" not in shown and [e["id"] for e in listed] == [made["id"]] and "secret" not in listed[0]
    dump = b" ".join(v for k in redis_client.keys("*") if redis_client.type(k) == b"hash"
                     for v in redis_client.hvals(k))
    assert secret.encode() not in dump and secret.removeprefix("whsec_").encode() not in dump


def test_defaults_and_validation_name_the_field(client) -> None:  # type: ignore[no-untyped-def]
    made = create(client, "http://127.0.0.1:9/hook")
    assert "referrer.totals_changed" in made["event_types"] and "sync.failed" in made["event_types"]
    cases = [({"url": "ftp://x.example/"}, "url"), ({"url": "http://127.0.0.1/", "event_types": ["nope"]}, "event_types"),
             ({"url": "http://127.0.0.1/", "batch": {"max_events": 0}}, "batch.max_events"),
             ({"url": "http://127.0.0.1/", "max_in_flight": 99}, "max_in_flight"),
             ({"url": "http://127.0.0.1/", "colour": "red"}, "colour")]
    for body, field in cases:
        response = client.post("/v1/endpoints", json=body, headers=ADMIN)
        assert response.status_code == 422, body
        assert response.get_json()["error"]["details"][0]["field"] == field
    assert client.post("/v1/endpoints", json={"url": "http://127.0.0.1/"}).status_code == 401
    assert client.post("/v1/endpoints", json={"url": "http://127.0.0.1/"},
                       headers={"Authorization": "Bearer ops-token"}).status_code == 403
    assert client.get("/v1/endpoints/ep_missing", headers=ADMIN).status_code == 404


def test_without_a_secret_key_nothing_is_created(feed_app, client) -> None:  # type: ignore[no-untyped-def]
    feed_app.config["HUB"]["SECRET_KEY"] = ""
    response = client.post("/v1/endpoints", json={"url": "http://127.0.0.1/"}, headers=ADMIN)
    assert response.status_code == 503 and "HUB_SECRET_KEY" in response.get_json()["error"]["message"]
    assert client.get("/v1/endpoints", headers=ADMIN).get_json()["endpoints"] == []


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/", "http://10.1.2.3/", "http://192.168.0.10/",
                                 "http://169.254.169.254/latest/meta-data/", "http://[::1]/", "http://100.100.100.200/",
                                 "http://internal.example/"])
def test_private_addresses_are_refused_without_the_allowlist(feed_app, client, url) -> None:  # type: ignore[no-untyped-def]
    feed_app.config["HUB"].update(FEED_ALLOW="", FEED_RESOLVE="internal.example=10.0.0.7")
    response = client.post("/v1/endpoints", json={"url": url}, headers=ADMIN)
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["details"][0]["field"] == "url" and "address" in error["message"]


def test_the_allowlist_and_public_addresses_pass(feed_app, client) -> None:  # type: ignore[no-untyped-def]
    feed_app.config["HUB"].update(FEED_ALLOW="10.0.0.0/8 onprem.example",
                                  FEED_RESOLVE="bi.example=93.184.216.34,onprem.example=192.168.1.1")
    for url in ("http://10.1.2.3/", "https://bi.example/in", "http://onprem.example/"):
        assert client.post("/v1/endpoints", json={"url": url}, headers=ADMIN).status_code == 201, url
    refused = client.post("/v1/endpoints", json={"url": "http://172.16.0.1/"}, headers=ADMIN)
    assert refused.status_code == 422


def test_update_disable_enable_delete(client, redis_client) -> None:  # type: ignore[no-untyped-def]
    made = create(client, "http://127.0.0.1:9/hook")
    path = f"/v1/endpoints/{made['id']}"
    changed = client.patch(path, json={"description": "warehouse", "batch": {"max_events": 50, "max_seconds": 2}},
                           headers=ADMIN).get_json()
    assert changed["description"] == "warehouse" and changed["batch"] == {"max_events": 50, "max_seconds": 2.0}
    assert client.patch(path, json={"url": "http://10.0.0.1/"}, headers=ADMIN).status_code == 422  # private on update too
    off = client.post(f"{path}/disable", json={"reason": "receiver migration"}, headers=ADMIN).get_json()
    assert off["disabled"] is True and off["disabled_reason"] == "receiver migration"
    on = client.post(f"{path}/enable", headers=ADMIN).get_json()
    assert on["disabled"] is False and on["disabled_reason"] is None
    assert client.delete(path, headers=ADMIN).get_json() == {"id": made["id"], "deleted": True}
    assert client.get(path, headers=ADMIN).status_code == 404
    assert not redis_client.hget("hub:feed:secrets", made["id"])


def test_rotation_signs_with_both_secrets_during_the_overlap(client, receivers, feed_app) -> None:  # type: ignore[no-untyped-def]
    receiver = receivers()
    made = create(client, receiver.url)
    rotated = client.post(f"/v1/endpoints/{made['id']}/rotate-secret", json={"overlap_seconds": 3600},
                          headers=ADMIN).get_json()
    assert rotated["secret"] != made["secret"] and rotated["previous_valid_until"]
    receiver.secrets = [made["secret"], rotated["secret"]]
    sent = client.post(f"/v1/endpoints/{made['id']}/test", headers=ADMIN).get_json()
    assert sent["delivered"] is True
    assert receiver.requests[-1]["verified"] == [0, 1] and len(receiver.requests[-1]["signatures"]) == 2
    again = client.post(f"/v1/endpoints/{made['id']}/rotate-secret", json={"overlap_seconds": 0}, headers=ADMIN).get_json()
    receiver.secrets = [made["secret"], rotated["secret"], again["secret"]]
    client.post(f"/v1/endpoints/{made['id']}/test", headers=ADMIN)
    assert receiver.requests[-1]["verified"] == [2] and len(receiver.requests[-1]["signatures"]) == 1
    attempts = client.get(f"/v1/endpoints/{made['id']}/attempts", headers=ADMIN).get_json()["attempts"]
    assert [a["status"] for a in attempts] == [200, 200] and attempts[0]["answer"] == "answer 200"
    text = json.dumps(attempts)
    assert all(s.removeprefix("whsec_") not in text for s in (made["secret"], rotated["secret"], again["secret"]))
