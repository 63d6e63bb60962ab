"""The report's figures as PNG charts, beside latest.json and latest.md:

  backlog.png    contacts waiting per vendor over time during the drain, the floor's end marked
  calls.png      vendor calls per connector against the floor's
  freshness.png  freshness percentiles (p50, p95) per vendor at each measured rate, the connectors
                 whose declared limits rule out p95 < 5 s at that rate marked
  memory.png     Redis bytes per referrer by key family after the drain, sync path and optional stores

matplotlib (the `bench` extra; never a dependency of the hub) draws them with its Agg backend, so
no display is needed. The report's keys are read defensively: a chart whose figures are missing
is skipped, never an error, so a report from an older or newer runner still draws what it can.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

SIZE = (8.0, 4.5)       # inches; at DPI, 800 x 450 pixels
DPI = 100
FRESHNESS_TARGET_S = 5.0
MEMORY_FAMILIES_SHOWN = 14


def draw(result: dict[str, Any], directory: Path) -> list[Path]:
    """Write every chart the result has figures for; the paths written (none without matplotlib)."""
    try:
        import matplotlib
    except ImportError:
        print("charts: skipped (matplotlib is not installed: pip install -e '.[bench]')")
        return []
    matplotlib.use("Agg")
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, chart in (("backlog", backlog), ("calls", calls), ("freshness", freshness), ("memory", memory)):
        figure = chart(result)
        if figure is None:
            continue
        path = directory / f"{name}.png"
        figure.savefig(path, dpi=DPI)
        import matplotlib.pyplot as plt

        plt.close(figure)
        written.append(path)
    return written


def title(result: dict[str, Any], what: str) -> str:
    referrers = result.get("referrers")
    return f"{what} (R = {referrers:,})" if isinstance(referrers, int) else what


def trace_points(trace: Any) -> list[tuple[float, dict[str, int]]]:
    """The drain's backlog trace as (seconds, {vendor: waiting}): [t, {...}] pairs or
    {"t"/"at"/"seconds": t, "backlog"/"vendors": {...}} objects."""
    points = []
    for item in trace if isinstance(trace, list) else []:
        if isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[1], dict):
            at, counts = item
        elif isinstance(item, dict):
            at = next((item[k] for k in ("t", "at", "seconds") if k in item), None)
            counts = item.get("backlog") or item.get("vendors") or {}
        else:
            continue
        if isinstance(at, (int, float)) and isinstance(counts, dict):
            points.append((float(at), {str(v): int(n) for v, n in counts.items() if isinstance(n, (int, float))}))
    return sorted(points, key=lambda p: p[0])


def vendors_of(result: dict[str, Any], *more: Any) -> list[str]:
    names = list((result.get("calls") or {}).keys())
    for group in more:
        names += [v for v in group if v not in names]
    return names


def backlog(result: dict[str, Any]) -> Any:
    import matplotlib.pyplot as plt

    drain = result.get("drain") or {}
    points = trace_points(drain.get("backlog_trace"))
    if not points:
        return None
    vendors = vendors_of(result, *(counts for _, counts in points))
    drained = drain.get("seconds")
    if isinstance(drained, (int, float)) and drained > points[-1][0]:
        points.append((float(drained), {}))     # drained: nothing waits anywhere
    figure, axes = plt.subplots(figsize=SIZE)
    times = [at for at, _ in points]
    for vendor in vendors:
        axes.plot(times, [counts.get(vendor, 0) for _, counts in points], label=vendor, linewidth=1.6)
    for name, label, style, colour in (("ingest_s", "ingest ended", ":", "grey"),
                                       ("floor_s", "the floor's end", "--", "black"),
                                       ("seconds", "drained", "-.", "dimgrey")):
        value = drain.get(name)
        if isinstance(value, (int, float)):
            axes.axvline(value, color=colour, linestyle=style, linewidth=1.2, label=f"{label}: {value:g} s")
    axes.set_xlabel("seconds since the first event was sent")
    axes.set_ylabel("contacts waiting to be pushed")
    axes.set_title(title(result, "Backlog per vendor during the drain"))
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize=9)
    figure.tight_layout()
    return figure


def calls(result: dict[str, Any]) -> Any:
    import matplotlib.pyplot as plt

    table = {v: c for v, c in (result.get("calls") or {}).items()
             if isinstance(c, dict) and isinstance(c.get("total"), (int, float))}
    if not table:
        return None
    vendors = list(table)
    figure, axes = plt.subplots(figsize=SIZE)
    xs = range(len(vendors))
    width = 0.38
    made = axes.bar([x - width / 2 for x in xs], [table[v]["total"] for v in vendors], width, label="calls made")
    floor = [table[v].get("floor") if isinstance(table[v].get("floor"), (int, float)) else 0 for v in vendors]
    least = axes.bar([x + width / 2 for x in xs], floor, width, label="floor (fewest the batch sizes allow)",
                     color="lightgrey", edgecolor="grey")
    axes.bar_label(made, fontsize=8, padding=2)
    axes.bar_label(least, fontsize=8, padding=2)
    axes.set_xticks(list(xs), vendors)
    axes.set_ylabel("vendor calls")
    axes.set_title(title(result, "Vendor calls per connector against the floor"))
    axes.grid(axis="y", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    return figure


def freshness_runs(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One freshness measurement per rate: the report's `freshness` object, or a list of them."""
    fresh = result.get("freshness")
    runs = fresh if isinstance(fresh, list) else (fresh.get("rates") if isinstance(fresh, dict) and
                                                   isinstance(fresh.get("rates"), list) else [fresh])
    return sorted((r for r in runs if isinstance(r, dict) and isinstance(r.get("rate"), (int, float))),
                  key=lambda r: r["rate"])


