"""Anti-entropy: read a sample of contacts back from each vendor that has a read API, compare
each with what the hub would push now, and mark the ones that drifted dirty so the normal
flush repairs them. The safety net for the faults nobody has thought of yet.

The comparison renders through `hub.core.sync.plan`, the function the sync and the admin preview
use, so the audit can never disagree with what a flush would send. What it repairs: fields,
a contact the vendor lost, and transactional lists the vendor lost. What it only reports:
marketing consent and marketing lists (a difference may be the person's own choice at the
vendor, and consent is never written against it) and lists the vendor has beyond the hub's.

Findings are kept in the contact's own hash (`audit:history`, bounded), so whatever erases the
contact erases them; a pending repair is marked there too (`audit:pending`) and settled when a
push lands (`close_repairs` in hub/core/repairs.py, called by hub.core.sync.push).
"""
from __future__ import annotations

import logging

import json
import time
from typing import Any, Sequence


from connectors import CONNECTORS, MARKETING, TRANSACTIONAL
from connectors.base import chunks
from connectors.errors import RateLimited, VendorError
from connectors.ratelimit import Limit, RateLimiter

from hub.core import metrics, pushstate, timeline
from hub.core.config import connector_settings
from hub.core.drift import Finding, compare
from hub.core.ledger import dirty_key, get_ledger, key
from hub.core.mappingstore import current_mapping, now_iso
from hub.core.queue import enabled_connectors, get_queues
from hub.core.repairs import HISTORY, OPEN, _REMEMBER, count
from hub.core.sync import BACKOFF, paused, plan, scrub_secrets
from hub.core.tokens import RedisTokenStore
from hub.core.vendorjobs import waiting_among
from hub.core import keys
from hub.core import jobnames, services
log = logging.getLogger("hub")

LAST = keys.AUDIT_LAST               # the connector's last run, counts only
MAX_READ_WAIT = 1.0                  # the longest the audit waits for a rate-limit slot
SAMPLE_DRAW = 3                      # contacts drawn from the index per one sampled: some were never
                                     # pushed to the connector, some wait for a push


# KEYS: contact hash, dirty set, open counter. ARGV: email, connector, now, entry, history size,
# repair ('' none, 'forget' the pushed record, or a JSON array of list ids the vendor lost), the
# connector's pushed field in the contact hash (hub/core/pushstate.py). Nothing is written for a
# contact the hub no longer holds (erased meanwhile).
_RECORD = _REMEMBER + pushstate.LUA + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
remember(ARGV[4], ARGV[5])
if ARGV[6] == '' then return 1 end
if ARGV[6] == 'forget' then
  redis.call('HDEL', KEYS[1], ARGV[7])
else
  local raw = redis.call('HGET', KEYS[1], ARGV[7])
  if raw then
    local _, at, consent, lists = pushed_parts(raw)
    if lists ~= '' then
      local kept = cjson.decode(lists)
      for _, id in ipairs(cjson.decode(ARGV[6])) do kept[id] = nil end
      lists = next(kept) == nil and '' or cjson.encode(kept)
    end
    redis.call('HSET', KEYS[1], ARGV[7], pushed_entry('audit', at, consent, lists))
  end
end
local raw = redis.call('HGET', KEYS[1], 'audit:pending')
local pending = {}
if raw then pending = cjson.decode(raw) end
if pending[ARGV[2]] == nil then redis.call('INCR', KEYS[3]) end
redis.call('EXPIRE', KEYS[3], 86400)
pending[ARGV[2]] = ARGV[3]
redis.call('HSET', KEYS[1], 'audit:pending', cjson.encode(pending))
redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[1])
return 2
"""
class Stop(Exception):
    """The audit ends early (its time budget or its share of the rate limit is spent)."""


# -- settings -----------------------------------------------------------------------------------
def setting(config: dict[str, Any], name: str, connector: str) -> Any:
    """HUB_<NAME>_<CONNECTOR> when set, else HUB_<NAME>."""
    value = config.get(f"{name}_{connector.upper()}")
    base = config[name]
    return base if value in (None, "") else type(base)(value)


def enabled(config: dict[str, Any], connector: str) -> bool:
    """Audited on a schedule: its vendor has a read API and its interval is not 0."""
    return CONNECTORS[connector].readable() and setting(config, "AUDIT_INTERVAL", connector) > 0


def periodic_audits(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The audit's entries for the hub's scheduler (hub.jobs.scheduler.Periodic keyword arguments):
    one job per enabled connector whose vendor has a read and whose interval is not 0, every
    HUB_AUDIT_INTERVAL[_<CONNECTOR>] seconds, on the scheduler's own queue so it never holds up
    the connector's flushes."""
    return [{"name": f"audit-{c}", "func": jobnames.AUDIT, "args": (c,),
             "interval_seconds": setting(config, "AUDIT_INTERVAL", c),
             "timeout": int(float(config["AUDIT_BUDGET"])) + 120}
            for c in enabled_connectors(config) if enabled(config, c)]


