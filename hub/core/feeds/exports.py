"""Exports: the ledger's state as CSV, streamed to an SFTP folder and published atomically.

The file is written under a temporary name (`.<name>.part-<id>`) and renamed when complete, then
its manifest (`<name>.manifest.json`: rows, bytes, SHA-256 of the bytes as uploaded) is published
the same way, so the receiving system never reads half a file and can check what it got.

  referrer-stats  email, the six Splio referral fields, then the export's `extra` field rules
  friends         email, referrer, consent, lists (the list mapping of `lists_from`), promo
                  code, registration, conversion and first order
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import posixpath
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterator
from zoneinfo import ZoneInfo


from hub.core.ledger import get_ledger
from hub.core.mappingstore import count_contacts, current_mapping, known_contacts
from mappings import render, validate_mapping

from hub.core.feeds import sftp
from hub.core import services

# The six referral fields Splio's referral programme defines, fed as the default Splio mapping
# feeds them (docs/feeds.md).
SIX: list[dict[str, Any]] = [
    {"target": "referral_referrer_id", "source": "referrer_id", "transform": "string"},
    {"target": "referral_nb_potential_referred", "source": "invites_sent", "transform": "integer"},
    {"target": "referral_nb_converted_prospects", "source": "friends_registered", "transform": "integer"},
    {"target": "referral_nb_converted_customers", "source": "friends_converted", "transform": "integer"},
    {"target": "referral_turnover_generated", "source": "turnover_amount", "transform": "decimal", "places": 2, "as": "string"},
    {"target": "referral_promocode", "source": "promo_code", "transform": "string"},
]
FRIEND: list[dict[str, Any]] = [
    {"target": "referred_by", "source": "referred_by"},
    {"target": "marketing_opt_in", "source": "marketing_opt_in", "transform": "boolean"},
    {"target": "promo_code", "source": "promo_code"},
    {"target": "registered_at", "source": "registered_at"},
    {"target": "converted_at", "source": "converted_at"},
    {"target": "first_order_id", "source": "first_order_id"},
    {"target": "first_order_total", "source": "first_order_total", "transform": "decimal", "places": 2, "as": "string"},
    {"target": "first_order_currency", "source": "first_order_currency"},
]
READ_BATCH = 500


def columns_mapping(export: dict[str, Any]) -> dict[str, Any]:
    """The field rules an export renders each row with, validated as a mapping document."""
    rules = SIX + list(export.get("extra") or []) if export["kind"] == "referrer-stats" else FRIEND
    document = {"connector": f"export:{export['name']}", "identity": {"field": "email", "source": "email"},
                "fields": [{("as" if k == "as_" else k): v for k, v in r.items()} for r in rules]}
    mapping, errors = validate_mapping(document)
    if mapping is None:
        raise ValueError(f"export {export['name']}: {errors}")
    return mapping


def header(export: dict[str, Any], mapping: dict[str, Any]) -> list[str]:
    names = ["email"] + [rule["target"] for rule in mapping["fields"]]
    if export["kind"] == "friends":
        names.insert(names.index("promo_code"), "lists")
        names.insert(names.index("converted_at"), "converted")
    return names


def text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def states(progress: Any = None) -> Iterator[dict[str, Any]]:
    """Every contact's current state, read in batches (never all at once); a step a batch."""
    ledger, batch, redis = get_ledger(), [], services.current().redis
    if progress is not None:
        progress.resume = ("Nothing was published (the part-written file was removed); run the export "
                           "again: it is a snapshot, so it starts over.")
        progress.start(count_contacts(redis), "contacts")
    for email in known_contacts(redis):
        batch.append(email)
        if len(batch) >= READ_BATCH:
            yield from (s for s in ledger.states(batch).values() if s)
            if progress is not None:
                progress.step(len(batch))
            batch = []
    if batch:
        yield from (s for s in ledger.states(batch).values() if s)
        if progress is not None:
            progress.total = progress.done + len(batch)
            progress.step(len(batch))


def rows(export: dict[str, Any], progress: Any = None) -> Iterator[list[str]]:
    """The export's rows from the ledger's state, streamed."""
    mapping = columns_mapping(export)
    names = header(export, mapping)
    lists = current_mapping(services.current().redis, export.get("lists_from", "splio")) \
        if export["kind"] == "friends" else None
    for state in states(progress):
        if export["kind"] == "referrer-stats" and not state.get("is_referrer"):
            continue
        if export["kind"] == "friends" and not state.get("is_friend"):
            continue
        rendered = render(mapping, state)["fields"]
        rendered["email"] = state["email"]
        if lists is not None:
            rendered["lists"] = ";".join(sorted(render(lists, state)["lists"]))
            rendered["converted"] = bool(state.get("converted_at"))
        yield [text(rendered.get(name)) for name in names]


class Hashing(io.RawIOBase):
    """A write-only stream that counts and hashes what passes through to `target`."""

    def __init__(self, target: Any) -> None:
        self.target, self.sha256, self.size = target, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        data = bytes(data)
        self.sha256.update(data)
        self.size += len(data)
        self.target.write(data)
        return len(data)


def filename(export: dict[str, Any], now: datetime) -> str:
    local = now.astimezone(ZoneInfo(export.get("timezone") or "UTC"))
    name = export["filename"].format(name=export["name"], date=local.strftime("%Y%m%d"), time=local.strftime("%H%M%S"))
    return name + ".gz" if export.get("gzip") and not name.endswith(".gz") else name


def write(handle: Any, export: dict[str, Any], progress: Any = None) -> tuple[int, Hashing]:
    """Stream the CSV (gzipped when asked) into `handle`; (rows, the hashing stream)."""
    raw = Hashing(handle)
    binary: Any = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if export.get("gzip") else raw
    out = io.TextIOWrapper(binary, encoding="utf-8", newline="", write_through=False)
    writer = csv.writer(out)
    writer.writerow(header(export, columns_mapping(export)))
    count = 0
    for row in rows(export, progress):
        writer.writerow(row)
        count += 1
    out.flush()
    out.detach()
    if export.get("gzip"):
        binary.close()
    return count, raw


def publish(client: Any, folder: str, name: str, fill: Any) -> Any:
    """Write `name` through `fill(handle)` under a temporary name, then rename it into place."""
    temp = posixpath.join(folder, f".{name}.part-{uuid.uuid4().hex[:8]}")
    try:
        with client.open(temp, "wb") as handle:
            handle.set_pipelined(True)
            result = fill(handle)
        sftp.replace(client, temp, posixpath.join(folder, name))
    except BaseException:
        try:
            client.remove(temp)
        except (OSError, EOFError, Exception):  # noqa: BLE001 - the connection may be gone
            pass
        raise
    return result


def run(export: dict[str, Any], now: datetime | None = None, progress: Any = None) -> dict[str, Any]:
    """Build and upload one export; its summary (what the manifest says)."""
    now = now or datetime.now(timezone.utc)
    name = filename(export, now)
    with sftp.connect(export["sftp"]) as client:
        sftp.ensure_dir(client, export["folder"])
        count, stream = publish(client, export["folder"], name, lambda handle: write(handle, export, progress))
        manifest = {"export": export["name"], "kind": export["kind"], "file": name, "rows": count,
                    "bytes": stream.size, "sha256": stream.sha256.hexdigest(), "gzip": bool(export.get("gzip")),
                    "created_at": now.strftime("%Y-%m-%dT%H:%M:%SZ")}
        body = json.dumps(manifest, indent=2).encode()
        publish(client, export["folder"], f"{name}.manifest.json", lambda handle: handle.write(body))
    return manifest
