"""The worker's jobs: flush a connector's dirty contacts to its vendor, retry, record failures.

Jobs carry connector names and contact emails, never increments (state, not deltas): a job run
twice pushes the same absolute values twice, so RQ's at-least-once delivery is harmless.
"""
from __future__ import annotations

import logging

import hashlib
import json
import math
import random
import time
from datetime import datetime, timezone
from typing import Any

from rq import get_current_job
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, ScheduledJobRegistry
from rq.results import Result
from rq.serializers import JSONSerializer
from redis.exceptions import RedisError

from connectors import CONNECTORS, Connector, ContactUpdate
from connectors.errors import AuthError, FatalVendorError, RateLimited, RetriableVendorError, VendorError
from connectors.ratelimit import RateLimiter
from mappings import render

from hub.core import coalesce, history, jsontext, metrics, pushstate, timeline, vendorjobs
from hub.core.config import connector_settings, retry_schedule
from hub.core.ledger import dirty_key, erase_key, get_ledger
from hub.core.lease import Lease
from hub.core import mappingstore
from hub.core.mappingstore import current_mapping
from hub.core.repairs import close_repairs
from hub.core.tokens import RedisTokenStore
from hub.core.queue import FLAG, get_queues, queue_name

from hub.core.keys import ATTEMPTS, BACKOFF, LAST, LAST_OK, PAUSED, RETRY, SUSPECT  # noqa: F401 - names used by callers
from hub.core import jobnames, keys
from hub.core import services
log = logging.getLogger("hub")

# What a push leaves behind, settled in one step with the lease check, so a flush that lost its
# lease can never record a write as current. KEYS: lease, dirty, last, suspect, hub:ver, then the
# contact hash of each contact in ARGV's order. ARGV: token, now (whole seconds), the connector's
# field in the contact hash (hub/core/pushstate.py), then (email, version read, what was written:
# `<fingerprint> <consent> <lists>`, or '' when nothing landed) triples.
# Holder: record what landed and when in the contact's own hash (one entry per contact and
# connector: a success needs no `last` entry), and clear each contact's dirty mark (and suspect
# mark) unless the contact was touched since its state was read. A contact erased meanwhile gets
# nothing: its hash is not created again. Superseded: its writes may have landed after the
# current holder's, so each written contact is made due now, its version bumped (no flush that read
# it earlier can clear the mark: one that reads it afterwards writes last) and marked suspect with
# what it wrote (lists, consent), so that next push re-sends everything rather than a diff.
_SETTLE = pushstate.LUA + """
local held = redis.call('GET', KEYS[1]) == ARGV[1]
-- failures and suspect marks are rare: when their hash is absent, nothing to clear per contact
local any_last = redis.call('EXISTS', KEYS[3]) == 1
local any_suspect = redis.call('EXISTS', KEYS[4]) == 1
for i = 4, #ARGV, 3 do
  local email, version, pushed = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local contact = KEYS[5 + (i - 1) / 3]
  -- erased while the vendor answered: note nothing (the erase queue deletes them there)
  if redis.call('EXISTS', contact) == 0 then pushed = '' end
  if held then
    local current = (redis.call('HGET', KEYS[5], email) or '0') == version
    if pushed ~= '' then
      local fp, rest = string.match(pushed, '^(%S*) (.*)$')
      -- touched (or a resync asked for) since it was read: record what landed (lists, consent)
      -- but no fingerprint, so the next flush never takes it as the current state
      if not current then fp = '' end
      -- when it landed goes with it (the contact view's last push); `last` keeps only a failure
      -- noted since, so a success clears it
      redis.call('HSET', contact, ARGV[3], fp .. ' ' .. ARGV[2] .. ' ' .. rest)
      if any_last then redis.call('HDEL', KEYS[3], email) end
    end
    if current then
      redis.call('ZREM', KEYS[2], email)
      if any_suspect then redis.call('HDEL', KEYS[4], email) end
    end
  elseif pushed ~= '' then
    redis.call('HINCRBY', KEYS[5], email, 1)
    redis.call('ZADD', KEYS[2], 'LT', ARGV[2], email)
    local fp, consent, short = string.match(pushed, '^(%S*) (%S*) (.*)$')
    local merged = {}
    if short ~= '' then
      for id, kind in pairs(cjson.decode(short)) do merged[id] = pushed_kinds[kind] or kind end
    end
    local before = redis.call('HGET', KEYS[4], email)
    if before then
      for id, kind in pairs(cjson.decode(before).lists) do merged[id] = merged[id] or kind end
    end
    local wrote = {fp = fp, lists = merged, consent = cjson.null}
    if consent == '1' then wrote.consent = true elseif consent == '0' then wrote.consent = false end
    redis.call('HSET', KEYS[4], email, cjson.encode(wrote))
  end
end
if held then return 1 end
return 0
"""


class SyncFailed(Exception):
    """Raised by sync_contacts so RQ files the job in the FailedJobRegistry."""


class Superseded(Exception):
    """The flush lost its lease (it stalled past it, or its worker was written off): it must
    not call the vendor again, and what it already wrote is re-marked for the current holder."""


