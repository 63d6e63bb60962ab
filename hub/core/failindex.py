"""An index of failed syncs beside RQ's FailedJobRegistry, for the console's grouping, filters
and paging without reading the whole registry on a page load.

RQ's registry stays the one list (`rq info`, rq-dashboard, `hub failed` read it); this index is
derived from it and rebuildable (`rebuild`, or delete `hub:fx:*`). `reconcile` brings it up to
date with two server-side set differences per connector (what the registry holds that the index
lacks, and the reverse), so only the changes travel, and only new jobs are read.

Keys, each a sorted set of job ids scored by the last attempt (epoch seconds):
`hub:fx:all`, `hub:fx:c=<connector>`, `hub:fx:x=<class>`, `hub:fx:c=<connector>|x=<class>`,
`hub:fx:e=<code or status>`, `hub:fx:c=<connector>|e=<code or status>`; `hub:fx:meta` maps a job id to the keys it is
in. `hub:fx:p:<contact id>` is the set of failed syncs naming one contact (the contact page),
removed at erasure.
"""
from __future__ import annotations

import json
import uuid
from typing import Any, Iterable

from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from hub.core.failedjob import describe
from hub.core.ledger import contact_id
from hub.core.queue import get_queues
from hub.core import keys

META = keys.FAIL_INDEX_META
PERSON = keys.FAIL_INDEX_PERSON
ALL = keys.FAIL_INDEX.format("all")
CLASSES = {"configuration": "Credentials or configuration", "validation": "Vendor validation",
           "transient": "Transient, out of retries"}
CONFIG_CODES = {"mapping_error", "bad_mapping", "bad_setting", "unauthorized", "forbidden", "auth_error",
                "invalid_credentials", "not_authenticated", "permission_denied"}


def classify(item: dict[str, Any]) -> str:
    """The error class of a failed sync: credentials/configuration (the hub's side must change),
    vendor validation (the vendor refuses this record), or transient (ran out of retries)."""
    status, code = item.get("status"), str(item.get("code") or "").lower()
    if status in (401, 403) or code in CONFIG_CODES:
        return "configuration"
    if item.get("retriable") or code == "worker_error" or status is None or status == 429 \
            or (isinstance(status, int) and status >= 500):
        return "transient"
    return "validation"


def key(**dims: str) -> str:
    return keys.FAIL_INDEX.format("|".join(f"{name}={value}" for name, value in dims.items()))


def keys_for(connector: str, klass: str, codes: set[str]) -> list[str]:
    """The index keys a failed sync belongs in. `codes`: its vendor error code and its HTTP
    status, either of which the code filter matches (as `hub failed --code` does)."""
    out = [ALL, key(c=connector), key(x=klass), key(c=connector, x=klass)]
    for code in sorted(c for c in codes if c):
        out += [key(e=code), key(c=connector, e=code)]
    return out


def registry(connector: str) -> FailedJobRegistry:
    return FailedJobRegistry(queue=get_queues().get(connector))


def stamp(iso: str | None) -> float:
    from datetime import datetime

    if not iso:
        return 0.0
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def add(redis: Any, items: Iterable[dict[str, Any]]) -> None:
    pipe = redis.pipeline(transaction=False)
    for item in items:
        codes = {str(v) for v in (item["code"], item["status"]) if v not in (None, "")}
        names = keys_for(item["connector"], classify(item), codes)
        score = stamp(item["last_attempt"])
        for name in names:
            pipe.zadd(name, {item["id"]: score})
        people = [PERSON.format(contact_id(e)) for e in item["contacts"]]
        for person in people:
            pipe.sadd(person, item["id"])
        pipe.hset(META, item["id"], json.dumps({"keys": names, "people": people}))
    pipe.execute()


