"""The layout of the hub's data in Redis, versioned, and the steps that bring an older one forward.

`hub:layout` holds the version the data is written in; absent means 1, the layout of every hub
from before the key existed. Each step moves the data one version on and is idempotent, so a run
cut short is finished by the next. Steps run under a Redis lock, and the version is re-read once
it is held, so when several processes start at once one of them migrates and the others find the
work done. A store written by a newer hub is refused: this code would misread it.

No Flask here: `hub migrate` and the start-up of `hub serve`, `hub worker` and `hub up` call it
with a plain Redis client and the erasure key (see docs/operations.md "Upgrades").
"""
from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from hub.core import keys, pushstate
from hub.core.erasure import Keyed, load_key
from hub.core.store import connect

LAYOUT_KEY = keys.LAYOUT
LOCK_KEY = keys.LAYOUT_LOCK
LOCK_SECONDS = 60          # renewed after every page of keys, so only a dead migrator's lock expires
WAIT_SECONDS = 600         # how long a starting process waits for another one's migration
PAGE = 1000
KEYED = re.compile(rb"[0-9a-f]{64}")    # an HMAC-SHA256 hex digest: the current erasure marker name


class LayoutError(RuntimeError):
    """The data cannot be brought forward by this hub (written by a newer one)."""


@dataclass
class Report:
    """What a run found and did: the layout before and after, and counts per kind of change."""

    before: int
    after: int
    changed: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        if self.before == self.after:
            return f"layout {self.after} (current): nothing to migrate"
        done = ", ".join(f"{n} {what}" for what, n in self.changed.items()) or "no keys to change"
        return f"layout {self.before} -> {self.after}: {done}"


def layout(redis: Any) -> int:
    value = redis.get(LAYOUT_KEY)
    return int(value) if value else 1


# A legacy erasure marker `hub:erased:<address>` becomes `hub:erased:<keyed hash>` with the same
# value (when it was erased); the address's entry in `hub:ver`, which the old erasure bumped
# instead of removing, goes too. KEYS: old marker, new marker, hub:ver. ARGV: the address.
_MARKER = """
local when = redis.call('GET', KEYS[1])
if not when then return 0 end
redis.call('SET', KEYS[2], when, 'NX')
redis.call('DEL', KEYS[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1
"""

# A dedupe marker named by an event id that carries an address (Mention Me builds ids from
# emails) is renamed to the keyed form the ledger now looks up, keeping its expiry, so an event
# delivered again after the upgrade is still a duplicate. KEYS: old marker, new marker.
_SEEN = """
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  redis.call('SET', KEYS[2], value, 'PX', ttl, 'NX')
else
  redis.call('SET', KEYS[2], value, 'NX')
end
redis.call('DEL', KEYS[1])
return 1
"""


def pages(redis: Any, pattern: str, lock: Any) -> Iterator[list[bytes]]:
    """The keys matching `pattern`, a page at a time, renewing the lock between pages."""
    cursor = 0
    while True:
        cursor, found = redis.scan(cursor, match=pattern, count=PAGE)
        if found:
            yield found
        lock.reacquire()
        if cursor == 0:
            return


def no_address_in_key_names(redis: Any, mac: Keyed, lock: Any) -> dict[str, int]:
    """Layout 2: erased people only by their keyed hash; dedupe markers of address-bearing
    event ids in their keyed form (hub/core/erasure.py)."""
    marker, seen = redis.register_script(_MARKER), redis.register_script(_SEEN)
    changed = {"erasure markers keyed": 0, "dedupe markers keyed": 0}
    prefix = len(keys.ERASED.format(""))
    for names in pages(redis, keys.ERASED.format("*"), lock):
        pipe = redis.pipeline(transaction=False)
        legacy = [k for k in names if not KEYED.fullmatch(k[prefix:])]
        for key in legacy:
            address = key[prefix:].decode()
            marker(keys=[key, keys.ERASED.format(mac(address)), keys.VERSIONS], args=[address], client=pipe)
        changed["erasure markers keyed"] += sum(pipe.execute()) if legacy else 0
    prefix = len(keys.SEEN.format(""))
    for names in pages(redis, keys.SEEN.format("*"), lock):
        pipe = redis.pipeline(transaction=False)
        legacy = [k for k in names if b"@" in k and not k[prefix:].startswith(b"#")]
        for key in legacy:
            event_id = key[prefix:].decode()
            seen(keys=[key, keys.SEEN.format("#" + mac("event:" + event_id))], client=pipe)
        changed["dedupe markers keyed"] += sum(pipe.execute()) if legacy else 0
    return changed