class FencedSession(metrics.CountingSession):
    """The session a flush gives its connector: before every vendor call, the flush's lease is
    checked (hub/core/lease.py `Lease.check`), and a holder that lost it makes no call at all.

    A flush sets `defer`: each call is then counted on the next round trip the flush makes to
    Redis anyway (`queue_counts`), not on one of its own, and the flush counts what is left when
    it ends."""

    def __init__(self, redis: Any, connector: str, lease: Lease | None) -> None:
        super().__init__(redis, connector)
        self.lease = lease
        self.defer = False
        self.pending: list[tuple[str, float]] = []      # (status, when) of calls not yet counted

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if self.lease is not None and not self.lease.check():
            raise Superseded(f"flush of {self.connector} lost its lease before {method} {url.split('?')[0]}")
        return super().request(method, url, *args, **kwargs)

    def count(self, status: str) -> None:
        if self.defer:
            self.pending.append((status, time.time()))
        else:
            super().count(status)

    def queue_counts(self, pipe: Any) -> None:
        """Queue the calls not yet counted on `pipe`."""
        for status, at in self.pending:
            metrics.queue_call(pipe, self.connector, status, at)
        self.pending = []

    def count_pending(self) -> None:
        """Count the calls not yet counted, in a round trip of their own (a metrics failure is
        logged and dropped, as every count is)."""
        if self.pending:
            try:
                pipe = self.redis.pipeline(transaction=False)
                self.queue_counts(pipe)
                pipe.execute()
            except RedisError as exc:
                log.warning("metrics not recorded: %s", type(exc).__name__)


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def redis() -> Any:
    return services.current().redis


def build_connector(name: str, lease: Lease | None = None, shared_token: bool = True) -> Connector:
    """The connector a job calls the vendor with: the shared rate limiter, a session fenced by the
    flush lease, and the access token every job shares (`shared_token=False`: its own login)."""
    settings = connector_settings(services.current().config, name)
    return CONNECTORS[name](settings, limiter=RateLimiter(redis(), keys.RATE_LIMIT),
                            session=FencedSession(redis(), name, lease),
                            tokens=RedisTokenStore(redis()) if shared_token else None)


def flush_lease(connector: str) -> Lease:
    """The connector's one writer: flushes and ops retries take it before calling the vendor."""
    return Lease(redis(), f"flush:{connector}", services.current().config["FLUSH_LEASE"])


SECRETISH = ("KEY", "SECRET", "TOKEN", "PASSWORD")


def scrub_secrets(text: str) -> str:
    """Vendors sometimes echo the credential they rejected; no configured secret may reach a
    failed job, a log line or an API answer."""
    config = services.current().config
    for key, value in config.items():
        if isinstance(value, str) and len(value) >= 6 and any(word in key for word in SECRETISH):
            for secret in value.replace(",", " ").split():
                if len(secret) >= 6:
                    text = text.replace(secret, "***")
    return text


def redirty(connector: str, emails: list[str]) -> None:
    """Put contacts back in the connector's dirty set (keeping an older first-dirty time)."""
    if emails:
        redis().zadd(dirty_key(connector), {e: time.time() for e in emails}, nx=True)


def note_outcome(connector: str, emails: list[str], ok: bool, error: VendorError | None = None) -> None:
    """Remember per contact when the connector was last tried and how it went (contact view)."""
    if not emails:
        return
    outcome: dict[str, Any] = {"at": time.time(), "ok": ok}
    if error is not None:
        outcome.update({"status": error.status, "code": error.code})
    redis().hset(LAST.format(connector), mapping={e: json.dumps(outcome) for e in emails})
    if not ok:
        timeline.failed(redis(), connector, emails, outcome.get("status"), outcome.get("code"))


