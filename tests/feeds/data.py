"""Referral activity files for the tests, with the counts each referrer must end with, worked
out from the rows themselves (not by the hub's code)."""
from __future__ import annotations

import csv
import io
import random
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

HEADER = ["referrer", "friend", "event_type", "order_id", "total", "currency", "date", "friend_opt_in", "promo_code"]
# One bad row of each kind: (the row's fields, the column the report must name).
BAD = [
    ({"friend": "not-an-email"}, "friend"),
    ({"total": "12,50"}, "total"),
    ({"currency": "pounds"}, "currency"),
    ({"event_type": "clicked"}, "event_type"),
    ({"date": "yesterday"}, "date"),
    ({"referrer": "@nobody"}, "referrer"),
]


@dataclass
class Expected:
    """What the file must leave: per referrer (invites, registered, converted, turnover)."""

    referrers: dict[str, list] = field(default_factory=dict)
    friends: dict[str, dict] = field(default_factory=dict)
    bad: dict[int, str] = field(default_factory=dict)     # record number -> column
    rows: int = 0
    good: int = 0          # rows that are valid events (duplicates included)
    duplicates: int = 0    # valid rows whose natural key came earlier in the file


def activity(path: Path, rows: int, referrers: int = 1000, friends_each: int = 8, bad_every: int = 200,
             dup_every: int = 50, seed: int = 7, prefix: str = "ref") -> Expected:
    """Write a referral activity file of `rows` data rows; the counts it must produce."""
    rng = random.Random(seed)
    names = [f"{prefix}{i:04d}@shop.example" for i in range(referrers)]
    friends = {r: [f"{prefix}-friend{i:04d}.{j}@mail.example" for j in range(friends_each)] for i, r in enumerate(names)}
    out = Expected()
    invited: dict[str, set[str]] = defaultdict(set)
    registered: dict[str, set[str]] = defaultdict(set)
    converted: dict[str, set[str]] = defaultdict(set)
    turnover: dict[str, Decimal] = defaultdict(Decimal)
    seen: set[tuple[str, ...]] = set()
    written: list[dict[str, str]] = []
    order = 0
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, HEADER, lineterminator="\r\n")
    writer.writeheader()
    for index in range(rows):
        number = index + 2
        if index % bad_every == bad_every - 1:
            fields, column = BAD[(index // bad_every) % len(BAD)]
            base = {"referrer": names[0], "friend": friends[names[0]][0], "event_type": "converted",
                    "order_id": f"bad-{index}", "total": "10.00", "currency": "GBP", "date": "2026-11-20T10:00:00Z"}
            writer.writerow({**base, **fields})
            out.bad[number] = column
            continue
        if written and index % dup_every == dup_every - 1:
            row = rng.choice(written)
            writer.writerow(row)
            out.good += 1
            out.duplicates += 1
            continue
        referrer = names[rng.randrange(referrers)]
        friend = rng.choice(friends[referrer])
        when = f"2026-11-{1 + index % 28:02d}T{index % 24:02d}:{index % 60:02d}:00Z"
        kind = rng.choices(["invited", "registered", "converted"], [10, 15, 75])[0]
        row = {"referrer": referrer, "friend": friend, "event_type": kind, "order_id": "", "total": "",
               "currency": "", "date": when, "friend_opt_in": "", "promo_code": ""}
        if kind == "converted":
            order += 1
            row.update(order_id=f"{prefix}-ord-{order}", total=f"{rng.randrange(100, 20000) / 100:.2f}", currency="GBP")
        elif kind == "registered":
            row.update(friend_opt_in=rng.choice(["true", "false"]), promo_code=f"P-{friend[:10]}")
        key = (row["referrer"], row["friend"], row["order_id"], kind)
        if key in seen:
            out.duplicates += 1
        seen.add(key)
        writer.writerow(row)
        written.append(row)
        out.good += 1
        if kind == "invited":
            invited[referrer].add(friend)
        else:
            registered[referrer].add(friend)
        if kind == "converted":
            converted[referrer].add(friend)
            turnover[referrer] += Decimal(row["total"])
        if index % 4096 == 0:
            path_write(path, buffer)
    path_write(path, buffer)
    out.rows = rows
    for r in names:
        if invited[r] or registered[r]:
            out.referrers[r] = [len(invited[r]), len(registered[r]), len(converted[r]), turnover[r]]
    return out


def path_write(path: Path, buffer: io.StringIO) -> None:
    """Append what the buffer holds to the file (the file never sits whole in memory)."""
    with open(path, "a", encoding="utf-8", newline="") as handle:
        handle.write(buffer.getvalue())
    buffer.seek(0)
    buffer.truncate()


def report(path: Path) -> dict[int, list[str]]:
    """An errors report: record number -> the columns it names."""
    out: dict[int, list[str]] = defaultdict(list)
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == ["row", "column", "reason"]
        for line in reader:
            assert line["reason"], line
            out[int(line["row"])].append(line["column"])
    return dict(out)