# Layout 3: the hub's modules moved into layers (hub.core, hub.jobs ...), and RQ names a job's
# function by its dotted path, so jobs queued, scheduled, deferred or failed by an older hub name
# functions that no longer exist. Their stored call is rewritten to the new path. The old paths
# are written without their leading "hub." so no later rename of the code rewrites them too.
MOVED_JOBS: dict[str, str] = {
    "admin": "core.admin",
    "admin_cli": "cli.admin",
    "admin_http": "http.admin",
    "admission": "core.admission",
    "audit": "core.audit",
    "audit_cli": "cli.audit",
    "audit_http": "http.audit",
    "auth": "core.auth",
    "auth_http": "http.auth",
    "bootstrap": "core.bootstrap",
    "cli_context": "cli.context",
    "coalesce": "core.coalesce",
    "config": "core.config",
    "contacts": "core.contacts",
    "contacts_cli": "cli.contacts",
    "contacts_http": "http.contacts",
    "delivery": "core.delivery",
    "demo": "cli.demo",
    "drift": "core.drift",
    "endpoints": "core.endpoints",
    "endpoints_cli": "cli.endpoints",
    "endpoints_http": "http.endpoints",
    "envfile": "cli.envfile",
    "erasure": "core.erasure",
    "errors": "core.errors",
    "errors_http": "http.errors",
    "failed": "core.failed",
    "failindex": "core.failindex",
    "feed": "core.feed",
    "feed_process": "jobs.feed",
    "feeds": "core.feeds",
    "feeds.cli": "cli.feeds",
    "feeds.config": "core.feeds.config",
    "feeds.demo": "cli.feeds_demo",
    "feeds.exports": "core.feeds.exports",
    "feeds.jobs": "core.feeds.jobs",
    "feeds.mapping": "core.feeds.mapping",
    "feeds.poller": "core.feeds.poller",
    "feeds.sftp": "core.feeds.sftp",
    "feeds.status": "core.feeds.status",
    "feeds.versions": "core.feeds.versions",
    "forget": "core.forget",
    "health": "http.health",
    "ingest": "http.ingest",
    "jobs": "core.tasks",
    "keys": "core.keys",
    "lease": "core.lease",
    "ledger": "core.ledger",
    "logs": "core.logs",
    "logs_http": "http.logs",
    "mappingstore": "core.mappingstore",
    "mappingview": "core.mappingview",
    "metrics": "core.metrics",
    "metrics_http": "http.metrics",
    "migrate": "core.migrate",
    "migrate_cli": "cli.migrate",
    "netguard": "core.netguard",
    "openapi": "http.openapi",
    "ops_cli": "cli.ops",
    "ops_http": "http.ops",
    "preview": "core.preview",
    "processes": "core.processes",
    "progress": "core.progress",
    "progress_cli": "cli.progress",
    "queue": "core.queue",
    "recent": "core.recent",
    "runner_cli": "cli.runner",
    "scheduler": "jobs.scheduler",
    "schemas": "core.schemas",
    "services": "core.services",
    "store": "core.store",
    "sync": "core.sync",
    "tasks": "core.tasks",
    "tasks_http": "http.tasks",
    "terminal": "cli.terminal",
    "timeline": "core.timeline",
    "up": "cli.up",
    "vendorjobs": "core.vendorjobs",
    "webhooks": "core.webhooks",
    "webhooks_http": "http.webhooks",
    "workers": "jobs.workers",
}


def moved_function(name: str) -> str | None:
    """The current dotted path of a job function an older hub queued, or None if it has not moved."""
    module, _, function = name.rpartition(".")
    new = MOVED_JOBS.get(module.removeprefix("hub.")) if module.startswith("hub.") else None
    return f"hub.{new}.{function}" if new else None