def last_success(connector: str) -> str | None:
    """When a push to the connector last succeeded, as UTC ISO 8601 (None: never)."""
    value = redis().get(LAST_OK.format(connector))
    return datetime.fromtimestamp(float(value), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


FP_CHARS = pushstate.FP_CHARS
# json.dumps(..., sort_keys=True, default=str)'s text, by a writer built once (hub/core/jsontext.py):
# the fingerprints stored before stay valid.
_FP_JSON = jsontext.writer(sort_keys=True, default=str)


def fingerprint(rendered: dict[str, Any]) -> str:
    """What was rendered, short: one is kept per contact and connector (hub/core/pushstate.py).
    A store written before layout 5 held all 40 hex digits: plan() compares the first FP_CHARS."""
    text = _FP_JSON({"fields": rendered["fields"], "identity": rendered["identity"], "lists": rendered["lists"],
                     "marketing_consent": rendered["marketing_consent"]})
    return hashlib.sha1(text.encode()).hexdigest()[:FP_CHARS]


def settle(connector: str, lease: Lease, versions: dict[str, int], pushed: dict[str, str],
           mark_ok: bool = True) -> bool:
    """Record a push under the lease check (see _SETTLE); False when the flush was superseded.
    `mark_ok`: note the connector's last success here (a push notes it with its other writes)."""
    if not versions:
        return True
    pipe = redis().pipeline(transaction=False)
    queue_settle(pipe, connector, lease, versions, pushed)
    held = settled(connector, bool(pipe.execute()[0]), pushed)
    if held and pushed and mark_ok:
        redis().set(LAST_OK.format(connector), int(time.time()))
    return held


def queue_settle(pipe: Any, connector: str, lease: Lease, versions: dict[str, int], pushed: dict[str, str]) -> None:
    """Queue _SETTLE on `pipe`; its answer is 1 when the lease held (see `settled`)."""
    # now in whole seconds (the contact view shows no finer)
    args: list[Any] = [lease.token or "", int(time.time()), pushstate.field(connector)]
    for email, version in versions.items():
        args += [email, str(version), pushed.get(email, "")]
    names = [lease.key, dirty_key(connector), LAST.format(connector), SUSPECT.format(connector),
             keys.VERSIONS, *(keys.contact(email) for email in versions)]
    pipe.eval(_SETTLE, len(names), *names, *args)


def settled(connector: str, held: bool, pushed: dict[str, str]) -> bool:
    """_SETTLE's answer: whether the lease held."""
    if not held:
        log.warning("superseded flush: its writes re-marked for the current holder",
                    extra={"connector": connector, "contacts": len(pushed)})
    return held


def record_failure(connector: str, emails: list[str], error: VendorError, *, func: str = jobnames.SYNC_CONTACTS,
                   attempts: int = 1, first: str | None = None) -> str:
    """File a failed sync: an RQ failed job that, requeued, pushes the contacts' CURRENT state."""
    config = services.current().config
    emails = sorted(emails)
    message = scrub_secrets(error.message).strip()
    meta = {"connector": connector, "contacts": emails, "status": error.status, "code": error.code,
            "message": message, "retriable": error.retriable, "attempts": attempts,
            "first_attempt": first or now_iso(), "last_attempt": now_iso(), "retries": 0}
    job = Job.create(func, args=[connector, emails], connection=redis(), origin=queue_name(connector),
                     meta=meta, failure_ttl=config["FAILURE_TTL"], serializer=JSONSerializer,
                     description=f"{func.rsplit('.', 1)[1]} {connector}: {len(emails)} contact(s)",
                     status=JobStatus.FAILED)
    job.ended_at = datetime.now(timezone.utc)
    job.save()
    registry = FailedJobRegistry(queue=get_queues().get(connector))
    reason = f"{type(error).__name__}: HTTP {error.status or '-'}{f' {error.code}' if error.code else ''}: {message}"
    registry.add(job, ttl=config["FAILURE_TTL"], exc_string=reason)
    # What `rq info -v`, rq-dashboard and job.latest_result() show as the failure.
    Result.create_failure(job, config["FAILURE_TTL"], reason, worker_name="hub")
    if func != jobnames.ERASE_CONTACTS:  # an erased person keeps no per-connector outcome
        note_outcome(connector, emails, False, error)
    log.warning("sync failed", extra={"connector": connector, "contacts": len(emails),
                                                     "status": error.status, "code": error.code,
                                                     "failed_job": job.id, "attempts": attempts})
    return job.id


def record_failures(connector: str, failures: dict[str, VendorError]) -> list[str]:
    """File per-contact failures, one failed sync per distinct vendor error."""
    groups: dict[tuple[Any, ...], list[str]] = {}
    errors: dict[tuple[Any, ...], VendorError] = {}
    for email, error in failures.items():
        key = (error.status, error.code, error.message)
        groups.setdefault(key, []).append(email)
        errors.setdefault(key, error)
    return [record_failure(connector, sorted(emails), errors[key]) for key, emails in groups.items()]


def plan(connector: str, mapping: dict[str, Any], states: dict[str, dict[str, Any] | None],
         force: bool = False, read: PushRead | None = None) -> list[dict[str, Any]]:
    """What a sync would do for each contact, against what the hub last pushed: a list of
    {"email", "status", "rendered", "fingerprint", "update"} where status is "would_push",
    "unchanged" (the vendor already holds it), "unknown" (no state: erased or never seen) or
    "mapping_error". The sync and the admin preview both read it, so they cannot drift apart.
    `read`: what a push already read of these contacts (their pushed entries, suspect marks)."""
    emails = list(states)
    if read is not None:
        previous, suspect = read.pushed, read.suspect
    else:
        previous = pushstate.read(redis(), connector, emails)
        suspect = redis().hmget(SUSPECT.format(connector), emails) if emails else []
    out: list[dict[str, Any]] = []
    for email, before, doubt in zip(emails, previous, suspect):
        state = states[email]
        if state is None:
            out.append({"email": email, "status": "unknown"})
            continue
        rendered = render(mapping, state)
        entry: dict[str, Any] = {"email": email, "rendered": rendered}
        if rendered["errors"]:
            out.append(entry | {"status": "mapping_error"})
            continue
        print_ = fingerprint(rendered)
        last = pushstate.unpack(before)
        if last and last["fp"][:FP_CHARS] == print_ and not force and not doubt:
            out.append(entry | {"status": "unchanged"})
            continue
        lists, consent = (last["lists"], last["consent"]) if last else (None, None)
        if doubt:
            lists, consent = doubted(rendered, last, json.loads(doubt))
        out.append(entry | {"status": "would_push", "fingerprint": print_, "update": ContactUpdate(
            email=email, fields=rendered["fields"], lists=rendered["lists"], identity=rendered["identity"],
            marketing_consent=rendered["marketing_consent"], previous_lists=lists, previous_consent=consent)})
    return out


def doubted(rendered: dict[str, Any], last: dict[str, Any] | None,
            stale: dict[str, Any]) -> tuple[dict[str, str], bool | None]:
    """The `previous` to diff against when a superseded flush may have written last: every list
    either write held that the contact no longer belongs in (so each is left again), none it
    belongs in (so each is joined again), and consent as the opposite of now (so it is re-sent)."""
    held = {**stale.get("lists", {}), **((last or {}).get("lists") or {})}
    lists = {i: kind for i, kind in held.items() if i not in rendered["lists"]}
    consent = rendered["marketing_consent"]
    return lists, (None if consent is True else True if consent is False else (last or {}).get("consent"))


class PushRead:
    """Everything a push reads of its contacts before the vendor call, in one round trip (under
    load, when the ingest keeps Redis busy, each round trip waits behind the ledger's scripts):
    their versions first (so a change after this read leaves them dirty at settle), the
    connector's mapping, their contact hashes (state, `:since`, what was last pushed), their
    suspect marks and their last failed tries."""

    def __init__(self, connector: str, emails: list[str]) -> None:
        self.emails = emails
        pipe, n = redis().pipeline(transaction=False), len(emails)
        pipe.hmget(keys.VERSIONS, emails)
        pipe.get(keys.MAPPING_CURRENT.format(connector))
        for email in emails:
            pipe.hgetall(keys.contact(email))
        pipe.hmget(SUSPECT.format(connector), emails)
        pipe.hmget(LAST.format(connector), emails)
        if emails:
            answers = pipe.execute()
            versions, stored, rows = answers[0], answers[1], answers[2:2 + n]
            self.suspect, lasts = answers[2 + n], answers[3 + n]
        else:
            versions, stored, rows, self.suspect, lasts = [], redis().get(keys.MAPPING_CURRENT.format(connector)), [], [], []
        self.versions = {e: int(v or 0) for e, v in zip(emails, versions)}
        self.mapping = mappingstore.mapping_of(connector, stored)
        self.mapping_version = mappingstore.record_of(connector, stored).get("version")
        decoded = [{k.decode(): v.decode() for k, v in row.items()} for row in rows]
        self.states = get_ledger().states_of(emails, decoded)
        field = pushstate.field(connector)
        self.pushed = [row.get(field) for row in decoded]
        self.sinces = [row.get(":since") for row in decoded]
        self.lasts = lasts

    def since(self, emails: list[str]) -> dict[str, float]:
        """history.dirty_since for these contacts, from what was read."""
        at = {e: i for i, e in enumerate(self.emails)}
        picked = [at[e] for e in emails]
        return history.since_of(emails, [self.sinces[i] for i in picked], [self.pushed[i] for i in picked],
                                [self.lasts[i] for i in picked])


def updates_for(connector: str, emails: list[str], read: PushRead | None = None
                ) -> tuple[list[ContactUpdate], dict[str, str], list[str], dict[str, VendorError]]:
    """Render each contact; returns (updates, fingerprints, unchanged-or-gone, render failures)."""
    if read is not None:
        entries = plan(connector, read.mapping, read.states, read=read)
    else:
        entries = plan(connector, current_mapping(redis(), connector), get_ledger().states(emails))
    pushing = [e for e in entries if e["status"] == "would_push"]
    return ([e["update"] for e in pushing], {e["email"]: e["fingerprint"] for e in pushing},
            [e["email"] for e in entries if e["status"] in ("unchanged", "unknown")],
            {e["email"]: FatalVendorError("; ".join(e["rendered"]["errors"]), code="mapping_error")
             for e in entries if e["status"] == "mapping_error"})


def written(update: ContactUpdate, print_: str) -> str:
    """What the hub remembers of a push: the fingerprint, and the lists and consent it sent."""
    return pushstate.written(print_, update.lists, update.marketing_consent)


def push(connector: str, client: Connector, emails: list[str], lease: Lease) -> dict[str, VendorError]:
    """Push the contacts' current state; record what landed; return the per-contact failures.
    Raises Superseded when the lease was lost: before a vendor call, or after the push (then its
    writes are re-marked for the current holder)."""
    read = PushRead(connector, emails)
    versions = read.versions
    updates, prints, skip, failed = updates_for(connector, emails, read)
    held: set[str] = set()
    since = read.since([u.email for u in updates])  # for the freshness chart
    # One round trip for everything after the vendor call (under load each one waits behind the
    # ingest's scripts): the settle step, the push's metrics and its calls' counts, and for a
    # landed push the connector's last success, the freshness figures, the timeline entries and
    # whether audit repairs are waiting to be closed. What follows a landed push is true even
    # when the lease turns out lost: the vendor holds what was sent.
    pipe = redis().pipeline(transaction=False)
    if updates:
        started = time.perf_counter()
        try:
            result = client.push(updates)
        except Superseded:
            # Some calls may have landed before the lease was found lost: treat all as written.
            settle(connector, lease, {u.email: versions[u.email] for u in updates},
                   {u.email: written(u, "superseded") for u in updates})
            raise
        seconds = time.perf_counter() - started
        failed.update(result.failed)
        metrics.queue(pipe, metrics.push_ops(connector, seconds, len(updates) - len(result.failed), len(result.failed)))
        # Contacts in a vendor job still running: not landed; they leave the dirty set and wait there.
        held = vendorjobs.hold(connector, result.pending, versions, prints)
    landed = {u.email: written(u, prints[u.email]) for u in updates if u.email not in failed and u.email not in held}
    settling = {e: v for e, v in versions.items() if e not in failed}
    at: dict[str, int] = {}     # where each answer read below is in the pipeline's answers
    if settling:
        at["settle"] = len(pipe)
        queue_settle(pipe, connector, lease, settling, landed)
    if isinstance(client.session, FencedSession):
        client.session.queue_counts(pipe)
    entries = timeline.Pushed(connector, [u for u in updates if u.email in landed], read.mapping_version)
    if landed:
        pipe.set(LAST_OK.format(connector), int(time.time()))
        history.landed(pipe, connector, since, landed)
        at["repairs"] = len(pipe)
        pipe.get(keys.AUDIT_OPEN.format(connector))
        if entries.entries:
            at["timeline"] = len(pipe)
            entries.queue(pipe)
    answers = pipe.execute() if len(pipe) else []
    held_lease = settled(connector, bool(answers[at["settle"]]), landed) if settling else True
    if landed:
        if entries.entries:
            entries.done(redis(), answers[at["timeline"]])
        if held_lease and int(answers[at["repairs"]] or 0) > 0:
            close_repairs(redis(), connector, list(landed))   # repairs the anti-entropy audit queued have landed
    if not held_lease:
        raise Superseded(f"flush of {connector} lost its lease during a push")
    return failed


def erase_pending(connector: str, client: Connector, queued: list[bytes] | None = None) -> int:
    """Delete erased people at the vendor; forget what the hub pushed for them. `queued`: the
    head of the erase queue, when the caller read it already."""
    if queued is None:
        queued = redis().zrange(erase_key(connector), 0, client.max_batch - 1)
    emails = [e.decode() for e in queued]
    emails = [e for e in emails if e not in vendorjobs.waiting_among(connector, emails)]  # after their job
    if not emails:
        return 0
    result = client.erase(emails)
    for email, error in result.failed.items():
        record_failure(connector, [email], error, func=jobnames.ERASE_CONTACTS)
    pipe = redis().pipeline(transaction=False)
    pipe.zrem(erase_key(connector), *emails)
    pushstate.forget(pipe, connector, emails)   # the erasure took the contact hash; a vendor delete may not
    pipe.hdel(SUSPECT.format(connector), *emails)
    pipe.hdel(LAST.format(connector), *emails)  # a push that raced the erasure may have noted one
    pipe.execute()
    return len(emails)


def paused(connector: str) -> dict[str, Any] | None:
    value = redis().get(PAUSED.format(connector))
    return json.loads(value) if value else None


def pause(connector: str, reason: str, by: str = "ops") -> dict[str, Any]:
    """Stop pushing to a connector; its contacts stay dirty and wait for `resume`."""
    state = {"reason": scrub_secrets(reason), "by": by, "at": now_iso()}
    redis().set(PAUSED.format(connector), json.dumps(state))
    log.warning("connector paused", extra={"connector": connector, "reason": state["reason"], "by": by})
    return state


def resume(connector: str, actor: str | None = None) -> None:
    """Lift a pause and any back-off, reset the attempt counter, and flush what waited."""
    r = redis()
    r.delete(PAUSED.format(connector), BACKOFF.format(connector), ATTEMPTS.format(connector),
             f"{ATTEMPTS.format(connector)}:first")
    get_queues().kick([connector])
    log.warning("connector resumed", extra={"connector": connector, "by": actor})


def status(connector: str) -> dict[str, Any]:
    """What ops need at a glance: pause (and why), back-off, attempts, backlog."""
    r = redis()
    until = r.get(BACKOFF.format(connector))
    backing_off = float(until) if until and float(until) > time.time() else None
    return {"connector": connector, "paused": paused(connector),
            "backing_off_until": datetime.fromtimestamp(backing_off, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            if backing_off else None,
            "attempt": int(r.get(ATTEMPTS.format(connector)) or 0), "last_success": last_success(connector),
            "dirty": r.zcard(dirty_key(connector)), "erase_pending": r.zcard(erase_key(connector)),
            "queued": get_queues().get(connector).count,
            "failed": FailedJobRegistry(queue=get_queues().get(connector)).count}


def pause_for_auth(connector: str, error: VendorError) -> dict[str, Any]:
    """Credentials rejected: retrying cannot help and may lock the account, so pause and say why."""
    reason = f"credentials rejected by the vendor: HTTP {error.status} {error.code or ''} {error.message}"
    return pause(connector, " ".join(reason.split())[:300], by="hub")


def backing_off_until(connector: str) -> float | None:
    until = redis().get(BACKOFF.format(connector))
    return float(until) if until and float(until) > time.time() else None


def flush(connector: str) -> dict[str, Any]:
    """Push a connector's dirty contacts in batches until none are left or the budget is spent,
    under the connector's flush lease; whatever the outcome, a job is left for what remains."""
    r = redis()
    r.delete(FLAG.format(connector))
    if paused(connector):
        return {"paused": True}
    until = backing_off_until(connector)
    if until:
        rearm(connector, until)
        return {"backing_off_until": until}
    lease = flush_lease(connector)
    if not lease.acquire():
        return await_lease(connector, lease)
    try:
        return run_flush(connector, lease)
    finally:
        lease.release()
        follow_up(connector)


def await_lease(connector: str, lease: Lease) -> dict[str, Any]:
    """Another flush holds the lease (another pool, or a horse whose worker died). It takes what
    is dirty while it runs and leaves a job when it stops; in case it died instead, one flush is
    scheduled for when its lease runs out."""
    wait = lease.waiting_ms / 1000 + 0.5
    # One such flush at a time; the mark ends when it is due, so that flush may schedule the next.
    if redis().set(RETRY.format(connector), "1", nx=True, px=int(wait * 1000)):
        schedule_flush(connector, time.time() + wait, "after the lease")
    return {"leased": True, "retry_in": round(wait, 2)}


def rearm(connector: str, until: float) -> None:
    """A back-off must have its retry scheduled; re-arm it if it was lost (e.g. Redis restored)."""
    if not ScheduledJobRegistry(queue=get_queues().get(connector)).count:
        schedule_flush(connector, until)


def follow_up(connector: str) -> None:
    """Every exit path of a flush ends here: if contacts are still dirty (not yet due, refused
    for now, or touched during the flush), a job must exist that takes them when due."""
    r = redis()
    if paused(connector):
        return                          # resume queues the flush; the sweep leaves paused ones alone
    until = backing_off_until(connector)
    if until:
        rearm(connector, until)
    elif r.zcard(dirty_key(connector)) or r.zcard(erase_key(connector)):
        get_queues().kick([connector])


def run_flush(connector: str, lease: Lease) -> dict[str, Any]:
    """The flush proper, with the lease held: each outcome maps to one answer."""
    r, config = redis(), services.current().config
    if config["FLUSH_WINDOW"]:
        time.sleep(config["FLUSH_WINDOW"])
    client = build_connector(connector, lease)
    deadline = time.monotonic() + config["FLUSH_BUDGET"]
    freshness = coalesce.deadline_for(config, connector, client)
    batch: list[str] = []
    pushed = failed = 0
    session = client.session if isinstance(client.session, FencedSession) else None
    if session is not None:
        session.defer = True     # calls are counted on the flush's own round trips
    size = coalesce.batch_size(client)
    try:
        while True:
            if time.monotonic() > deadline:
                break                   # follow_up queues the next flush
            # One round trip for what each turn reads (under load each waits behind the
            # ingest's scripts): the pause, the erase queue's head and what the coalescing step
            # needs; the calls made since the last one are counted on it.
            now = time.time()
            pipe = r.pipeline(transaction=False)
            pipe.get(PAUSED.format(connector))
            pipe.zrange(erase_key(connector), 0, client.max_batch - 1)
            coalesce.queue_reads(pipe, connector, size, freshness, now)
            if session is not None:
                session.queue_counts(pipe)
            stopped, erasing, *reads = pipe.execute()[:4]
            if stopped:
                break
            if not lease.check():
                raise Superseded(f"flush of {connector} lost its lease")
            erased = erase_pending(connector, client, erasing)
            # Only contacts that are due, in full batches while a burst lasts (hub/core/coalesce.py);
            # when it says wait, wait instead of ending the job. An erasure took time: read again.
            step = coalesce.take(r, connector, size, freshness) if erased else \
                coalesce.take(r, connector, size, freshness, now=now, reads=(reads[0], reads[1]))
            batch = step.batch
            if not batch and not erased:
                if not step.wait:
                    break
                time.sleep(step.wait)
                continue
            if batch:
                done, refused, retriable = push_batch(connector, client, batch, lease)
                pushed += done
                failed += refused
                if retriable:
                    # Items the vendor refused for now (e.g. Splio per-item 5xx): they stay dirty
                    # and the connector backs off as if the whole call had failed.
                    batch = sorted(retriable)
                    raise next(iter(retriable.values()))
    except AuthError as exc:
        return {"paused": pause_for_auth(connector, exc)}
    except RetriableVendorError as exc:
        return back_off(connector, exc, batch)
    except FatalVendorError as exc:
        record_failure(connector, batch, exc)
        if batch:
            r.zrem(dirty_key(connector), *batch)
        return {"fatal": exc.as_dict()}
    except Superseded as exc:
        log.warning("flush superseded", extra={"connector": connector, "reason": str(exc)})
        return {"superseded": True, "pushed": pushed}
    except Exception as exc:
        # A fault of the hub's own (a bug, Redis gone): retried on the connector's back-off
        # schedule, so the contacts wait in plain sight instead of being stranded. RQ records it.
        log.exception("flush failed", extra={"connector": connector})
        back_off(connector, RetriableVendorError(f"{type(exc).__name__} in the hub", code="worker_error"), batch)
        raise
    finally:
        if session is not None:
            session.count_pending()
    r.delete(ATTEMPTS.format(connector), f"{ATTEMPTS.format(connector)}:first")
    return {"pushed": pushed, "failed": failed, "calls": client.calls}


def push_batch(connector: str, client: Connector, batch: list[str],
               lease: Lease) -> tuple[int, int, dict[str, VendorError]]:
    """One batch: push and file the fatal per-contact refusals; (landed, fatal, retriable)."""
    r, config = redis(), services.current().config
    failures = push(connector, client, batch, lease)
    retriable = {e: x for e, x in failures.items() if x.retriable}
    fatal = {e: x for e, x in failures.items() if not x.retriable}
    record_failures(connector, fatal)
    if fatal:
        r.zrem(dirty_key(connector), *fatal)
    if len(batch) < coalesce.batch_size(client) and config["FLUSH_WINDOW"] \
            and not coalesce.deadline_for(config, connector, client):
        # A partial batch: let more contacts come due so the next call carries more
        # (vendors whose calls are scarce set `flush_interval`). With a freshness deadline the
        # coalescing step (hub/core/coalesce.py) does this waiting itself.
        time.sleep(getattr(client, "flush_interval", 0.0))
    return len(batch) - len(failures), len(fatal), retriable


def delay_for(attempt: int, error: RetriableVendorError, schedule: list[float], jitter: float) -> float:
    """The schedule's step for this attempt, jittered, and never shorter than the vendor's wait
    (Retry-After, or the reset header the connector read into `retry_after`)."""
    step = schedule[min(max(attempt - 1, 0), len(schedule) - 1)] if schedule else 1.0
    delay = step * random.uniform(1 - jitter, 1 + jitter)
    return max(delay, error.retry_after or 0.0, 0.5)


def back_off(connector: str, error: RetriableVendorError, emails: list[str]) -> dict[str, Any]:
    """Wait per the schedule (with jitter, never less than Retry-After); after the last step the
    batch becomes a failed sync and the connector moves on. Rate limits do not use up attempts:
    the vendor told us when to come back, so waiting is the plan, not a failure."""
    r, config = redis(), services.current().config
    schedule = retry_schedule(config)
    key = ATTEMPTS.format(connector)
    limited = isinstance(error, RateLimited)
    attempt = int(r.get(key) or 0) if limited else int(r.incr(key))
    r.set(f"{key}:first", now_iso(), nx=True)
    metrics.count_backoff(r, connector, "rate_limited" if limited else "retriable")
    if attempt > len(schedule):
        first = (r.get(f"{key}:first") or b"").decode() or None
        record_failure(connector, emails, error, attempts=attempt, first=first)
        if emails:
            r.zrem(dirty_key(connector), *emails)
        r.delete(key, f"{key}:first")
        get_queues().kick([connector])
        return {"exhausted": True, "error": error.as_dict()}
    delay = delay_for(attempt, error, schedule, config["RETRY_JITTER"])
    due = time.time() + delay
    r.set(BACKOFF.format(connector), str(due), ex=int(delay) + 60)
    schedule_flush(connector, due)
    log.warning("sync backing off", extra={
        "connector": connector, "attempt": attempt, "delay_s": round(delay, 2), "status": error.status,
        "code": error.code, "contacts": len(emails)})
    return {"retry_in": delay, "attempt": attempt, "error": error.as_dict()}


def schedule_flush(connector: str, due: float, why: str = "retry") -> None:
    """A flush at `due` or just after. RQ keeps whole seconds (it truncates), so round up: a
    retry that woke before the back-off ended would find it still running and stop."""
    when = datetime.fromtimestamp(math.ceil(due), timezone.utc)
    get_queues().get(connector).enqueue_at(when, jobnames.FLUSH, connector, job_timeout=300, result_ttl=60,
                                           description=f"flush {connector} ({why})")


def sync_contacts(connector: str, emails: list[str]) -> dict[str, Any]:
    """Ops retry of a failed sync: push the contacts' CURRENT state once more.

    While the connector is paused the contacts go back to its dirty set and wait for the resume
    flush; rejected credentials pause the connector the same way. Any other failure fails the
    job again, with its meta brought up to date."""
    if paused(connector):
        redirty(connector, emails)
        return {"deferred": "paused", "contacts": len(emails)}
    lease = flush_lease(connector)
    if not lease.acquire():
        # A flush is writing to this vendor: one writer at a time, so the contacts join its work.
        redirty(connector, emails)
        get_queues().kick([connector])
        return {"deferred": "flushing", "contacts": len(emails)}
    job = get_current_job()
    client = build_connector(connector, lease)
    try:
        failures = push(connector, client, emails, lease) if emails else {}
    except AuthError as exc:
        pause_for_auth(connector, exc)
        redirty(connector, emails)
        return {"deferred": "paused", "contacts": len(emails)}
    except Superseded:
        redirty(connector, emails)
        get_queues().kick([connector])
        return {"deferred": "superseded", "contacts": len(emails)}
    except VendorError as exc:
        failures = {e: exc for e in emails}
    finally:
        lease.release()
    if failures:
        first = next(iter(failures.values()))
        message = scrub_secrets(first.message).strip()
        note_outcome(connector, sorted(failures), False, first)
        if job is not None:
            job.meta.update({"attempts": int(job.meta.get("attempts", 0)) + 1, "last_attempt": now_iso(),
                             "status": first.status, "code": first.code, "message": message,
                             "retriable": first.retriable, "contacts": sorted(failures)})
            job.save_meta()
        raise SyncFailed(f"{len(failures)} contact(s) failed at {connector}: HTTP {first.status or '-'}"
                         f"{f' {first.code}' if first.code else ''}: {message}")
    return {"pushed": len(emails)}


def erase_contacts(connector: str, emails: list[str]) -> dict[str, Any]:
    """Ops retry of a failed erasure."""
    result = build_connector(connector).erase(emails)
    if result.failed:
        first = next(iter(result.failed.values()))
        raise SyncFailed(f"erasure failed at {connector}: {first.code or first.status} {scrub_secrets(first.message)}")
    pipe = redis().pipeline(transaction=False)
    pushstate.forget(pipe, connector, emails)
    pipe.hdel(LAST.format(connector), *emails)
    pipe.execute()
    return {"erased": len(emails)}


def overdue(connector: str, grace: float) -> int:
    """Dirty contacts (and erasures) whose due time passed more than `grace` seconds ago."""
    r, before = redis(), time.time() - grace
    return int(r.zcount(dirty_key(connector), "-inf", before)) + int(r.zcount(erase_key(connector), "-inf", before))


def release_stuck(connector: str, grace: float) -> int:
    """Queue now the connector's scheduled jobs that are more than `grace` seconds past due.

    RQ moves scheduled jobs only in the worker that holds its queue's scheduler lock; after a
    worker is killed that lock outlives it for about a minute, and a new worker retries it only
    at its next maintenance. Until then a back-off or lease follow-up would sit unmoved, and the
    sweep would take it for a flush on its way. Public RQ API only (the registry and enqueue_job).
    """
    queue = get_queues().get(connector)
    registry = ScheduledJobRegistry(queue=queue)
    ids = registry.get_jobs_to_schedule(int(time.time() - grace))
    moved = 0
    for job_id, job in zip(ids, Job.fetch_many(ids, connection=redis(), serializer=JSONSerializer)):
        registry.remove(job_id)
        if job is not None:
            queue.enqueue_job(job)
            moved += 1
    return moved


def flush_waiting(connector: str) -> bool:
    """A flush job is queued or scheduled for the connector (its worker will get to it)."""
    queue = get_queues().get(connector)
    if ScheduledJobRegistry(queue=queue).count:
        return True
    jobs = Job.fetch_many(queue.get_job_ids(), connection=redis(), serializer=JSONSerializer)
    return any(job is not None and job.func_name == jobnames.FLUSH for job in jobs)


def sweep() -> dict[str, int]:
    """The safety net under the flush's own follow-up: queue a flush for any connector whose
    contacts are overdue while no flush holds its lease. Paused connectors wait for `resume`; a
    connector backing off gets its lost retry re-armed. Runs on the hub's scheduler."""
    r, grace = redis(), services.current().config["SWEEP_GRACE"]
    history.sample_backlog(r, get_queues().connectors, time.time())   # the overview's backlog chart
    queued: dict[str, int] = {}
    for connector in get_queues().connectors:
        if paused(connector) or flush_lease(connector).held_by_anyone():
            continue
        until = backing_off_until(connector)
        if until:
            rearm(connector, until)
            continue
        late = overdue(connector, grace)
        if not late:
            continue
        if release_stuck(connector, grace):
            log.warning("sweep queued scheduled jobs past due", extra={"connector": connector})
            continue
        if flush_waiting(connector):
            continue
        r.delete(FLAG.format(connector))    # a flag whose job was lost must not block the kick
        if get_queues().kick([connector]):
            queued[connector] = late
            metrics.count_sweep(r, connector)
            log.warning("sweep queued a flush", extra={"connector": connector, "overdue": late})
    return queued