def freshness(result: dict[str, Any]) -> Any:
    import matplotlib.pyplot as plt

    runs = freshness_runs(result)
    if not runs:
        return None
    vendors = vendors_of(result, *((r.get("vendors") or {}).keys() for r in runs))
    series = vendors + ["every vendor"]
    figure, axes = plt.subplots(figsize=SIZE)
    width = 0.8 / len(series)
    colours = plt.get_cmap("tab10")
    ruled_out = False
    for i, name in enumerate(series):
        p50, p95, xs = [], [], []
        for x, run in enumerate(runs):
            figures = run if name == "every vendor" else (run.get("vendors") or {}).get(name) or {}
            if isinstance(figures.get("p95_s"), (int, float)):
                xs.append(x - 0.4 + width * (i + 0.5))
                p50.append(figures.get("p50_s") or 0)
                p95.append(figures["p95_s"])
        colour = "black" if name == "every vendor" else colours(i)
        axes.bar(xs, p95, width * 0.9, color=colour, alpha=0.35)
        axes.bar(xs, p50, width * 0.9, color=colour, label=name)
        for x, run in enumerate(runs):
            verdict = (run.get("limits") or {}).get(name)
            if isinstance(verdict, dict) and verdict.get("can_meet") is False:
                top = ((run.get("vendors") or {}).get(name) or {}).get("p95_s")
                axes.plot([x - 0.4 + width * (i + 0.5)], [(top if isinstance(top, (int, float)) else 0) + 0.3],
                          marker="X", color="black", markersize=8, linestyle="none",
                          label=None if ruled_out else "declared limits rule out p95 < 5 s")
                ruled_out = True
    axes.axhline(FRESHNESS_TARGET_S, color="red", linestyle="--", linewidth=1,
                 label=f"p95 target {FRESHNESS_TARGET_S:g} s")
    axes.set_xticks(range(len(runs)), [f"{r['rate']:g} events/s" for r in runs])
    axes.set_ylabel("seconds from 202 to visible (solid p50, pale p95)")
    axes.set_title(title(result, "Freshness at each measured rate"))
    axes.grid(axis="y", alpha=0.3)
    axes.legend(fontsize=8, ncol=3, loc="upper right")
    highest = [f.get("p95_s") for r in runs for f in [r, *(r.get("vendors") or {}).values()] if isinstance(f, dict)]
    axes.set_ylim(0, max(FRESHNESS_TARGET_S * 1.4, *(v for v in highest if isinstance(v, (int, float)))) * 1.35)
    figure.tight_layout()
    return figure


def memory(result: dict[str, Any]) -> Any:
    import matplotlib.pyplot as plt

    measured = result.get("redis_memory")
    families = measured.get("families") if isinstance(measured, dict) else None
    if not isinstance(families, dict):
        return None
    rows = [(name, f) for name, f in families.items()
            if isinstance(f, dict) and isinstance(f.get("bytes_per_referrer"), (int, float))]
    if not rows:
        return None
    from matplotlib.patches import Patch

    rows.sort(key=lambda row: -row[1]["bytes_per_referrer"])
    if len(rows) > MEMORY_FAMILIES_SHOWN:       # the smallest families as one bar
        rest = rows[MEMORY_FAMILIES_SHOWN - 1:]
        rows = rows[:MEMORY_FAMILIES_SHOWN - 1] + [(f"{len(rest)} other families", {
            "bytes_per_referrer": sum(f["bytes_per_referrer"] for _, f in rest), "sync_path": True})]
    rows.reverse()
    figure, axes = plt.subplots(figsize=SIZE)
    colours = ["tab:blue" if f.get("sync_path") else "tab:orange" for _, f in rows]
    bars = axes.barh([name for name, _ in rows], [f["bytes_per_referrer"] for _, f in rows], color=colours)
    axes.bar_label(bars, labels=[f"{f['bytes_per_referrer']:,.0f}" for _, f in rows], fontsize=7, padding=2)
    axes.set_xlabel("bytes per referrer (MEMORY USAGE; a referrer comes with its two friends)")
    axes.tick_params(axis="y", labelsize=7)
    per = measured.get("used_memory_per_referrer")
    projection = (measured.get("projection_10m") or {}).get("used_memory_bytes")
    what = title(result, "Redis memory per referrer by key family")
    if isinstance(per, (int, float)) and isinstance(projection, (int, float)):
        what += f"\nused_memory {per:,.0f} bytes a referrer; projected for 10M referrers {projection / 2**30:,.1f} GiB"
    axes.set_title(what, fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    axes.margins(x=0.12)
    axes.legend(handles=[Patch(color="tab:blue", label="sync path"), Patch(color="tab:orange", label="optional stores")],
                loc="lower right", fontsize=8)
    figure.tight_layout()
    return figure
