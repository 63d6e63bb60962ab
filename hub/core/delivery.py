"""Delivering the event feed: one process, one queue with a lane per endpoint, a shared thread pool.

Each endpoint's lane (hub:feed:lane:<ep>) has its own in-flight cap and its own back-off, so a
slow or dead endpoint holds at most its cap of threads and never a place in front of another
endpoint's messages; vendor connectors and ingest run in other processes and never wait on it.
The process holds the `feed` lease, so however many worker pools run, one delivers.

Signing is Standard Webhooks (https://www.standardwebhooks.com/, "Signature scheme"):
`webhook-id` (the message id, the same on every attempt), `webhook-timestamp` (unix seconds of the
attempt), `webhook-signature` (`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, one per valid
secret, space separated).

What an answer means: 2xx delivered; 410 disables the endpoint; 429 and 503 with Retry-After pause
the lane that long; other 5xx, 408, 429, redirects (never followed), timeouts, refused connections
and addresses that turned private pause the lane on the retry schedule; any other 4xx retries that
message alone on the schedule. An endpoint failing without a success for HUB_FEED_DISABLE_AFTER
seconds is disabled, with the reason shown.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from typing import Any, Mapping

import requests

from hub.core import feed, netguard
from hub.core.auth import sign
from hub.core import services
from hub.core.endpoints import set_disabled, signing_secrets
from hub.core.endpointstore import all_endpoints, load
from hub.core.feed import lane_key, msg_key, setting, state_key
from hub.core import keys

log = logging.getLogger("hub.delivery")
DONE = ("for i = 2, #ARGV do local s = redis.call('ZSCORE', KEYS[1], ARGV[i]) "
        "if s and tonumber(s) <= tonumber(ARGV[1]) then redis.call('ZREM', KEYS[1], ARGV[i]) end end return 1")
LANE_TROUBLE = {408, 429, 500, 502, 503, 504}


def headers_for(secrets: list[str], msg_id: str, body: bytes, stamp: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if stamp is None else stamp
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp),
            "webhook-signature": " ".join(sign(s, msg_id, stamp, body) for s in secrets),
            "Content-Type": "application/json", "User-Agent": "referral-sync-hub-feed"}


def retry_after(value: str | None, cap: float) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), capped; None when absent."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), cap)


def post(config: Mapping[str, Any], url: str, headers: dict[str, str], body: bytes,
         resolver: netguard.Resolver | None) -> dict[str, Any]:
    """One request: the outcome as an attempt record (status None when no answer came)."""
    started = time.time()
    attempt: dict[str, Any] = {"at": feed.iso(started * 1000), "status": None, "latency": None, "answer": "", "error": None}
    try:
        netguard.check(url, config, resolver)
        with requests.post(url, data=body, headers=headers, timeout=setting(config, "FEED_TIMEOUT"),
                           allow_redirects=False, stream=True) as response:
            preview = response.raw.read(setting(config, "FEED_PREVIEW_BYTES"), decode_content=True) or b""
            attempt.update(status=response.status_code, answer=preview.decode("utf-8", "replace"),
                           retry_after=response.headers.get("Retry-After"))
            if 300 <= response.status_code < 400:
                attempt["error"] = "redirects are not followed"
    except netguard.UnsafeURL as exc:
        attempt["error"] = f"refused: {exc}"
    except requests.RequestException as exc:
        attempt["error"] = f"{type(exc).__name__}: no answer"
    attempt["latency"] = round(time.time() - started, 4)
    return attempt


def send_now(r: Any, config: Mapping[str, Any], endpoint: dict[str, Any], resolver: netguard.Resolver | None = None) -> dict[str, Any]:
    """A `hub.test` message to one endpoint, now, outside its lane (`hub endpoints send-test`)."""
    msg_id = "msg_test_" + hashlib.sha256(str(time.time()).encode()).hexdigest()[:16]
    body = json.dumps({"type": "hub.test", "timestamp": feed.iso(time.time() * 1000),
                       "data": {"endpoint": endpoint["id"]}}, separators=(",", ":")).encode()
    attempt = post(config, endpoint["url"], headers_for(signing_secrets(endpoint["id"], dict(config), r), msg_id, body),
                   body, resolver)
    attempt.update(message_ids=[msg_id], webhook_id=msg_id, test=True)
    feed.record_attempt(r, config, endpoint["id"], attempt)
    return {**attempt, "delivered": attempt["status"] is not None and 200 <= attempt["status"] < 300 and not attempt["error"]}


def send_test(endpoint_id: str) -> dict[str, Any]:
    """Send one `hub.test` message now and answer with the attempt (`/v1/endpoints/<id>/test`,
    `hub endpoints send-test`)."""
    core = services.current()
    return send_now(core.redis, core.config, load(endpoint_id), core.resolver)


class Dispatcher:
    """Builds messages from the event log and delivers each lane's due messages."""

    def __init__(self, r: Any, config: Mapping[str, Any], resolver: netguard.Resolver | None = None) -> None:
        self.r = r
        self.config = config
        self.resolver = resolver or netguard.configured_resolver(config)
        self.pool = ThreadPoolExecutor(max_workers=setting(config, "FEED_THREADS"), thread_name_prefix="feed")
        self.lock = threading.Lock()
        self.in_flight: dict[str, set[str]] = {}     # endpoint -> message ids being sent
        self.batches: dict[str, int] = {}            # endpoint -> requests in flight
        self.last_trim = 0.0
        self.last_failed_scan = 0.0
        self.wake = threading.Event()

    # -- the loop ---------------------------------------------------------------------------
    def step(self) -> int:
        """Build new messages, trim old ones now and then, start what is due; returns requests started."""
        endpoints = all_endpoints(self.r)
        feed.build_step(self.r, self.config, endpoints)
        scan = setting(self.config, "FEED_FAILED_SCAN")
        if scan and time.time() - self.last_failed_scan >= scan:
            feed.failed_step(self.r, self.config, endpoints)
            self.last_failed_scan = time.time()
        if time.time() - self.last_trim > 60:
            feed.trim(self.r, self.config, endpoints)
            self.last_trim = time.time()
        started = 0
        for endpoint in endpoints:
            if not endpoint["disabled"]:
                started += self.dispatch(endpoint)
        return started

    def dispatch(self, endpoint: dict[str, Any]) -> int:
        ep, now = endpoint["id"], time.time()
        blocked = self.r.hget(state_key(ep), "blocked_until")
        if blocked and float(blocked) > now:
            return 0
        with self.lock:
            busy = set(self.in_flight.get(ep, set()))
            free = endpoint["max_in_flight"] - self.batches.get(ep, 0)
        if free <= 0:
            return 0
        batch = endpoint.get("batch")
        size = batch["max_events"] if batch else 1
        due = [m.decode() for m in self.r.zrangebyscore(lane_key(ep), "-inf", now, start=0, num=free * size + len(busy))]
        due = [m for m in due if m not in busy]
        groups = [due[i:i + size] for i in range(0, len(due), size)][:free]
        if batch and groups and len(groups[-1]) < size:
            oldest = self.r.zscore(lane_key(ep), groups[-1][0]) or now
            if now - oldest < batch["max_seconds"]:
                groups.pop()          # a partial batch waits for more, up to max_seconds
        for group in groups:
            with self.lock:
                self.in_flight.setdefault(ep, set()).update(group)
                self.batches[ep] = self.batches.get(ep, 0) + 1
            self.pool.submit(self.deliver_safely, endpoint, group)
        return len(groups)

    def deliver_safely(self, endpoint: dict[str, Any], group: list[str]) -> None:
        try:
            self.deliver(endpoint, group)
        except Exception:       # a Redis hiccup must not kill the thread; the lane keeps the messages
            log.exception("delivery step failed", extra={"endpoint": endpoint["id"]})
        finally:
            with self.lock:
                self.in_flight[endpoint["id"]].difference_update(group)
                self.batches[endpoint["id"]] -= 1
            self.wake.set()

    # -- one request ------------------------------------------------------------------------
    def deliver(self, endpoint: dict[str, Any], group: list[str]) -> None:
        ep = endpoint["id"]
        bodies = self.r.mget([msg_key(m) for m in group])
        gone = [m for m, b in zip(group, bodies) if b is None]
        if gone:        # past the retention, or erased: nothing to send
            self.r.zrem(lane_key(ep), *gone)
        present = [(m, b) for m, b in zip(group, bodies) if b is not None]
        if not present:
            return
        ids = [m for m, _ in present]
        if endpoint.get("batch"):
            body = b"[" + b",".join(b for _, b in present) + b"]"
            webhook_id = "msg_batch_" + hashlib.sha256(" ".join(ids).encode()).hexdigest()[:20]
        else:
            body, webhook_id = present[0][1], ids[0]
        secrets = signing_secrets(ep, dict(self.config), self.r)
        started = time.time()
        attempt = post(self.config, endpoint["url"], headers_for(secrets, webhook_id, body), body, self.resolver)
        attempt.update(message_ids=ids, webhook_id=webhook_id)
        status = attempt["status"]
        if status is not None and 200 <= status < 300 and not attempt["error"]:
            self.succeeded(ep, ids, attempt, started)
        else:
            self.failed(endpoint, ids, attempt)
        feed.record_attempt(self.r, self.config, ep, attempt)

    def succeeded(self, ep: str, ids: list[str], attempt: dict[str, Any], started: float) -> None:
        now = time.time()
        accepted = self.r.zmscore(feed.TIMES, ids)
        lags = [round(now - a / 1000, 4) for a in accepted if a is not None]
        state = self.r.hgetall(state_key(ep))
        pipe = self.r.pipeline(transaction=True)
        # A message queued again (a replay) while this request ran stays queued.
        pipe.eval(DONE, 1, lane_key(ep), started, *ids)
        pipe.hdel(keys.FEED_TRIES.format(ep), *ids)
        pipe.hdel(state_key(ep), "blocked_until", "fails", "failing_since", "recovering")
        pipe.hincrby(state_key(ep), "sent", len(ids))
        pipe.hincrbyfloat(state_key(ep), "lat_sum", attempt["latency"])
        pipe.hincrby(state_key(ep), "lat_count", 1)
        pipe.hset(state_key(ep), "last_success", now)
        if lags:
            pipe.lpush(keys.FEED_LAGS.format(ep), *lags)
            pipe.ltrim(keys.FEED_LAGS.format(ep), 0, 9999)
        if state.get(b"recovering"):
            pipe.hset(state_key(ep), "recovered_at", now)
            attempt["note"] = "endpoint recovered"
        pipe.execute()
        feed.drop_delivered_erasures(self.r, ids, all_endpoints(self.r))

    def failed(self, endpoint: dict[str, Any], ids: list[str], attempt: dict[str, Any]) -> None:
        ep, now, status = endpoint["id"], time.time(), attempt["status"]
        pipe = self.r.pipeline(transaction=False)
        pipe.hincrby(state_key(ep), "failed", len(ids))
        pipe.hsetnx(state_key(ep), "failing_since", now)
        pipe.hincrby(state_key(ep), "fails", 1)
        _, _, fails = pipe.execute()
        if status == 410:
            reason = "the receiver answered 410 Gone"
            set_disabled(ep, True, reason, self.r)
            attempt["note"] = f"endpoint disabled: {reason}"
            return
        waited = retry_after(attempt.get("retry_after"), setting(self.config, "FEED_MAX_RETRY_AFTER")) \
            if status in (429, 503) else None
        if waited is not None:
            self.r.hset(state_key(ep), "blocked_until", now + waited)
            attempt["retry_in"] = round(waited, 3)
        elif status is None or status in LANE_TROUBLE or status >= 500 or 300 <= status < 400:
            delay = feed.retry_delay(self.config, int(fails))
            self.r.hset(state_key(ep), "blocked_until", now + delay)
            attempt["retry_in"] = round(delay, 3)
        else:       # the receiver refuses these messages: they retry on their own, the lane goes on
            pipe = self.r.pipeline(transaction=False)
            for m in ids:
                pipe.hincrby(keys.FEED_TRIES.format(ep), m, 1)
            tries = pipe.execute()
            delay = feed.retry_delay(self.config, max(tries))
            self.r.zadd(lane_key(ep), {m: now + delay for m in ids}, xx=True)
            attempt["retry_in"] = round(delay, 3)
        since = float(self.r.hget(state_key(ep), "failing_since") or now)
        limit = setting(self.config, "FEED_DISABLE_AFTER")
        if now - since >= limit:
            reason = (f"failing continuously since {feed.iso(since * 1000)} (over {limit:g} s); last answer: "
                      f"{status if status is not None else attempt['error']}")
            set_disabled(ep, True, reason, self.r)
            attempt["note"] = f"endpoint disabled: {reason}"

    def wait(self, seconds: float) -> None:
        self.wake.wait(seconds)
        self.wake.clear()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
