"""The poll job: list a feed's folder, claim each new file once, stream it through the ledger.

Per file:
  1. claim it (SET NX with a lease, renewed while importing): however many workers poll, one
     imports it; a worker that dies lets the lease lapse and the next poll starts the file again.
  2. read it once to hash it and check that it decodes: a file already finished (same content
     hash) is only moved; a file in the wrong encoding fails whole, before any row is applied.
  3. stream it: rows in batches, each validated by the event schema /v1/events uses, the good
     ones applied by the ledger in one call per batch with the flushes queued, as /v1/events does.
     A cut connection ends the import mid-file; nothing of the batch in hand was applied, the file
     stays, and the next poll reads it from the start (rows already applied are duplicates).
  4. write `<name>.errors.csv` (row, column, reason) beside the file in processed/ (or failed/),
     record the hash as finished, then move the file.
"""
from __future__ import annotations

import codecs
import csv
import fnmatch
import hashlib
import io
import json
import posixpath
import tempfile
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Iterator


from hub.core.ledger import get_ledger
from hub.core.progress import Stopped
from hub.core.queue import get_queues
from hub.core.schemas import load_events

from hub.core.feeds import sftp, status
from hub.core.feeds.mapping import Row, build, column_for
from hub.core import keys
from hub.core import services

LEASE = 300                     # seconds a claim lasts without renewal
CHUNK = 1 << 16
REPORT = ("row", "column", "reason")


class Unreadable(Exception):
    """The whole file cannot be imported (encoding, missing mandatory columns)."""


def claim_key(feed: str, name: str) -> str:
    return keys.FEEDS_CLAIM.format(feed, name)


def done_key(feed: str) -> str:
    return keys.FEEDS_DONE.format(feed)


def redis() -> Any:
    return services.current().redis


def claim(feed: str, name: str) -> str | None:
    token = uuid.uuid4().hex
    return token if redis().set(claim_key(feed, name), token, nx=True, ex=LEASE) else None


_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def renew(feed: str, name: str, token: str) -> None:
    if not redis().eval(_RENEW, 1, claim_key(feed, name), token, LEASE):
        raise sftp.SFTPError(f"lost the claim on {name} (the lease lapsed); another poll will import it")


def release(feed: str, name: str, token: str) -> None:
    redis().eval(_RELEASE, 1, claim_key(feed, name), token)


def poll(feed: dict[str, Any], mapping: dict[str, Any], progress: Any = None) -> dict[str, Any]:
    """One pass over the feed's folder; a summary per file handled."""
    handled: list[dict[str, Any]] = []
    with sftp.connect(feed["sftp"]) as client:
        for name, size, mtime in sorted(sftp.listdir(client, feed["folder"])):
            if not fnmatch.fnmatch(name, feed["pattern"]) or name.endswith(".errors.csv") or name.startswith("."):
                continue
            token = claim(feed["name"], name)
            if token is None:
                continue
            try:
                handled.append(import_file(client, feed, mapping, name, mtime, token, progress))
            except FileNotFoundError:
                continue            # another worker finished it between our listing and our claim
            finally:
                release(feed["name"], name, token)
    return {"feed": feed["name"], "files": handled}


