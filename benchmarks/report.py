"""The report: JSON with every figure and how the floor was computed, and a short Markdown table."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPORTS = Path(__file__).resolve().parent / "reports"


def fmt(value: Any, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:,}{unit}" if isinstance(value, int) else f"{value}{unit}"


def table(result: dict[str, Any]) -> str:
    """The Markdown the README shows."""
    lines = [f"R = {result['referrers']:,} referrers: {result['events']['story']:,} story events, "
             f"{result['events']['sent']:,} sent with duplicates and reordering.", "",
             "| Measure | Result | Target |", "|---|---|---|"]
    batch = result.get("ingest_batch") or {}
    lines.append(f"| Ingest, batch mode (4 clients x 100 events) | {fmt(batch.get('events_per_s'))} events/s "
                 f"(p99 {fmt(batch.get('p99_ms'))} ms a request) | >= 5,000 events/s |")
    single = result.get("ingest_single")
    if single:
        lines.append(f"| Ingest, single mode ({single['clients']} clients, 1 event a request) | {fmt(single['requests_per_s'])} requests/s, "
                     f"p50 {single['p50_ms']} ms, p99 {single['p99_ms']} ms | p99 < 25 ms |")
        bare = single.get("bare")
        if bare:
            lines.append(f"| Single mode against a bare endpoint (same server settings, clients and requests, "
                         f"in alternating rounds): hub p99 / bare p99 | {single['p99_ratio']} (bare: "
                         f"p50 {bare['p50_ms']} ms, p99 {bare['p99_ms']} ms) | <= {single['p99_ratio_target']} |")
    drain = result.get("drain") or {}
    lines.append(f"| Drain, at the vendors (first event sent -> last write before every vendor holds the final "
                 f"state) | {fmt(drain.get('seconds'), ' s')} (ingest took {fmt(drain.get('ingest_s'), ' s')}; the hub's "
                 f"dirty sets emptied at {fmt(drain.get('hub_dirty_sets_s'), ' s')}) vs floor {fmt(drain.get('floor_s'), ' s')} "
                 f"(bound by {result.get('floor', {}).get('bound_by', '?')}): ratio {fmt(drain.get('ratio'))} | <= 1.15x floor |")
    for vendor, calls in (result.get("calls") or {}).items():
        lines.append(f"| Vendor calls per 1,000 events: {vendor} | {calls['per_1000_events']} "
                     f"({calls['total']:,} calls, {calls['total'] / max(calls['floor'], 1):.2f}x the floor) | "
                     f"floor {calls['floor_per_1000_events']} ({calls['floor']:,}); <= 1.10x |")
    fresh = result.get("freshness")
    if fresh:
        slowest = max(fresh["vendors"], key=lambda v: fresh["vendors"][v]["p95_s"])
        lines.append(f"| Freshness at {fresh['rate']} events/s (202 -> visible at every vendor) | p50 {fresh['p50_s']} s, "
                     f"p95 {fresh['p95_s']} s (slowest: {slowest} p95 {fresh['vendors'][slowest]['p95_s']} s) | p95 < 5 s |")
    correct = result.get("correctness") or {}
    lines.append(f"| Correctness: contacts whose fields, lists or consent differ | {fmt(correct.get('mismatched_total'))} "
                 f"(of {sum(v['contacts'] for v in correct.values() if isinstance(v, dict)):,} x vendor) | 0 |")
    m = result.get("machine") or {}
    lines += ["", f"Machine: {m.get('cores')} cores, Python {m.get('python')}, Redis {m.get('redis')} "
                  f"({m.get('redis_kind')}); the load generator shares the same cores. Load average at start "
                  f"{m.get('load_average_at_start')}, at end {m.get('load_average_1_5_15')} (1/5/15 min)."]
    return "\n".join(lines) + "\n"


def write(result: dict[str, Any], directory: Path = REPORTS) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / "latest.json", directory / "latest.md"
    json_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    md_path.write_text(table(result))
    from .charts import draw

    draw(result, directory)
    return json_path, md_path
