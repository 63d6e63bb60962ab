"""A feed mapping's versions in Redis, as field mappings keep theirs (hub/core/mappingstore.py):
every save a new version with an ETag, If-Match against lost updates, rollback as a new version.
Version 0 is the mapping the feeds file names (a preset or a document), never stored.

  hub:feeds:<feed>:mapping:current    the current record (JSON)
  hub:feeds:<feed>:mapping:versions   hash version -> record
  hub:feeds:<feed>:mapping:seq        the last version number given out
"""
from __future__ import annotations

import json
from typing import Any

from redis.exceptions import WatchError

from hub.core.mappingstore import StaleVersion, etag_matches, make_etag, now_iso

from hub.core.feeds.mapping import resolve, validate_feed_mapping
from hub.core import keys as names


def keys(feed: str) -> tuple[str, str, str]:
    base = names.FEEDS_MAPPING.format(feed)
    return f"{base}:current", f"{base}:versions", f"{base}:seq"


def default_record(feed: dict[str, Any]) -> dict[str, Any]:
    document = feed["mapping"]
    return {"version": 0, "etag": make_etag(0, document), "document": document, "author": "feeds file",
            "at": None, "comment": "as HUB_FEEDS_FILE names it", "action": "default"}


def current(redis: Any, feed: dict[str, Any]) -> dict[str, Any]:
    stored = redis.get(keys(feed["name"])[0])
    return json.loads(stored) if stored else default_record(feed)


def current_mapping(redis: Any, feed: dict[str, Any]) -> dict[str, Any]:
    """The validated mapping the poller reads rows with."""
    return resolve(current(redis, feed)["document"], where=f"feed {feed['name']} mapping")


def version(redis: Any, feed: dict[str, Any], number: int) -> dict[str, Any]:
    if number == 0:
        return default_record(feed)
    stored = redis.hget(keys(feed["name"])[1], str(number))
    if not stored:
        raise KeyError(f"the {feed['name']} feed mapping has no version {number}")
    return json.loads(stored)


def history(redis: Any, feed: dict[str, Any]) -> list[dict[str, Any]]:
    rows = sorted((json.loads(v) for v in redis.hvals(keys(feed["name"])[1])), key=lambda r: -r["version"])
    head = current(redis, feed)["version"]
    return [{k: v for k, v in r.items() if k != "document"} | {"current": r["version"] == head}
            for r in rows + [default_record(feed)]]


def save(redis: Any, feed: dict[str, Any], document: Any, *, author: str, comment: str = "",
         if_match: str | None = "*", action: str = "put") -> dict[str, Any]:
    """Validate `document` (ValueError listing the paths) and store it as a new version."""
    if not isinstance(document, str):
        _, errors = validate_feed_mapping(document)
        if errors:
            raise ValueError("; ".join(f"{e['path']}: {e['message']}" for e in errors))
    else:
        resolve(document)
    cur_key, versions_key, seq_key = keys(feed["name"])
    with redis.pipeline() as pipe:
        while True:
            try:
                pipe.watch(cur_key, seq_key)
                stored = pipe.get(cur_key)
                head = json.loads(stored) if stored else default_record(feed)
                if if_match != "*" and not etag_matches(if_match, head["etag"]):
                    raise StaleVersion(head)
                number = max(int(pipe.get(seq_key) or 0), head["version"]) + 1
                record = {"version": number, "etag": make_etag(number, document), "document": document,
                          "author": author, "at": now_iso(), "comment": comment, "action": action,
                          "previous": head["version"]}
                text = json.dumps(record, separators=(",", ":"))
                pipe.multi()
                pipe.set(seq_key, number)
                pipe.hset(versions_key, str(number), text)
                pipe.set(cur_key, text)
                pipe.execute()
                return record
            except WatchError:
                continue


def rollback(redis: Any, feed: dict[str, Any], number: int, *, author: str) -> dict[str, Any]:
    old = version(redis, feed, number)
    return save(redis, feed, old["document"], author=author, action="rollback", comment=f"rollback to version {number}")