def job_functions_moved(redis: Any, mac: Keyed, lock: Any) -> dict[str, int]:
    """Layout 3: every stored RQ job (`rq:job:<id>`) calls its function by the current path."""
    return {"queued jobs renamed": rename_jobs(redis, lock, moved_function)}


# Layout 4: RQ runs the hub's jobs through thin entry points in the jobs layer (hub/jobs/entry.py,
# named in hub/core/jobnames.py) rather than functions of the core. A stored job naming one of the
# core's functions is pointed at its entry point, which takes the same arguments. As above, the
# paths are written without their leading "hub.".
ENTRY_POINTS: dict[str, str] = {
    "core.sync.flush": "jobs.entry.flush",
    "core.sync.sync_contacts": "jobs.entry.sync_contacts",
    "core.sync.erase_contacts": "jobs.entry.erase_contacts",
    "core.sync.sweep": "jobs.entry.sweep",
    "core.vendorjobs.sweep_all": "jobs.entry.sweep_vendor_jobs",
    "core.vendorjobs.check": "jobs.entry.check_vendor_job",
    "core.audit.audit_job": "jobs.entry.audit",
    "core.feeds.jobs.poll_feeds": "jobs.entry.poll_feeds",
    "core.feeds.jobs.exports_due": "jobs.entry.exports_due",
    "core.feeds.jobs.export": "jobs.entry.export_feed",
    "core.tasks.run": "jobs.entry.run_task",
}


def entry_point(name: str) -> str | None:
    """The entry point that now runs a job an older hub queued by a core function, or None."""
    new = ENTRY_POINTS.get(name.removeprefix("hub.")) if name.startswith("hub.") else None
    return f"hub.{new}" if new else None


def jobs_through_entry_points(redis: Any, mac: Keyed, lock: Any) -> dict[str, int]:
    """Layout 4: every stored RQ job calls the jobs layer's entry point, not the core."""
    return {"jobs pointed at entry points": rename_jobs(redis, lock, entry_point)}


def rename_jobs(redis: Any, lock: Any, rename: Callable[[str], str | None]) -> int:
    """Rewrite the function of every stored RQ job (queued, scheduled, deferred, failed: each is a
    hash `rq:job:<id>`) that `rename` gives a new path for; how many were rewritten."""
    changed = 0
    for found in pages(redis, "rq:job:*", lock):
        names = [k for k in found if k.count(b":") == 2]        # rq:job:<id>, not its dependents' sets
        pipe = redis.pipeline(transaction=False)
        for key in names:
            pipe.hmget(key, "data", "description")
        writes = redis.pipeline(transaction=False)
        for key, (data, description) in zip(names, pipe.execute() if names else []):
            call = stored_call(data)
            new = rename(str(call[0])) if call else None
            if call is None or new is None:
                continue
            old, call[0] = call[0], new
            fields = {"data": zlib.compress(json.dumps(call).encode())}
            if description and description.decode().startswith(old + "("):
                fields["description"] = new + description.decode()[len(old):]
            writes.hset(key, mapping=fields)
            changed += 1
        if len(writes):
            writes.execute()
    return changed


def stored_call(data: bytes | None) -> list[Any] | None:
    """RQ's stored call (function, instance, args, kwargs) of a job written with the JSON
    serializer (zlib-compressed, as RQ stores it), or None when it is not one."""
    if not data:
        return None
    try:
        call = json.loads(zlib.decompress(data))
    except (zlib.error, ValueError):
        try:
            call = json.loads(data)
        except ValueError:
            return None
    return call if isinstance(call, list) and call and isinstance(call[0], str) else None


# Layout 5: a contact's five link sets become one hash, `hub:c:<email>:n` (hub/core/ledger.lua),
# each member a field named by its old set: `f:` friend, `r:` referrer, `g:` / `v:` a friend's
# SHA-1 credited as registered / converted, `o:` an order id credited. One contact at a time,
# atomically: its old sets are read, folded in and deleted in one step, so a run cut short leaves
# each contact wholly in one layout or the other and the next run finishes it. KEYS: the old sets
# in the order of LINK_SETS, then the links hash.
LINK_SETS = ((":friends", "f:"), (":referrers", "r:"), (":reg", "g:"), (":conv", "v:"), (":credited", "o:"))
_LINKS = """
local tags = {'f:', 'r:', 'g:', 'v:', 'o:'}
local moved = 0
for i = 1, #tags do
  if redis.call('TYPE', KEYS[i])['ok'] == 'set' then
    local members = redis.call('SMEMBERS', KEYS[i])
    for _, m in ipairs(members) do redis.call('HSETNX', KEYS[#tags + 1], tags[i] .. m, 1) end
    redis.call('DEL', KEYS[i])
    moved = 1
  end
end
return moved
"""


