"""Where a connector's mapping lives: every save a new version in Redis, else the shipped default.

Keys per connector:
  hub:mapping:<c>:current    the current version's record (JSON)
  hub:mapping:<c>:versions   hash version -> record (JSON), the whole history
  hub:mapping:<c>:seq        the last version number given out
A record is {"version", "etag", "document", "author", "at", "comment", "action", ...}; the
document is stored exactly as the admin wrote it, so a rollback restores it byte for byte.
Version 0 is the shipped default, never stored.
"""
from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timezone
from typing import Any, Iterator

from redis.exceptions import WatchError

from mappings import default_mapping, validate_mapping
from hub.core import keys
from hub.core.timeline import INDEX, contacts, ensure

CURRENT = keys.MAPPING_CURRENT
VERSIONS = keys.MAPPING_VERSIONS
SEQ = keys.MAPPING_SEQ
CONTACT_PREFIX = keys.CONTACT_PREFIX
_LOADED: dict[str, dict[str, Any]] = {}       # raw stored text -> validated mapping (small cache)


class StaleVersion(Exception):
    """If-Match named a version that is no longer current."""

    def __init__(self, current: dict[str, Any]) -> None:
        super().__init__(f"the mapping is now at version {current['version']} ({current['etag']})")
        self.current = current


class UnknownVersion(KeyError):
    """No such version in the history."""


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def digest(document: Any) -> str:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def make_etag(version: int, document: Any) -> str:
    return f'"v{version}-{digest(document)}"'


def default_document(connector: str) -> dict[str, Any]:
    """The shipped default as written in mappings/defaults/<connector>.json (raw, not loaded)."""
    from importlib import resources

    default_mapping(connector)  # raises when missing or invalid
    return json.loads(resources.files("mappings").joinpath("defaults", f"{connector}.json").read_text())


def default_record(connector: str) -> dict[str, Any]:
    document = default_document(connector)
    return {"version": 0, "etag": make_etag(0, document), "document": document, "author": "hub",
            "at": None, "comment": "the shipped default", "action": "default"}


def load(raw: bytes | str) -> dict[str, Any]:
    text = raw.decode() if isinstance(raw, bytes) else raw
    return json.loads(text)


def current(redis: Any, connector: str) -> dict[str, Any]:
    """The current record: the latest saved version, else the default as version 0."""
    return record_of(connector, redis.get(CURRENT.format(connector)))


def record_of(connector: str, stored: bytes | str | None) -> dict[str, Any]:
    """`current` from the record as stored (`CURRENT`), e.g. read in a caller's pipeline."""
    return load(stored) if stored else default_record(connector)


def current_mapping(redis: Any, connector: str) -> dict[str, Any]:
    """The mapping a sync renders with (validated and loaded), the admin's or the default."""
    return mapping_of(connector, redis.get(CURRENT.format(connector)))


def mapping_of(connector: str, stored: bytes | str | None) -> dict[str, Any]:
    """`current_mapping` from the current record as stored (read in a caller's pipeline)."""
    if not stored:
        return default_mapping(connector)
    key = stored.decode() if isinstance(stored, bytes) else stored
    mapping = _LOADED.get(key)
    if mapping is None:
        mapping, errors = validate_mapping(json.loads(key)["document"])
        if mapping is None:  # only possible if someone wrote the key by hand
            raise ValueError(f"the stored {connector} mapping is invalid: {errors}")
        if len(_LOADED) > 64:
            _LOADED.clear()
        _LOADED[key] = mapping
    return mapping


def version(redis: Any, connector: str, number: int) -> dict[str, Any]:
    if number == 0:
        return default_record(connector)
    stored = redis.hget(VERSIONS.format(connector), str(number))
    if not stored:
        raise UnknownVersion(number)
    return load(stored)


def history(redis: Any, connector: str, limit: int = 100) -> list[dict[str, Any]]:
    """Newest first, without documents; the default (version 0) last."""
    rows = [load(v) for v in redis.hvals(VERSIONS.format(connector))]
    rows.sort(key=lambda r: r["version"], reverse=True)
    rows = rows[:limit]
    if len(rows) < limit:
        rows.append(default_record(connector))
    head = current(redis, connector)["version"]
    return [{k: v for k, v in r.items() if k != "document"} | {"current": r["version"] == head} for r in rows]


