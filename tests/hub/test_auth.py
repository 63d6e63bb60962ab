"""Standard Webhooks signing: the specification's published test vector, and the hub's
signatures checked against the `standardwebhooks` package both ways."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from hub.core.auth import sign, verify_standard
from hub.core.errors import APIError

# The test vector of the Standard Webhooks specification (its reference libraries' `sign` test).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
SECRET = "whsec_" + "cmVmZXJyYWwtc3luYy1odWItYXV0aC10ZXN0LXNlY3JldA=="
TOLERANCE = 300


def headers(msg_id: str, stamp: int, signature: str) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": signature}


def test_the_hub_signs_the_published_vector() -> None:
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_the_hub_accepts_the_published_vector_and_refuses_it_altered() -> None:
    signed = headers(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE)
    verify_standard([VECTOR_SECRET], signed, VECTOR_BODY, TOLERANCE, now=VECTOR_TIMESTAMP)
    for name, body, sent in (("body", b'{"test": 2432232315}', signed),
                             ("id", VECTOR_BODY, {**signed, "webhook-id": VECTOR_ID + "x"}),
                             ("timestamp", VECTOR_BODY, {**signed, "webhook-timestamp": str(VECTOR_TIMESTAMP + 1)})):
        with pytest.raises(APIError) as refused:
            verify_standard([VECTOR_SECRET], sent, body, TOLERANCE, now=VECTOR_TIMESTAMP)
        assert refused.value.status == 401, name


def test_the_package_verifies_what_the_hub_signs() -> None:
    body, stamp = b'{"id":"evt_1","type":"referral.invited"}', int(time.time())
    sent = headers("msg_hub", stamp, sign(SECRET, "msg_hub", stamp, body))
    assert Webhook(SECRET).verify(body, sent) == {"id": "evt_1", "type": "referral.invited"}
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body + b" ", sent)


def test_the_hub_verifies_what_the_package_signs() -> None:
    body, stamp = b'{"id":"evt_2","type":"friend.registered"}', 1_800_000_000
    signature = Webhook(SECRET).sign("msg_pkg", datetime.fromtimestamp(stamp, timezone.utc), body.decode())
    # Several signatures in the header, as during a rotation: one of them is the package's.
    offered = f"v1,{'A' * 43}= {signature}"
    verify_standard(["whsec_b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldA==", SECRET], headers("msg_pkg", stamp, offered),
                    body, TOLERANCE, now=stamp)
    with pytest.raises(APIError):
        verify_standard([SECRET], headers("msg_pkg", stamp, signature), body, TOLERANCE, now=stamp + TOLERANCE + 1)
