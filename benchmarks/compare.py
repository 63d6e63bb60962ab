"""Two runs side by side (`--compare PATH`, PATH a previous latest.json): each headline figure of
this run beside the other run's, and how it moved. Used to read a scale run (R = 100,000) against
the standard one (R = 10,000): what grows with R and what stays flat.

A figure either report lacks (an older runner did not measure it) shows as n/a, never an error.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

# (name, how to read it from a report, unit, better when "higher" / "lower")
Getter = Callable[[dict[str, Any]], Any]


def dig(*path: str) -> Getter:
    def get(result: dict[str, Any]) -> Any:
        value: Any = result
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    return get


def judged_floor(vendor: str, calls: dict[str, Any]) -> Any:
    """The floor a vendor's calls are judged against: the plain floor, or for Splio, which has no
    bulk update, the deadline floor (the updates its API forces under the freshness deadline)."""
    return calls.get("deadline_floor") if vendor == "splio" else calls.get("floor")


def calls_vs_floor(vendor: str) -> Getter:
    def get(result: dict[str, Any]) -> Any:
        calls = (result.get("calls") or {}).get(vendor) or {}
        total, floor = calls.get("total"), judged_floor(vendor, calls)
        if isinstance(total, (int, float)) and isinstance(floor, (int, float)) and floor:
            return round(total / floor, 2)
        return None
    return get


def figures(vendors: list[str]) -> list[tuple[str, Getter, str, str]]:
    rows = [("Ingest, batch mode", dig("ingest_batch", "events_per_s"), " events/s", "higher"),
            ("CPU per accepted event (HTTP + Redis + workers)", dig("cpu_per_event_us", "total"), " µs", "lower"),
            ("Redis CPU per accepted event", dig("cpu_per_event_us", "redis"), " µs", "lower"),
            ("Redis used_memory per referrer", dig("redis_memory", "used_memory_per_referrer"), " bytes", "lower"),
            ("Drain at the vendors / floor", dig("drain", "ratio"), "x", "lower")]
    rows += [(f"Calls vs floor: {vendor}", calls_vs_floor(vendor), "x", "lower") for vendor in vendors]
    return rows


def load(path: Path) -> dict[str, Any]:
    """The other run's report; a ValueError says what is wrong with the file."""
    try:
        other = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"--compare: cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"--compare: {path} is not JSON ({exc.msg}, line {exc.lineno})") from None
    if not isinstance(other, dict) or "referrers" not in other:
        raise ValueError(f"--compare: {path} is not a benchmark report (no 'referrers')")
    return other


def change(this: Any, other: Any, unit: str) -> str:
    if this is None or other is None:
        return "n/a"
    if unit == "x":
        return f"{this - other:+.2f}x"
    if not other:
        return "n/a"
    return f"{100 * (this - other) / other:+.1f}%"


def compare(result: dict[str, Any], other: dict[str, Any], path: str) -> dict[str, Any]:
    """The report's `compared_with`: per figure this run's value, the other's, and the change."""
    vendors = list(dict.fromkeys([*(result.get("calls") or {}), *(other.get("calls") or {})]))
    rows = {}
    for name, get, unit, better in figures(vendors):
        this, then = get(result), get(other)
        rows[name] = {"this": this, "other": then, "change": change(this, then, unit), "unit": unit, "better": better}
    return {"path": path, "referrers": other.get("referrers"), "figures": rows}


def fmt(value: Any, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,}{unit}"


def table(result: dict[str, Any]) -> str:
    """Markdown: this run beside the compared one."""
    compared = result.get("compared_with")
    if not compared:
        return ""
    this_r, other_r = result.get("referrers"), compared.get("referrers")
    lines = [f"Compared with {compared['path']} (R = {other_r:,})." if isinstance(other_r, int)
             else f"Compared with {compared['path']}.", "",
             f"| Figure | This run (R = {this_r:,}) | Other run | Change |", "|---|---|---|---|"]
    for name, row in compared["figures"].items():
        lines.append(f"| {name} | {fmt(row['this'], row['unit'])} | {fmt(row['other'], row['unit'])} | "
                     f"{row['change']} ({row['better']} is better) |")
    return "\n".join(lines) + "\n"