def links_in_one_hash(redis: Any, mac: Keyed, lock: Any) -> dict[str, int]:
    """Layout 5: each contact's friends, referrers and credited friends and orders in one small
    hash (`hub:c:<email>:n`) rather than five sets: a set of strings is a hash table in Redis, a
    small hash is one compact block."""
    fold = redis.register_script(_LINKS)
    changed = {"contacts' link sets merged": 0}
    contact_prefix = keys.CONTACT_PREFIX.encode()
    prefix = len(contact_prefix)
    suffixes = tuple(suffix.encode() for suffix, _ in LINK_SETS)
    for page in pages(redis, keys.CONTACT_PREFIX + "*", lock):
        emails = sorted({k[prefix:].rsplit(b":", 1)[0] for k in page if k.endswith(suffixes) and b":" in k[prefix:]})
        if not emails:
            continue
        pipe = redis.pipeline(transaction=False)
        for email in emails:
            contact = contact_prefix + email
            fold(keys=[contact + suffix for suffix in suffixes] + [contact + b":n"], client=pipe)
        changed["contacts' link sets merged"] += sum(pipe.execute())
    return changed


# Layout 5 also: a push's success is kept with its fingerprint (`"at"` in `hub:pushed:<connector>`)
# rather than as a second entry per contact in `hub:last:<connector>`, which keeps only failures.
# Readers take the later of the two (hub/core/contacts.py last_push), so data in either layout
# reads the same. KEYS: the connector's last hash, its pushed hash. ARGV: emails.
_SUCCESSES = """
local moved = 0
for _, email in ipairs(ARGV) do
  local noted = redis.call('HGET', KEYS[1], email)
  local ok, outcome = pcall(cjson.decode, noted or '')
  local pushed = redis.call('HGET', KEYS[2], email)
  if ok and type(outcome) == 'table' and outcome.ok == true and type(outcome.at) == 'number' and pushed then
    local landed = cjson.decode(pushed)
    if type(landed.at) ~= 'number' or landed.at < outcome.at then landed.at = outcome.at end
    redis.call('HSET', KEYS[2], email, cjson.encode(landed))
    redis.call('HDEL', KEYS[1], email)
    moved = moved + 1
  end
end
return moved
"""


def successes_with_fingerprints(redis: Any, mac: Keyed, lock: Any) -> dict[str, int]:
    """Layout 5: each contact's last successful push, per connector, moves from `hub:last:<c>`
    into its `hub:pushed:<c>` entry (a failure stays where it is)."""
    move = redis.register_script(_SUCCESSES)
    changed = {"push outcomes moved": 0}
    last_prefix = keys.LAST.format("").encode()
    for names in pages(redis, keys.LAST.format("*"), lock):
        for name in names:
            pushed = keys.PUSHED.format("").encode() + name[len(last_prefix):]
            cursor = 0
            while True:
                cursor, entries = redis.hscan(name, cursor, count=PAGE)
                if entries:
                    changed["push outcomes moved"] += int(move(keys=[name, pushed], args=list(entries)))
                lock.reacquire()
                if cursor == 0:
                    break
    return changed


def compact_links_and_outcomes(redis: Any, mac: Keyed, lock: Any) -> dict[str, int]:
    """Layout 5: the link sets in one hash per contact, push successes beside their fingerprints."""
    return {**links_in_one_hash(redis, mac, lock), **successes_with_fingerprints(redis, mac, lock)}