def drop(redis: Any, job_ids: list[str]) -> None:
    """Take jobs out of the index (retried: when one fails again it comes back as new)."""
    if not job_ids:
        return
    metas = redis.hmget(META, job_ids)
    pipe = redis.pipeline(transaction=False)
    for job_id, raw in zip(job_ids, metas):
        if raw:
            meta = json.loads(raw)
            for name in meta["keys"]:
                pipe.zrem(name, job_id)
            for person in meta["people"]:
                pipe.srem(person, job_id)
    pipe.hdel(META, *job_ids)
    pipe.execute()


def reconcile(redis: Any, connectors: list[str] | None = None) -> dict[str, int]:
    """Bring the index in line with RQ's registries: add what is new, drop what is gone."""
    added = dropped = 0
    for connector in connectors or get_queues().connectors:
        reg, mine = registry(connector).key, key(c=connector)
        new = [i.decode() for i in redis.zdiff([reg, mine])]
        gone = [i.decode() for i in redis.zdiff([mine, reg])]
        if gone:
            drop(redis, gone)
            dropped += len(gone)
        if new:
            jobs = Job.fetch_many(new, connection=redis, serializer=JSONSerializer)
            add(redis, [describe(job, connector) for job in jobs if job is not None])
            added += len(new)
    return {"added": added, "dropped": dropped}


def rebuild(redis: Any) -> dict[str, int]:
    """Forget the index and derive it again from the registries."""
    names = {ALL, META}
    for raw in redis.hvals(META):
        meta = json.loads(raw)
        names.update(meta["keys"] + meta["people"])
    redis.delete(*names)
    return reconcile(redis)


def groups(redis: Any, connectors: list[str]) -> list[dict[str, Any]]:
    """Counts per connector and class (only the non-empty ones)."""
    pipe = redis.pipeline(transaction=False)
    pairs = [(c, x) for c in connectors for x in CLASSES]
    for c, x in pairs:
        pipe.zcard(key(c=c, x=x))
    return [{"connector": c, "class": x, "label": CLASSES[x], "count": n}
            for (c, x), n in zip(pairs, pipe.execute()) if n]


def query(redis: Any, connector: str | None = None, klass: str | None = None, code: str | None = None,
          since: float | None = None, offset: int = 0, limit: int | None = 50) -> tuple[int, list[str]]:
    """(how many match, the ids of one page, newest first). None limit: every match."""
    dims = {k: v for k, v in (("c", connector), ("x", klass), ("e", code)) if v}
    if not dims:
        source, temp = ALL, None
    elif len(dims) == 1 or set(dims) in ({"c", "x"}, {"c", "e"}):
        source, temp = key(**dict(sorted(dims.items()))), None
    else:
        temp = keys.FAIL_INDEX.format(f"tmp:{uuid.uuid4().hex}")
        redis.zinterstore(temp, [key(**{n: v}) for n, v in dims.items()], aggregate="MAX")
        redis.expire(temp, 30)
        source = temp
    low = since if since is not None else "-inf"
    try:
        total = int(redis.zcount(source, low, "+inf"))
        ids = redis.zrevrangebyscore(source, "+inf", low, start=offset, num=limit if limit is not None else total or 1)
    finally:
        if temp:
            redis.delete(temp)
    return total, [i.decode() for i in ids]


def of_contact(redis: Any, email: str) -> list[str]:
    return sorted(i.decode() for i in redis.smembers(PERSON.format(contact_id(email))))


def forget(redis: Any, emails: list[str]) -> None:
    """At erasure: the per-contact sets, and their names in the index's notes (the failed syncs
    themselves are rewritten or discarded by hub.core.failed.forget)."""
    for email in emails:
        person = PERSON.format(contact_id(email))
        job_ids = [i.decode() for i in redis.smembers(person)]
        for job_id, raw in zip(job_ids, redis.hmget(META, job_ids) if job_ids else []):
            if raw:
                meta = json.loads(raw)
                meta["people"] = [p for p in meta["people"] if p != person]
                redis.hset(META, job_id, json.dumps(meta))
        redis.delete(person)
