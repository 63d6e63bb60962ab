"""The report: JSON with every figure and how the floor was computed, and a short Markdown table."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .compare import judged_floor

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
    cpu = result.get("cpu_per_event_us")
    if cpu:
        lines.append(f"| CPU per accepted event, batch phase (HTTP + Redis + workers) | {fmt(cpu['total'], ' µs')} "
                     f"(HTTP {fmt(cpu['http'])}, Redis {fmt(cpu['redis'])}, workers {fmt(cpu['workers'])}; "
                     f"{cpu['accepted_events']:,} accepted) | |")
    for fresh in freshness_runs(result):
        vendors = fresh.get("vendors") or {}
        slowest = max(vendors, key=lambda v: seconds(vendors[v].get("p95_s"))) if vendors else None
        slow = f" (slowest: {slowest} p95 {fmt(vendors[slowest].get('p95_s'), ' s')})" if slowest else ""
        cannot = [v for v, f in (fresh.get("limits") or {}).items() if not f.get("can_meet")]
        limits = f"; declared limits rule out: {', '.join(cannot)}" if cannot else ""
        lines.append(f"| Freshness at {fresh['rate']} events/s (202 -> visible at every vendor) | p50 "
                     f"{fmt(fresh.get('p50_s'), ' s')}, p95 {fmt(fresh.get('p95_s'), ' s')}{slow}{limits} | p95 < 5 s |")
    memory = result.get("redis_memory")
    if memory:
        projection = memory["projection_10m"]
        lines.append(f"| Redis memory per referrer after the drain (used_memory / dataset) | "
                     f"{fmt(round(memory['used_memory_per_referrer']))} / {fmt(round(memory['used_memory_dataset_per_referrer']))} "
                     f"bytes; 10M referrers: {gib(projection['used_memory_bytes'])} (sync path "
                     f"{gib(projection['sync_path_bytes'])}) | |")
    correct = result.get("correctness") or {}
    lines.append(f"| Correctness: contacts whose fields, lists or consent differ | {fmt(correct.get('mismatched_total'))} "
                 f"(of {sum(v['contacts'] for v in correct.values() if isinstance(v, dict)):,} x vendor) | 0 |")
    lines += floors_table(result) + freshness_detail(result) + memory_detail(result)
    compared = compare_table(result)
    if compared:
        lines += ["", compared.rstrip("\n")]
    m = result.get("machine") or {}
    lines += ["", f"Machine: {m.get('cores')} cores, Python {m.get('python')}, Redis {m.get('redis')} "
                  f"({m.get('redis_kind')}); the load generator shares the same cores. Load average at start "
                  f"{m.get('load_average_at_start')}, at end {m.get('load_average_1_5_15')} (1/5/15 min)."]
    return "\n".join(lines) + "\n"


def seconds(value: Any) -> float:
    """A p95 for ordering: a probe never seen (None) sorts as the slowest."""
    return float(value) if isinstance(value, (int, float)) else float("inf")


def gib(value: float) -> str:
    return f"{value / 2**30:,.1f} GiB"


def freshness_runs(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Each measured rate's figures: the `rates` list, or an older report's single measurement."""
    fresh = result.get("freshness")
    runs = fresh.get("rates") if isinstance(fresh, dict) and isinstance(fresh.get("rates"), list) else [fresh]
    return [r for r in runs if isinstance(r, dict) and "rate" in r]


def freshness_detail(result: dict[str, Any]) -> list[str]:
    """Per rate and connector: p50 / p95, and what the declared limits allow."""
    runs = freshness_runs(result)
    if not runs or not any("limits" in r for r in runs):
        return []
    vendors = list(runs[0].get("vendors") or {})
    lines = ["", "Freshness per connector, p50 / p95 in seconds (202 -> visible at the vendor):", "",
             "| Rate (sent at) | " + " | ".join(vendors) + " | every vendor |", "|---" * (len(vendors) + 2) + "|"]
    for run in runs:
        cells = [f"{fmt((run['vendors'].get(v) or {}).get('p50_s'))} / {fmt((run['vendors'].get(v) or {}).get('p95_s'))}"
                 + (f" ({run['vendors'][v]['unseen']} unseen)" if (run['vendors'].get(v) or {}).get("unseen") else "")
                 for v in vendors]
        lines.append(f"| {run['rate']:,}/s ({fmt(run.get('achieved_rate'))}/s, {run.get('events', 0):,} events, "
                     f"{run.get('probes', 0)} probes) | " + " | ".join(cells) + f" | {fmt(run.get('p50_s'))} / {fmt(run.get('p95_s'))} |")
    lines += ["", "Whether the declared limits (`rate_limits`, as obeyed) allow p95 < 5 s at each rate "
                  "(benchmarks/freshness.py `verdict`):", ""]
    for run in runs:
        blocked = {v: f for v, f in (run.get("limits") or {}).items() if not f.get("can_meet")}
        if not blocked:
            lines.append(f"- {run['rate']:,} events/s: every connector can (best case p95 from the limits: "
                         + ", ".join(f"{v} {f.get('p95_lower_bound_s')} s" for v, f in (run.get("limits") or {}).items())
                         + ").")
        for vendor, figures in blocked.items():
            sent = figures.get("as_sent") or {}
            also = (f" In the slice as sent ({sent['contacts_per_s']:,} distinct contacts a second: its stories "
                    f"are replayed within seconds, so a flush coalesces several events of one person) the "
                    f"limits {'would allow it' if sent['can_meet'] else 'rule it out too'}.") if sent else ""
            lines.append(f"- {run['rate']:,} events/s: **{vendor} cannot** with steady traffic of many people: "
                         f"{figures['why']}.{also}")
    return lines