def save(redis: Any, connector: str, document: dict[str, Any], *, author: str, comment: str = "",
         if_match: str | None, action: str = "put", **extra: Any) -> dict[str, Any]:
    """Store `document` as a new version when `if_match` is the current ETag ("*" = any).

    WATCH/MULTI makes the compare and the write one step: two admins saving from the same
    version cannot both win; the loser gets StaleVersion."""
    cur_key, seq_key = CURRENT.format(connector), SEQ.format(connector)
    with redis.pipeline() as pipe:
        while True:
            try:
                pipe.watch(cur_key, seq_key)
                stored = pipe.get(cur_key)
                head = load(stored) if stored else default_record(connector)
                if if_match != "*" and not etag_matches(if_match, head["etag"]):
                    raise StaleVersion(head)
                number = max(int(pipe.get(seq_key) or 0), head["version"]) + 1
                record = {"version": number, "etag": make_etag(number, document), "document": document,
                          "author": author, "at": now_iso(), "comment": comment, "action": action,
                          "previous": head["version"], **extra}
                text = json.dumps(record, separators=(",", ":"), default=str)
                pipe.multi()
                pipe.set(seq_key, number)
                pipe.hset(VERSIONS.format(connector), str(number), text)
                pipe.set(cur_key, text)
                pipe.execute()
                return record
            except WatchError:
                continue


def etag_matches(header: str | None, etag: str) -> bool:
    """If-Match may list several ETags; weak ones (W/) never match a strong comparison."""
    if not header:
        return False
    return any(tag.strip() == etag for tag in header.split(","))


def rollback(redis: Any, connector: str, number: int, *, author: str, comment: str = "",
             if_match: str | None = "*") -> dict[str, Any]:
    """A new version whose document is exactly version `number`'s; history is never rewritten."""
    old = version(redis, connector, number)
    return save(redis, connector, old["document"], author=author, if_match=if_match, action="rollback",
                comment=comment or f"rollback to version {number}", rolled_back_to=number)


# -- contacts a mapping change affects ------------------------------------------------------
def known_contacts(redis: Any, count: int = 1000) -> Iterator[str]:
    """Every contact the hub holds state for, from the contact index (hub.core.timeline), not a SCAN."""
    yield from contacts(redis, count)


def contacts_page(redis: Any, cursor: int, count: int) -> tuple[int, list[str]]:
    """One page of the contact index (hub.core.timeline, most recently active first), not a SCAN:
    (the next cursor, 0 at the end; the emails). The cursor is a position in the index, kept
    between runs; a contact that becomes active meanwhile moves to the front, and its own event
    has already queued its push."""
    ensure(redis)
    page = [e.decode() if isinstance(e, bytes) else e for e in redis.zrevrange(INDEX, cursor, cursor + count - 1)]
    return (cursor + len(page) if len(page) == count else 0), page


def count_contacts(redis: Any) -> int:
    ensure(redis)
    return int(redis.zcard(INDEX))


def mark_dirty(redis: Any, connector: str, batch: int = 1000, progress: Any = None) -> int:
    """Mark every known contact dirty for `connector` (ZADD NX keeps an earlier mark's place) and
    bump its version, so a flush already holding the old state does not clear the new mark. With
    a progress, a step is `batch` contacts."""
    dirty, marked, score = keys.dirty(connector), 0, time.time()
    emails: list[str] = []

    def write(chunk: list[str]) -> None:
        pipe = redis.pipeline(transaction=False)
        pipe.zadd(dirty, {e: score for e in chunk}, nx=True)
        for e in chunk:
            pipe.hincrby(keys.VERSIONS, e, 1)
        pipe.execute()

    for email in known_contacts(redis):
        emails.append(email)
        if len(emails) >= batch:
            write(emails)
            marked += len(emails)
            emails = []
            if progress is not None:
                progress.step(batch)
    if emails:
        write(emails)
        marked += len(emails)
        if progress is not None:
            progress.total = marked
            progress.step(len(emails))
    return marked
