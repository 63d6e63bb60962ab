"""The standard workload as a seeded event stream, so every figure is measured on the same work.

Each referrer r of R (BENCHMARK.md): enrolled, 5 invites, 2 friends registered (A opts in to
marketing, B does not; each gets a promo code), friend A converts (20.00-200.00, GBP; every 10th
referrer's friend pays in EUR). 9R events, then what real senders add:
- 5% of events sent a second time with the same id (a client retry, a few requests later);
- 2% of conversions sent again with a new event id but the same order id (and occurred_at);
- the stories interleaved in time order, and 10% of events swapped with the previous event of
  their own story, so a conversion may arrive before the registration it belongs to.

The timeline is a busy week: enrolments spread evenly over 7 days; invites within the hour after
enrolment; friends register 30 minutes to 6 hours after it; friend A converts up to 6 hours after
registering. Replayed at full speed the week lasts seconds, and one story a few tenths of one.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

WEEK_START = datetime(2026, 11, 16, tzinfo=timezone.utc)
HOUR = 3600.0
RETRY_SHARE = 0.05
ORDER_AGAIN_SHARE = 0.02
SWAP_SHARE = 0.10
RETRY_DISTANCE = (1, 300)        # a retry lands this many events after the original
NAMES = ("Anna", "Ben", "Cleo", "Dan", "Eve", "Finn", "Gia", "Hugo", "Ines", "Jon", "Kai", "Lea")


@dataclass
class Workload:
    referrers: int
    seed: int
    ns: str
    stream: list[dict[str, Any]] = field(default_factory=list)   # as sent, duplicates included
    story_events: int = 0                                        # 9R

    @property
    def emails(self) -> list[str]:
        return sorted({e[p]["email"] for e in self.stream for p in ("referrer", "friend") if p in e})


def stamp(seconds: float) -> str:
    """occurred_at with millisecond precision, UTC."""
    moment = WEEK_START + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def story(r: int, ns: str, rng: random.Random) -> list[tuple[float, dict[str, Any]]]:
    """One referrer's nine events as (seconds into the week, event), in story order."""
    ref_email = f"{ns}ref{r:06d}@bench.example"
    referrer = {"email": ref_email, "first_name": rng.choice(NAMES), "referrer_id": f"{ns}R{r:06d}",
                "share_url": f"https://shop.example/r/{ns}{r:06d}"}
    t0 = rng.uniform(0, 7 * 24 * HOUR - 13 * HOUR)
    out: list[tuple[float, dict[str, Any]]] = [(t0, {"type": "referrer.enrolled", "referrer": referrer})]
    for _ in range(5):
        out.append((t0 + rng.uniform(1, HOUR), {"type": "referral.invited", "referrer": {"email": ref_email}}))
    registered = {}
    for tag, opt_in in (("a", True), ("b", False)):
        t = t0 + rng.uniform(0.5 * HOUR, 6 * HOUR)
        registered[tag] = t
        friend = {"email": f"{ns}f{tag}{r:06d}@bench.example", "first_name": rng.choice(NAMES),
                  "marketing_opt_in": opt_in, "promo_code": f"{ns.upper()}R{r:06d}-{tag.upper()}"}
        out.append((t, {"type": "friend.registered", "referrer": {"email": ref_email}, "friend": friend}))
    total = f"{rng.randint(2000, 20000) / 100:.2f}"
    order = {"id": f"{ns}ord{r:06d}", "total": total, "currency": "EUR" if r % 10 == 9 else "GBP",
             "coupon_code": f"{ns.upper()}R{r:06d}-A"}
    out.append((registered["a"] + rng.uniform(60, 6 * HOUR), {
        "type": "friend.converted", "referrer": {"email": ref_email},
        "friend": {"email": f"{ns}fa{r:06d}@bench.example"}, "order": order}))
    out.sort(key=lambda pair: pair[0])
    for k, (t, event) in enumerate(out):
        event["id"] = f"{ns}e{r:06d}-{k}"
        event["occurred_at"] = stamp(t)
        event["programme"] = "bench"
    return out


def build(referrers: int, seed: int = 42, ns: str = "") -> Workload:
    """The stream as the senders deliver it. `ns` prefixes ids and emails, so several runs of
    the same workload can go to one hub without being each other's duplicates."""
    rng = random.Random(f"{seed}:{ns}")
    timed: list[tuple[float, int, dict[str, Any]]] = []
    for r in range(referrers):
        timed += [(t, r, e) for t, e in story(r, ns, rng)]
    timed.sort(key=lambda item: item[0])
    stream = [e for _, _, e in timed]
    swap_in_story(stream, [r for _, r, _ in timed], rng)
    stream = add_duplicates(stream, rng)
    return Workload(referrers=referrers, seed=seed, ns=ns, stream=stream, story_events=len(timed))


def swap_in_story(stream: list[dict[str, Any]], owner: list[int], rng: random.Random) -> None:
    """10% of events trade places with the previous event of their own story."""
    last: dict[int, int] = {}
    moved: set[int] = set()
    for i, r in enumerate(owner):
        j = last.get(r)
        if j is not None and i not in moved and j not in moved and rng.random() < SWAP_SHARE:
            stream[i], stream[j] = stream[j], stream[i]
            moved.update((i, j))
        last[r] = i


def add_duplicates(stream: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """Client retries (same id) and conversions reported again (new id, same order)."""
    later: dict[int, list[dict[str, Any]]] = {}
    for i, event in enumerate(stream):
        if rng.random() < RETRY_SHARE:
            later.setdefault(i + rng.randint(*RETRY_DISTANCE), []).append(dict(event))
        if event["type"] == "friend.converted" and rng.random() < ORDER_AGAIN_SHARE:
            later.setdefault(i + rng.randint(*RETRY_DISTANCE), []).append({**event, "id": event["id"] + "-again"})
    out: list[dict[str, Any]] = []
    for i, event in enumerate(stream):
        out.append(event)
        out += later.pop(i, [])
    for i in sorted(later):
        out += later[i]
    return out