def memory_detail(result: dict[str, Any]) -> list[str]:
    memory = result.get("redis_memory")
    if not memory:
        return []
    referrers = result["referrers"]
    projection = memory["projection_10m"]
    lines = ["", f"Redis memory after the drain: used_memory {memory['after']['used_memory']:,} bytes "
                 f"({memory['used_memory_per_referrer']:,} a referrer over the {memory['before']['used_memory']:,} "
                 f"before the first event), used_memory_dataset {memory['used_memory_dataset_per_referrer']:,} "
                 f"a referrer; {memory['after']['keys']:,} keys. By key family (MEMORY USAGE of up to "
                 f"{memory['sample_per_family']} keys each, scaled to the family's count):", "",
             "| Key family | Path | Keys | Bytes a referrer | Grows | 10M referrers |", "|---|---|---|---|---|---|"]
    scale = 10_000_000 / referrers
    for name, family in memory["families"].items():
        grows = family["growth"]
        tenm = family["bytes"] * scale if grows == "per person" else None
        lines.append(f"| {name} | {'sync' if family['sync_path'] else 'optional'} | {family['keys']:,} | "
                     f"{family['bytes_per_referrer']:,} | {grows} | {gib(tenm) if tenm is not None else 'as measured or capped'} |")
    sampled = memory["sampled_bytes_per_referrer"]
    lines += ["", f"Sync path {sampled['sync_path']:,} bytes a referrer, optional stores {sampled['optional_stores']:,} "
                  f"(MEMORY USAGE). Projected to 10 million referrers: used_memory {gib(projection['used_memory_bytes'])}, "
                  f"of which the sync path {gib(projection['sync_path_bytes'])} and optional stores "
                  f"{gib(projection['optional_stores_bytes'])} ({projection['rule']})."]
    return lines


def compare_table(result: dict[str, Any]) -> str:
    from .compare import table as comparison

    return comparison(result)


def floors_table(result: dict[str, Any]) -> list[str]:
    """Calls per vendor beside the plain floor and the deadline floor (what the freshness
    deadline forces for the workload as it arrived; benchmarks/floor.py). The target is 1.10x
    the plain floor for vendors with bulk writes, 1.10x the deadline floor for Splio."""
    calls = result.get("calls") or {}
    vendors = (result.get("floor") or {}).get("vendors") or {}
    if not calls:
        return []
    lines = ["", "| Vendor | calls (writes) | plain floor | deadline floor (deadline) | judged against "
             "| job polling, beside (floor's) |", "|---|---|---|---|---|---|"]
    for vendor, figures in calls.items():
        polls = sum((figures.get("reads_beside") or {}).values())
        polls_floor = sum((figures.get("reads_beside_floor") or {}).values())
        deadline = vendors.get(vendor, {}).get("deadline") or {}
        judged = judged_floor(vendor, figures)
        against = "deadline floor" if vendor == "splio" else "plain floor"
        lines.append(f"| {vendor} | {figures['total']:,} | {figures['floor']:,} | "
                     f"{fmt(deadline.get('total'))} ({fmt(deadline.get('deadline_s'), ' s')}) | "
                     f"{against}: {figures['total'] / max(judged or 1, 1):.2f}x (<= 1.10x) | "
                     f"{f'{polls:,} ({polls_floor:,})' if polls or polls_floor else 'none'} |")
    return lines


def write(result: dict[str, Any], directory: Path = REPORTS) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path, md_path = directory / "latest.json", directory / "latest.md"
    json_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    md_path.write_text(table(result))
    from .charts import draw

    draw(result, directory)
    return json_path, md_path
