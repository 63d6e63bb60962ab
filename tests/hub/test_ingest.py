"""POST /v1/events: what a sender sees for every kind of request."""
from __future__ import annotations

import json
import time

from tests.conftest import INGEST_SECRET, signed_headers
from tests.story import event, story

BEARER = {"Authorization": "Bearer ingest-token"}


def post(client, payload, headers=None, raw: bytes | None = None):  # type: ignore[no-untyped-def]
    body = raw if raw is not None else json.dumps(payload).encode()
    return client.post("/v1/events", data=body, headers=headers or signed_headers(body))


def test_signed_batch_is_accepted_and_a_replay_counts_duplicates(make_app) -> None:
    client = make_app().test_client()
    first = post(client, {"events": story()})
    assert first.status_code == 202 and first.json == {"accepted": 11, "duplicates": 0}
    again = post(client, {"events": story()[:3]})
    assert again.json == {"accepted": 0, "duplicates": 3}


def test_one_event_with_a_bearer_token(make_app) -> None:
    client = make_app().test_client()
    response = client.post("/v1/events", json=story()[0], headers=BEARER)
    assert response.status_code == 202 and response.json["accepted"] == 1


def test_rotated_secrets_both_verify(make_app) -> None:
    old = "whsec_" + "b2xkLXNlY3JldC1vbGQtc2VjcmV0LW9sZC1zZWNyZXQ="
    client = make_app(INGEST_SECRETS=f"{INGEST_SECRET} {old}").test_client()
    body = json.dumps(story()[0]).encode()
    assert post(client, None, signed_headers(body, secret=old), raw=body).status_code == 202


def test_signature_failures_are_401_never_500(make_app) -> None:
    client = make_app().test_client()
    body = json.dumps(story()[0]).encode()
    good = signed_headers(body)
    cases = {
        "missing": {"Content-Type": "application/json"},
        "wrong secret": signed_headers(body, secret="whsec_" + "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZw=="),
        "stale": signed_headers(body, timestamp=int(time.time()) - 301),
        "future": signed_headers(body, timestamp=int(time.time()) + 301),
        "tampered body": {**good},
        "malformed signature": {**good, "webhook-signature": "garbage"},
        "malformed timestamp": {**good, "webhook-timestamp": "yesterday"},
        "bad bearer": {"Authorization": "Bearer nope", "Content-Type": "application/json"},
    }
    for name, headers in cases.items():
        raw = body.replace(b"anna", b"anne") if name == "tampered body" else body
        response = post(client, None, headers, raw=raw)
        assert response.status_code == 401, name
        assert response.json["error"]["code"] == "unauthorized", name


def test_422_names_the_event_index_and_field_path(make_app) -> None:
    client = make_app().test_client()
    events = story()[:2] + [event(99, "friend.converted", friend={"email": "not-an-email"},
                                  order={"id": "o", "total": "-3", "currency": "pounds"})]
    response = post(client, {"events": events})
    assert response.status_code == 422
    details = {(d["index"], d["field"]): d["message"] for d in response.json["error"]["details"]}
    assert details[(2, "friend.email")] == "Not a valid email address."
    assert details[(2, "order.total")] == "must be a non-negative amount"
    assert details[(2, "order.currency")] == "must be an ISO 4217 code such as GBP"
    assert all(index == 2 for index, _ in details)
    assert post(client, {"events": story()[:2]}).json == {"accepted": 2, "duplicates": 0}, "nothing was kept"


def test_type_specific_parts_are_required(make_app) -> None:
    client = make_app().test_client()
    response = post(client, {"events": [event(1, "reward.granted", referrer={"email": "a@b.co"})]})
    assert response.status_code == 422
    assert response.json["error"]["details"] == [{"index": 0, "field": "reward", "message": "required for reward.granted events"}]


def test_size_type_and_json_errors(make_app) -> None:
    client = make_app().test_client()
    too_many = {"events": [event(i, "referral.invited", referrer={"email": "a@b.co"}) for i in range(501)]}
    assert post(client, too_many).status_code == 413
    huge = json.dumps({"events": [], "pad": "x" * (1024 * 1024)}).encode()
    assert post(client, None, signed_headers(huge), raw=huge).status_code == 413
    form = client.post("/v1/events", data="a=b", headers={**BEARER, "Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415
    broken = client.post("/v1/events", data="{nope", headers={**BEARER, "Content-Type": "application/json"})
    assert broken.status_code == 400 and broken.json["error"]["code"] == "invalid_json"
    for payload in ([1, 2], "text", {"events": "x"}, {"events": []}, None):
        response = client.post("/v1/events", data=json.dumps(payload), headers={**BEARER, "Content-Type": "application/json"})
        assert response.status_code in (400, 422), payload


def test_redis_down_is_503_so_the_sender_retries(make_app) -> None:
    client = make_app(REDIS_URL="redis://127.0.0.1:1/0").test_client()
    response = post(client, {"events": story()[:1]})
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200


def test_one_event_is_one_redis_command_and_reaches_every_named_timeline(make_app, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The ledger step, the event counts, the flush flags, the contact index and the timelines of
    the people an event names are one script call: a request's only round trip once a flush is
    queued and the memory reading is fresh."""
    app = make_app(KLAVIYO_API_KEY="pk_x", KLAVIYO_BASE_URL="http://127.0.0.1:9/klaviyo",
                   MEMORY_CHECK_INTERVAL=3600)
    client = app.test_client()
    first, second = story()[0], story()[5]          # Anna enrols; her friend Cleo registers
    assert post(client, first).status_code == 202   # reads INFO memory, sets the flush flag, queues the flush
    redis = app.extensions["services"].redis
    sent: list[str] = []
    real = redis.execute_command

    def counted(*args, **kwargs):  # type: ignore[no-untyped-def]
        sent.append(str(args[0]))
        return real(*args, **kwargs)

    monkeypatch.setattr(redis, "execute_command", counted)
    monkeypatch.setattr(redis, "pipeline", lambda *a, **k: (_ for _ in ()).throw(AssertionError("a pipeline")))
    response = post(client, second)
    assert response.status_code == 202 and response.json == {"accepted": 1, "duplicates": 0}
    assert sent == ["EVALSHA"]
    monkeypatch.undo()
    with app.app_context():
        from hub.core import timeline

        anna, cleo = timeline.read(redis, "anna@example.com"), timeline.read(redis, "cleo@example.com")
    assert [(e["event"], e["as"]) for e in anna] == [("evt_006", "referrer"), ("evt_001", "referrer")]
    assert [(e["event"], e["as"], e["type"], e["source"]) for e in cleo] == [("evt_006", "friend", "friend.registered", "api")]
    assert {e.decode() for e in redis.zrange(timeline.INDEX, 0, -1)} == {"anna@example.com", "cleo@example.com"}


def test_a_duplicate_adds_nothing_to_a_timeline(make_app) -> None:  # type: ignore[no-untyped-def]
    app = make_app()
    client = app.test_client()
    assert post(client, {"events": story()[:6]}).json == {"accepted": 6, "duplicates": 0}
    again = post(client, {"events": story()[4:7]})      # two retries and one new event
    assert again.json == {"accepted": 1, "duplicates": 2}
    redis = app.extensions["services"].redis
    with app.app_context():
        from hub.core import timeline

        ben = [e["event"] for e in timeline.read(redis, "ben@example.com")]
        dan = [e["event"] for e in timeline.read(redis, "dan@example.com")]
    assert ben == ["evt_005", "evt_002"]
    assert dan == ["evt_007"]