# Layout 6: what was last pushed to a connector moves from one big hash per connector,
# `hub:pushed:<connector>` (email -> JSON), into a field of each contact's own hash
# (hub/core/pushstate.py), in its short form. A page of entries at a time, each page in one step:
# an entry is written only while its contact's hash exists (an erased contact keeps nothing) and
# deleted from the old hash in the same step, so a run cut short leaves every entry in one place
# or the other and the next run moves the rest. KEYS: the old hash, then each contact's hash in
# ARGV's order. ARGV: the contact hash field, then (email, entry) pairs.
_PUSHED = """
local moved = 0
for i = 2, #ARGV, 2 do
  local contact = KEYS[1 + i / 2]
  if redis.call('EXISTS', contact) == 1 then
    redis.call('HSET', contact, ARGV[1], ARGV[i + 1])
    moved = moved + 1
  end
  redis.call('HDEL', KEYS[1], ARGV[i])
end
return moved
"""
HEX = re.compile(r"[0-9a-f]+")


def short_entry(raw: bytes) -> str:
    """A layout 5 pushed entry (JSON: fp, lists, consent, at) in its layout 6 form. A fingerprint
    an older hub kept whole (40 hex digits) keeps the digits the sync compares."""
    old = json.loads(raw)
    fp = str(old.get("fp") or "")
    if len(fp) > pushstate.FP_CHARS and HEX.fullmatch(fp):
        fp = fp[:pushstate.FP_CHARS]
    at = old.get("at")
    consent = old.get("consent")
    return pushstate.entry(fp, at if isinstance(at, (int, float)) else None, old.get("lists") or {},
                           consent if isinstance(consent, bool) else None)


def pushed_into_contacts(redis: Any, mac: Keyed, lock: Any) -> dict[str, int]:
    """Layout 6: each contact's pushed entries, per connector, in the contact's own hash."""
    move = redis.register_script(_PUSHED)
    changed = {"pushed entries moved into contacts": 0, "pushed entries of gone contacts dropped": 0}
    prefix = len(keys.PUSHED.format(""))
    for names in pages(redis, keys.PUSHED.format("*"), lock):
        for name in names:
            field = pushstate.field(name[prefix:].decode())
            cursor = 0
            while True:
                cursor, entries = redis.hscan(name, cursor, count=PAGE)
                if entries:
                    emails = list(entries)
                    args: list[Any] = [field]
                    for email in emails:
                        args += [email, short_entry(entries[email])]
                    moved = int(move(keys=[name, *(keys.contact(e.decode()) for e in emails)], args=args))
                    changed["pushed entries moved into contacts"] += moved
                    changed["pushed entries of gone contacts dropped"] += len(emails) - moved
                lock.reacquire()
                if cursor == 0:
                    break
    return changed


# Step n brings layout n - 1 to layout n.
STEPS: dict[int, Callable[[Any, Keyed, Any], dict[str, int]]] = {2: no_address_in_key_names,
                                                                3: job_functions_moved,
                                                                4: jobs_through_entry_points,
                                                                5: compact_links_and_outcomes,
                                                                6: pushed_into_contacts}
CURRENT = max(STEPS)


def refuse_newer(found: int) -> None:
    if found > CURRENT:
        raise LayoutError(f"the data in Redis is in layout {found}, written by a newer hub; this hub "
                          f"reads layout {CURRENT} at most: run the newer version")


def migrate(redis: Any, mac: Keyed) -> Report:
    """Bring the data to the CURRENT layout (no-op when it is there already)."""
    found = layout(redis)
    refuse_newer(found)
    if found == CURRENT:
        return Report(found, found)
    lock = redis.lock(LOCK_KEY, timeout=LOCK_SECONDS, blocking_timeout=WAIT_SECONDS, thread_local=False)
    if not lock.acquire():
        raise LayoutError(f"another hub process has held the migration lock ({LOCK_KEY}) for "
                          f"{WAIT_SECONDS} s; try again when it has finished")
    try:
        found = layout(redis)       # another process may have migrated while this one waited
        refuse_newer(found)
        report = Report(found, found)
        for version in range(found + 1, CURRENT + 1):
            report.changed.update(STEPS[version](redis, mac, lock))
            redis.set(LAYOUT_KEY, version)
            report.after = version
        return report
    finally:
        lock.release()


def bring_forward(config: dict[str, Any], url: str) -> Report:
    """The start-up call: migrate the data at `url` with the hub's erasure key."""
    client = connect(url)
    try:
        return migrate(client, Keyed(load_key(config)))
    finally:
        client.close()