# -- the audit's reads: the connector's own shared limiter, held to a share -------------------------
class ReadLimiter(RateLimiter):
    """Every read takes a slot in the connector's shared limits (so pushes and reads together
    never exceed the vendor's) and in the audit's own copy of them scaled by HUB_AUDIT_SHARE
    (so reads never take more than that share). A read that would wait longer than
    MAX_READ_WAIT, or past the audit's deadline, stops the audit instead."""

    def __init__(self, redis: Any, prefix: str, share: float, deadline: float) -> None:
        super().__init__(redis, prefix)
        self.share = share
        self.deadline = deadline

    def acquire(self, bucket: str, limits: Sequence[Limit]) -> float:
        mine = [(max(1, int(count * self.share)), period) for count, period in limits]
        wait = self.acquire_all([(bucket, limits), (f"audit:{bucket}", mine)])
        if wait > MAX_READ_WAIT or (wait > 0 and time.monotonic() + wait > self.deadline):
            raise Stop("rate_share")
        return wait


def redis() -> Any:
    return services.current().redis


def client_for(connector: str, deadline: float) -> Any:
    config = services.current().config
    limiter = ReadLimiter(redis(), keys.RATE_LIMIT, float(config["AUDIT_SHARE"]), deadline)
    return CONNECTORS[connector](connector_settings(config, connector), limiter=limiter,
                                 session=metrics.CountingSession(redis(), connector), tokens=RedisTokenStore(redis()))


# -- recording ------------------------------------------------------------------------------------
def record(connector: str, finding: Finding) -> bool:
    """Note the finding in the contact's history; when it is repairable, make the next flush
    push the contact again (and re-join lists the vendor lost). False if the contact is gone."""
    if not finding.repair:
        repair = ""
    elif finding.missing:
        repair = "forget"      # the vendor lost it: push it as new, lists and all
    else:
        repair = json.dumps(finding.lists_lost)
    entry = json.dumps({"at": now_iso(), "connector": connector, "event": "mismatch", **finding.as_dict()})
    script = redis().register_script(_RECORD)
    done = script(keys=[key(finding.email), dirty_key(connector), OPEN.format(connector)],
                  args=[finding.email, connector, repr(time.time()), entry,
                        services.current().config["AUDIT_HISTORY"], repair, pushstate.field(connector)])
    return bool(done)


def history(r: Any, email: str) -> list[dict[str, Any]]:
    """The contact's audit findings, newest first."""
    raw = r.hget(key(email), HISTORY)
    return json.loads(raw) if raw else []


# -- the audit ------------------------------------------------------------------------------------
def sample(connector: str, size: int) -> list[str]:
    """Up to `size` contacts the hub has pushed to the connector, at random, none of them
    waiting for a push or on a vendor job (their vendor copy is expected to differ). Drawn from
    the contact index (keys.CONTACT_INDEX), keeping those with a pushed entry for the connector."""
    r = redis()
    timeline.ensure(r)
    drawn = [e.decode() for e in r.zrandmember(keys.CONTACT_INDEX, size * SAMPLE_DRAW) or []]
    picked = [e for e, entry in zip(drawn, pushstate.read(r, connector, drawn)) if entry is not None]
    return [e for e, score in zip(picked, pending(connector, picked)) if score is None][:size]


def pending(connector: str, emails: list[str]) -> list[Any]:
    """Per contact: its dirty score, "job" while it waits on a vendor job (its push has not
    landed yet, so the vendor's copy may lag), or None when nothing is on its way."""
    pipe = redis().pipeline(transaction=False)
    for email in emails:
        pipe.zscore(dirty_key(connector), email)
    scores = pipe.execute() if emails else []
    held = waiting_among(connector, emails)
    return [score if score is not None else ("job" if email in held else None) for email, score in zip(emails, scores)]


def refusal(connector: str) -> str | None:
    """Why the connector is not audited now, or None."""
    if connector not in get_queues().connectors:
        return "not enabled"
    if not CONNECTORS[connector].readable():
        return f"{CONNECTORS[connector].label} has no read API the hub uses"
    if paused(connector):
        return "paused"
    until = redis().get(BACKOFF.format(connector))
    if until and float(until) > time.time():
        return "backing off"
    return None