def import_file(client: Any, feed: dict[str, Any], mapping: dict[str, Any], name: str, mtime: int,
                token: str, progress: Any = None) -> dict[str, Any]:
    path = posixpath.join(feed["folder"], name)
    try:
        digest = scan(client, path, mapping["encoding"], feed["read_window"])
    except Unreadable as exc:
        return finish(client, feed, name, "failed", {"rows": 0}, [(0, "", str(exc))], None)
    if redis().hexists(done_key(feed["name"]), digest):
        status.count(redis(), feed["name"], files_skipped=1)
        move(client, feed["folder"], name, "processed")
        return {"file": name, "outcome": "already_imported", "sha256": digest}
    status.start(redis(), feed["name"], name)
    when = datetime.fromtimestamp(mtime or time.time(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with tempfile.SpooledTemporaryFile(max_size=1 << 20, mode="w+", newline="") as errors:
        try:
            counts = stream(client, feed, mapping, path, name, when, errors, token, progress)
        except Stopped:
            status.interrupted(redis(), feed["name"], name, "stopped on request")
            raise
        except Unreadable as exc:
            return finish(client, feed, name, "failed", {"rows": 0}, [(1, "", str(exc))], None)
        except (sftp.SFTPError, *sftp.BROKEN) as exc:
            status.interrupted(redis(), feed["name"], name, str(exc))
            raise sftp.SFTPError(f"{name}: the transfer broke off ({exc}); the file stays for the next poll") from None
        return finish(client, feed, name, "processed", counts, errors, digest)


def scan(client: Any, path: str, encoding: str, window: int) -> str:
    """The file's SHA-256, after checking every byte decodes in the mapping's encoding."""
    digest, decoder = hashlib.sha256(), codecs.getincrementaldecoder(encoding)()
    with sftp.open_reader(client, path, window) as handle:
        offset = 0
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                raise Unreadable(f"not {encoding}: undecodable byte at offset {offset + exc.start}") from None
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            raise Unreadable(f"not {encoding}: the file ends mid-character") from None
    return digest.hexdigest()


def rows(handle: Any, mapping: dict[str, Any]) -> Iterator[tuple[int, dict[str, str]]]:
    """(record number, row) for each data row; the header is record 1."""
    text = io.TextIOWrapper(handle, encoding=mapping["encoding"], newline="")
    reader = csv.reader(text, delimiter=mapping["delimiter"])
    header = [h.strip() for h in next(reader, [])]
    missing = [c["column"] for c in mapping["columns"] if c["required"] and c["column"] not in header]
    if missing:
        raise Unreadable(f"missing mandatory column(s): {', '.join(missing)}; the header has: {', '.join(header) or '(nothing)'}")
    for number, values in enumerate(reader, start=2):
        if not values or values == [""]:
            continue
        yield number, dict(zip(header, values))


class Applier:
    """Applies validated batches on one background thread, in order, while the caller reads and
    validates the next batch: Redis runs the ledger's script while Python parses. At most one
    batch is in flight, and `drain` waits for it, so when reading fails every batch handed over
    has been applied whole or not at all (each event is one atomic ledger step)."""

    def __init__(self, feed: str, name: str, token: str, counts: dict[str, int]) -> None:
        self.services = services.current()   # the thread below runs with the caller's services
        self.feed, self.name, self.token, self.counts = feed, name, token, counts
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"feed-{feed}")
        self.pending: Future[None] | None = None

    def submit(self, events: list[dict[str, Any]], rows: int, bad: int) -> None:
        self.drain()
        self.pending = self.pool.submit(self._apply, events, rows, bad)

    def drain(self) -> None:
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()

    def close(self) -> None:
        try:
            self.drain()
        finally:
            self.pool.shutdown(wait=True)

    def _apply(self, events: list[dict[str, Any]], rows: int, bad: int) -> None:
        with services.using(self.services):
            accepted = 0
            if events:
                queues = get_queues()
                outcomes, fresh = get_ledger().apply_each(events, queues.connectors, "feed", queues.flags())
                queues.enqueue_flushes([queues.connectors[i] for i in fresh])
                accepted = sum(outcomes)
            self.counts["accepted"] += accepted
            self.counts["duplicates"] += len(events) - accepted
            status.count(redis(), self.feed, rows=rows, accepted=accepted, duplicates=len(events) - accepted,
                         errors=bad)
            renew(self.feed, self.name, self.token)
            status.progress(redis(), self.feed, self.name, self.counts)


def stream(client: Any, feed: dict[str, Any], mapping: dict[str, Any], path: str, name: str, when: str,
           errors: Any, token: str, progress: Any = None) -> dict[str, int]:
    writer = csv.writer(errors)
    counts = {"rows": 0, "accepted": 0, "duplicates": 0, "errors": 0}
    batch: list[tuple[int, dict[str, Any]]] = []
    applier = Applier(feed["name"], name, token, counts)
    try:
        with sftp.open_reader(client, path, feed["read_window"]) as handle:
            if progress is not None:
                progress.label = f"import {name}"
                progress.resume = (f"{name} stays in the folder: the next poll reads it again from the start, and "
                                   "the rows already applied count as duplicates (nothing is counted twice).")
                progress.start(int(getattr(handle.raw, "size", 0)), "bytes")
            for number, row in rows(handle, mapping):
                counts["rows"] += 1
                try:
                    batch.append((number, build(mapping, feed["name"], row, when)))
                except Row as exc:
                    writer.writerow((number, exc.column, exc.reason))
                    counts["errors"] += 1
                    status.count(redis(), feed["name"], rows=1, errors=1)
                if len(batch) >= feed["batch"]:
                    validate(mapping, batch, counts, writer, applier)
                    batch = []
                    if progress is not None:
                        progress.step(handle.tell() - progress.done, note=f"{counts['rows']:,} rows")
            validate(mapping, batch, counts, writer, applier)
            if progress is not None:
                progress.total = max(progress.total or 0, progress.done)
                progress.step(progress.total - progress.done, note=f"{counts['rows']:,} rows")
    finally:
        applier.close()
    status.progress(redis(), feed["name"], name, counts)
    return counts


def validate(mapping: dict[str, Any], batch: list[tuple[int, dict[str, Any]]], counts: dict[str, int],
             writer: Any, applier: Applier) -> None:
    """Validate a batch with the /v1/events schema; hand the good rows to be applied as
    /v1/events applies them (the ledger's batch step, then the flushes queued)."""
    if not batch:
        return
    events, errors = load_events([event for _, event in batch])
    bad: dict[int, list[tuple[str, str]]] = {}
    for error in errors:
        bad.setdefault(error["index"], []).append((error["field"], error["message"]))
    for index, problems in sorted(bad.items()):
        number, event = batch[index]
        for path, message in problems:
            writer.writerow((number, column_for(mapping, event["type"], path), message))
        counts["errors"] += 1
    applier.submit(events, len(batch), len(bad))


def finish(client: Any, feed: dict[str, Any], name: str, outcome: str, counts: dict[str, int],
           errors: Any, digest: str | None) -> dict[str, Any]:
    """Write the report (when there is one), record the file as finished, move it."""
    folder = posixpath.join(feed["folder"], outcome)
    sftp.ensure_dir(client, folder)
    if isinstance(errors, list):
        lines = errors
        errors = io.StringIO()
        csv.writer(errors).writerows(lines)
        counts = {**counts, "errors": len(lines)}
    report = None
    if errors.tell():
        report = posixpath.join(folder, f"{name}.errors.csv")
        errors.seek(0)
        upload_text(client, report, errors)
    summary = {"file": name, "outcome": outcome, **counts, "report": report, "sha256": digest,
               "at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    if digest:
        redis().hset(done_key(feed["name"]), digest, json.dumps(summary))
    move(client, feed["folder"], name, outcome)
    status.finished(redis(), feed["name"], summary)
    return summary

def upload_text(client: Any, path: str, text: Any) -> None:
    """The report (header, then `text`'s lines) under a temporary name, then renamed: a reader
    never sees half a report."""
    temp = posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.part-{uuid.uuid4().hex[:8]}")
    with client.open(temp, "wb") as handle:
        handle.set_pipelined(True)
        handle.write((",".join(REPORT) + "\r\n").encode())
        while chunk := text.read(CHUNK):
            handle.write(chunk.encode())
    sftp.replace(client, temp, path)

def move(client: Any, folder: str, name: str, outcome: str) -> None:
    target_dir = posixpath.join(folder, outcome)
    sftp.ensure_dir(client, target_dir)
    sftp.replace(client, posixpath.join(folder, name), posixpath.join(target_dir, name))