def audit(connector: str, size: int | None = None, emails: list[str] | None = None) -> dict[str, Any]:
    """Read a sample back from the vendor, compare, and queue repairs; returns the report."""
    config = services.current().config
    report: dict[str, Any] = {"connector": connector, "at": now_iso(), "checked": 0, "in_step": 0,
                              "out_of_step": 0, "repairs_queued": 0, "changed_meanwhile": 0,
                              "skipped": refusal(connector), "stopped": None, "findings": []}
    if report["skipped"]:
        count(redis(), connector, {}, run="skipped")
        return report
    chosen = [e.strip().lower() for e in emails] if emails else \
        sample(connector, size or setting(config, "AUDIT_SAMPLE", connector))
    deadline = time.monotonic() + float(config["AUDIT_BUDGET"])
    client = client_for(connector, deadline)
    mapping = current_mapping(redis(), connector)
    kinds = {str(rule["id"]): rule["kind"] for rule in mapping.get("lists", []) if rule["kind"] in (MARKETING, TRANSACTIONAL)}
    try:
        for batch in chunks(chosen, client.read_batch):
            if time.monotonic() > deadline:
                raise Stop("budget")
            check(connector, client, mapping, kinds, list(batch), report)
    except Stop as exc:
        report["stopped"] = str(exc)
    except RateLimited:
        report["stopped"] = "rate_limited"
    except VendorError as exc:
        # The vendor's text may name a contact: it goes to the caller, never into Redis.
        report["stopped"] = "vendor_error"
        report["error"] = {"status": exc.status, "code": exc.code, "message": scrub_secrets(exc.message)[:300]}
    finish(connector, report)
    return report


def check(connector: str, client: Any, mapping: dict[str, Any], kinds: dict[str, str], emails: list[str],
          report: dict[str, Any]) -> None:
    """One read: plan what a push would send now, read the vendor's copy, compare. Contacts
    touched meanwhile (new version, or dirty) are left to the flush."""
    ledger = get_ledger()
    before = ledger.versions(emails)
    entries = plan(connector, mapping, ledger.states(emails), force=True)
    updates = [e["update"] for e in entries if e["status"] == "would_push"]
    if not updates:
        return
    views = client.read(updates)
    after = dict(zip(emails, ledger.versions(emails)))
    dirty = dict(zip(emails, pending(connector, emails)))
    was = dict(zip(emails, before))
    for update in updates:
        if after[update.email] != was[update.email] or dirty[update.email] is not None:
            report["changed_meanwhile"] += 1
            continue
        report["checked"] += 1
        finding = compare(update, views.get(update.email), kinds)
        if finding is None:
            report["in_step"] += 1
            continue
        report["out_of_step"] += 1
        if record(connector, finding) and finding.repair:
            report["repairs_queued"] += 1
        report["findings"].append({"email": update.email, **finding.as_dict()})


def finish(connector: str, report: dict[str, Any]) -> None:
    """Count the run, keep its summary (no addresses), and start the flush that repairs."""
    r = redis()
    count(r, connector, {"checked": report["checked"], "in_step": report["in_step"],
                         "out_of_step": report["out_of_step"], "repair_queued": report["repairs_queued"]},
          run="stopped" if report["stopped"] else "completed")
    r.set(LAST.format(connector), json.dumps(counts_only(report)))
    if report["repairs_queued"]:
        get_queues().kick([connector])
    log.info("audit done", extra={k: report[k] for k in (
        "connector", "checked", "in_step", "out_of_step", "repairs_queued", "stopped")})


def audit_job(connector: str) -> dict[str, Any]:
    """The scheduler's entry point. Returns counts only: RQ keeps a job's result in Redis, and
    addresses there would outlive an erasure."""
    if not enabled(services.current().config, connector):
        return {"connector": connector, "skipped": "audit turned off"}
    return counts_only(audit(connector))


def counts_only(report: dict[str, Any]) -> dict[str, Any]:
    """The report without anything that may name a person (findings, the vendor's error text)."""
    return {k: v for k, v in report.items() if k not in ("findings", "error")}


# -- HTTP and CLI ---------------------------------------------------------------------------------
def address(value: Any) -> bool:
    """An email address the hub could hold: text with an @, at most 254 characters, valid UTF-8."""
    if not isinstance(value, str) or "@" not in value or len(value) > 254:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
